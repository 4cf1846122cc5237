"""schemathesis over /openapi.json against a running server (tiny CLIP + the shipped TIRG), every check:
no 5xx, every response as documented, schema-valid requests accepted and invalid ones refused.
schemathesis.toml names the refusals OpenAPI cannot state. A fixed seed keeps CI reproducible; set
FUZZ_SEED / FUZZ_EXAMPLES to explore further."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ROOT
from tests.images import sample_pngs
from tests.scripts.helpers import script_env
from tests.servers import free_port, wait_for_port


def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path, clip_checkpoint):
    port = free_port()
    env = script_env(tmp_path / "data", clip_checkpoint, PORT=str(port), HOST="127.0.0.1", MILVUS_TABLE="images",
                     TIRG_CHECKPOINT=str(ROOT / "models" / "tirg-css.pt"))
    server = subprocess.Popen([sys.executable, str(ROOT / "main.py")], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 120)
        base = f"http://127.0.0.1:{port}"
        files = [("files", (f"{i}.png", data, "image/png")) for i, (data, _) in enumerate(sample_pngs(3))]
        assert httpx.post(f"{base}/collections/images/images", files=files, timeout=60).status_code == 201
        fuzz = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run", f"{base}/openapi.json", "--checks", "all",
             "--max-examples", os.environ.get("FUZZ_EXAMPLES", "25"), "--seed", os.environ.get("FUZZ_SEED", "1"),
             "--no-color"],
            cwd=ROOT, capture_output=True, text=True, timeout=900)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert fuzz.returncode == 0, fuzz.stdout[-8000:] + fuzz.stderr[-2000:]
    assert " passed" in fuzz.stdout
