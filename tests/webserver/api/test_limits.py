"""No single request takes the machine: body caps before and while reading, a pixel budget checked from
the headers before any decode, images reduced as they are decoded. Run against a real server process
(scripts/probe_limits.py measures its peak RSS from /proc while /healthz is polled)."""
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.scripts.helpers import load_script, script_env
from tests.servers import free_port, wait_for_port

EXPECTED = {
    "256 MB JSON, Content-Length": 413,  # grew the server by 950 MB
    "512 MB JSON, chunked": 413,  # stalled /healthz for 5 s
    "2 GB upload, chunked": 413,  # was spooled to /tmp in full first
    "20 PNGs of 6000x6000": 413,  # every file decoded before any was checked: +2.8 GB
    "5 PNGs of 6000x6000 (allowed)": 201,
}
RSS_BUDGET_MB = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory, clip_checkpoint):
    port = free_port()
    env = script_env(tmp_path_factory.mktemp("limits") / "data", clip_checkpoint, PORT=str(port),
                     HOST="127.0.0.1", MILVUS_TABLE="images")
    process = subprocess.Popen([sys.executable, str(ROOT / "main.py")], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 120)
    yield f"http://127.0.0.1:{port}", process.pid
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)


@pytest.mark.parametrize("attack", list(EXPECTED))
def test_a_heavy_request_is_answered_within_the_memory_budget(server, attack):
    probe_limits = load_script("probe_limits")
    url, pid = server
    result = probe_limits.probe(url, pid, attack, probe_limits.ATTACKS[attack])
    assert result.status == EXPECTED[attack], result
    assert result.rss_rise_mb < RSS_BUDGET_MB, result
    assert all(ms < 1000 for ms in result.healthz_ms), result  # liveness; docs/reliability.md has the figures
