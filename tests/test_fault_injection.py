"""A server process SIGKILLed at each stage of a write, then fsck --repair: the image is fully present
(row, vector, file, searchable) or fully absent, never half; and the id the killed write held is never
given to another image."""
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.images import sample_pngs
from tests.scripts.helpers import run_script, script_env
from tests.servers import free_port, wait_for_port

# Runs `python main.py` with one step of the write path wrapped so that the process kills itself with
# SIGKILL right after that step: a kill at a known point, not a race against a polling test.
KILLED_AT_STAGE = """
import contextlib, os, runpy, signal, sys
sys.path.insert(0, {root!r})
from webserver.stores.files import FileStore
from webserver.stores.metadata import MetadataStore
from webserver.stores.vectors import VectorStore

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def after(cls, name):
    original = getattr(cls, name)
    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        die()
        return result
    setattr(cls, name, wrapped)

stage = {stage!r}
if stage == "file stored":
    after(FileStore, "write")
elif stage == "vectors written":
    after(VectorStore, "insert")
else:
    insert = MetadataStore.insert_images
    @contextlib.contextmanager
    def insert_then_die(self, *args, **kwargs):
        with insert(self, *args, **kwargs) as ids:
            if stage == "rows inserted":
                die()
            yield ids
            if stage == "before commit":
                die()
        if stage == "after commit":
            die()
    MetadataStore.insert_images = insert_then_die

sys.argv = [{main!r}]
runpy.run_path({main!r}, run_name="__main__")
"""

STAGES = ["rows inserted", "file stored", "vectors written", "before commit", "after commit"]


def upload(port: int, data: bytes, name: str) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{port}/collections/images/images", timeout=60,
                      files=[("files", (name, data, "image/png"))])


def run_server(env: dict[str, str], wrapper: str | None = None) -> subprocess.Popen:
    command = [sys.executable, "-c", wrapper] if wrapper else [sys.executable, str(ROOT / "main.py")]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def state(data_dir: Path) -> tuple[list[int], int]:
    """(the image ids in SQL, the count of stored files)."""
    with sqlite3.connect(data_dir / "metadata.db") as db:
        ids = [row[0] for row in db.execute("SELECT id FROM images ORDER BY id")]
    files = [p for p in (data_dir / "files").rglob("*") if p.is_file()] if (data_dir / "files").exists() else []
    return ids, len(files)


@pytest.mark.parametrize("stage", STAGES)
def test_a_write_killed_at_any_stage_is_whole_or_absent_after_fsck(tmp_path, clip_checkpoint, stage):
    data_dir, port = tmp_path / "data", free_port()
    env = script_env(data_dir, clip_checkpoint, PORT=str(port), HOST="127.0.0.1", MILVUS_TABLE="images")
    first, second = sample_pngs(2)
    killed = run_server(env, KILLED_AT_STAGE.format(root=str(ROOT), stage=stage, main=str(ROOT / "main.py")))
    try:
        wait_for_port(port, 120)
        with pytest.raises(httpx.TransportError):
            upload(port, first[0], "first.png")
        assert killed.wait(timeout=30) == -signal.SIGKILL
    finally:
        killed.kill()
        killed.wait()

    repaired = run_script("fsck.py", "--all", "--repair", "--grace-s", "0", "--settle-s", "0", env=env)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    ids, files = state(data_dir)
    whole = stage == "after commit"
    assert (len(ids), files) == ((1, 1) if whole else (0, 0))

    server = run_server(env)
    try:
        wait_for_port(port, 120)
        added = upload(port, second[0], "second.png")
        assert added.status_code == 201, added.text
        new_id = added.json()["items"][0]["id"]
        assert new_id not in ids and new_id > 1  # the killed write's id is not handed out again
        again = upload(port, first[0], "first.png").json()["items"][0]
        assert again["duplicate"] is whole
        found = httpx.post(f"http://127.0.0.1:{port}/search", data={"collection": "images", "image_id": str(new_id),
                                                                       "top_k": "10"}, timeout=60)
        assert [hit["id"] for hit in found.json()["results"]] == [again["id"]], found.text
        assert httpx.get(f"http://127.0.0.1:{port}/images/{again['id']}/file", timeout=30).content == first[0]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    final = run_script("fsck.py", "--all", "--grace-s", "0", env=env)
    assert final.returncode == 0 and "clean" in final.stdout, final.stdout
