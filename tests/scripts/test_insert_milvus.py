import signal
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.scripts.helpers import run_script, script_env, write_image_folder
from tests.servers import free_port, wait_for_port
from webserver.services.bulk import find_image_files
from webserver.services.container import build_services


def counts(data_dir, collection="images"):
    """(metadata rows, distinct digests, Milvus vectors). Milvus is read from a child process: an
    embedded Lite file stays locked by the process that opened it until that process exits."""
    with sqlite3.connect(data_dir / "metadata.db") as db:
        rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT sha256) FROM images WHERE collection = ?",
                          (collection,)).fetchone()
    code = ("import sys; from pymilvus import MilvusClient; c = MilvusClient(sys.argv[1]); "
            "print(c.query(sys.argv[2], filter='', output_fields=['count(*)'])[0]['count(*)'])")
    milvus = subprocess.run([sys.executable, "-c", code, str(data_dir / "milvus.db"), collection],
                            capture_output=True, text=True, check=True).stdout.split()[-1]
    return rows[0], rows[1], int(milvus)


def test_indexes_a_folder_with_captions_and_skips_bad_files(tmp_path, clip_checkpoint):
    folder = tmp_path / "images"
    paths = write_image_folder(folder, 30)
    captions = tmp_path / "captions.tsv"
    captions.write_text(f"{paths[0].relative_to(folder).as_posix()}\ta first caption\n")
    env = script_env(tmp_path / "data", clip_checkpoint)
    result = run_script("insert_milvus.py", str(folder), "--collection", "fashion", "--batch-size", "8",
                        "--captions", str(captions), env=env)
    assert result.returncode == 0, result.stderr
    assert "added 30" in result.stdout and "failed 2" in result.stdout
    assert "stages: read + decode + preprocess" in result.stdout and ", encode " in result.stdout
    assert "broken.png" in result.stderr and "empty.jpg" in result.stderr
    assert counts(tmp_path / "data", "fashion") == (30, 30, 30)
    with sqlite3.connect(tmp_path / "data" / "metadata.db") as db:
        caption, meta = db.execute("SELECT caption, meta FROM images WHERE filename = ?", (paths[0].name,)).fetchone()
    assert caption == "a first caption" and paths[0].parent.name in meta

    again = run_script("insert_milvus.py", str(folder), "--collection", "fashion", env=env)
    assert "added 0, already indexed 30" in again.stdout
    assert counts(tmp_path / "data", "fashion") == (30, 30, 30)


def test_loads_into_the_real_milvus_server_and_mariadb(tmp_path, clip_checkpoint, make_settings, encoders):
    """The path past the embedded default: the loader writes to a Milvus standalone and MariaDB, and a
    second run skips what is there."""
    settings = make_settings(milvus="standalone", metadata="mariadb")
    write_image_folder(tmp_path / "images", 12)
    env = script_env(settings.DATA_DIR, clip_checkpoint, **{
        name: str(getattr(settings, name)) for name in ("MILVUS_HOST", "MILVUS_PORT", "MYSQL_HOST", "MYSQL_PORT",
                                                         "MYSQL_USER", "MYSQL_PWD", "MYSQL_DB")})
    collection = f"{settings.MILVUS_TABLE}_fashion"
    result = run_script("insert_milvus.py", str(tmp_path / "images"), "--collection", collection,
                        "--batch-size", "5", env=env)
    assert result.returncode == 0, result.stderr
    assert "added 12" in result.stdout and "failed 2" in result.stdout
    again = run_script("insert_milvus.py", str(tmp_path / "images"), "--collection", collection, env=env)
    assert "added 0, already indexed 12" in again.stdout, again.stdout + again.stderr
    services = build_services(settings, encoders)
    assert services.metadata.count_images(collection) == services.vectors.count(collection) == 12
    services.collections.delete(collection)
    services.close()


# Runs the loader as `python scripts/insert_milvus.py ...` does, except that the process SIGKILLs itself
# right after its 20th batch is committed: a kill at a known point, not a race against a polling test.
KILLED_AFTER_20_BATCHES = """
import os, runpy, signal, sys
sys.path.insert(0, {scripts!r})
from webserver.services import bulk
run = bulk.BulkIngest.run

def run_then_die(self, files, batch_size, on_batch=None):
    done = []
    def counted(count, report):
        on_batch and on_batch(count, report)
        done.append(count)
        if len(done) == 20:
            os.kill(os.getpid(), signal.SIGKILL)
    return run(self, files, batch_size, on_batch=counted)

bulk.BulkIngest.run = run_then_die
sys.argv = [{script!r}, {folder!r}, "--batch-size", "2"]
runpy.run_path({script!r}, run_name="__main__")
"""


def test_a_run_killed_half_way_and_restarted_indexes_everything_once(tmp_path, clip_checkpoint):
    folder, data_dir = tmp_path / "images", tmp_path / "data"
    total = len(write_image_folder(folder, 100))
    env = script_env(data_dir, clip_checkpoint)
    wrapper = KILLED_AFTER_20_BATCHES.format(scripts=str(ROOT / "scripts"), folder=str(folder),
                                             script=str(ROOT / "scripts" / "insert_milvus.py"))
    killed = subprocess.run([sys.executable, "-c", wrapper], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first_40 = find_image_files(folder)[:40]  # 20 batches of 2, in the loader's order, all committed
    images_in_them = sum(path.name not in ("broken.png", "empty.jpg") for path in first_40)
    with sqlite3.connect(data_dir / "metadata.db") as db:
        assert db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == images_in_them

    result = run_script("insert_milvus.py", str(folder), "--batch-size", "16", env=env)
    assert result.returncode == 0, result.stderr
    assert counts(data_dir) == (total, total, total)


def test_server_mode_and_the_lock_hint(tmp_path, clip_checkpoint):
    """--server splits batches to the server's files-per-request limit, read from its OpenAPI document
    (before: a 413 ended the run), lists an unreadable file as failed (before: a traceback), and sends
    the API key the server asks for."""
    folder, data_dir, port = tmp_path / "images", tmp_path / "data", free_port()
    write_image_folder(folder, 20)
    (folder / "unreadable.png").symlink_to("/proc/self/mem")  # a regular file whose read fails, even as root
    env = script_env(data_dir, clip_checkpoint, PORT=str(port), HOST="127.0.0.1", MAX_FILES_PER_REQUEST="4",
                     API_KEYS="loader-key-0123456789")  # the loader sends the first key of its environment
    server = subprocess.Popen([sys.executable, str(ROOT / "main.py")], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 90)
        locked = run_script("insert_milvus.py", str(folder), env=env)
        assert locked.returncode == 2
        assert "held by another process" in locked.stderr and f"--server http://127.0.0.1:{port}" in locked.stderr

        uploaded = run_script("insert_milvus.py", str(folder), "--server", f"http://127.0.0.1:{port}",
                              "--batch-size", "8", env=env)
        assert uploaded.returncode == 0, uploaded.stderr
        assert "added 20, already indexed 0, failed 3" in uploaded.stdout
        assert "unreadable.png" in uploaded.stderr
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert counts(data_dir) == (20, 20, 20)


@pytest.mark.parametrize("args, words", [(["/nonexistent"], "not a folder")])
def test_a_missing_folder_is_a_clear_error(tmp_path, clip_checkpoint, args, words):
    result = run_script("insert_milvus.py", *args, env=script_env(tmp_path / "data", clip_checkpoint))
    assert result.returncode == 2 and words in result.stderr
