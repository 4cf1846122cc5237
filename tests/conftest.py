"""Shared fixtures: a tiny open_clip model saved to a local file, real stores, and app clients."""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from tests import servers  # noqa: E402

TINY_MODEL = "tiny-clip"
# The servers and scripts the tests start compute in fp32 on every CPU, so that their answers compare
# exactly with the tests' own fp32 encoders (the default, auto, picks bf16 on AVX-512 BF16 / AMX CPUs);
# tests/webserver/encoders/test_clip.py holds bf16 to fp32 and checks what auto picks.
os.environ.setdefault("CLIP_PRECISION", "fp32")


@pytest.fixture(scope="session")
def clip_checkpoint(tmp_path_factory) -> Path:
    """Random weights for a small registered architecture, saved the way open_clip loads a local file."""
    from webserver.encoders.clip import save_random_weights

    return save_random_weights(TINY_MODEL, tmp_path_factory.mktemp("models") / "tiny-clip.pt")


@pytest.fixture(scope="session")
def tirg_checkpoint(tmp_path_factory) -> Path:
    """A small TIRG model with random weights, saved as a self-describing checkpoint."""
    import torch

    from tirg.checkpoint import save_checkpoint
    from tirg.models import TirgConfig, create_model
    from tirg.text import Vocabulary

    torch.manual_seed(0)
    config = TirgConfig(model="tirg", embed_dim=32, word_dim=16, lstm_dim=16, image_size=32)
    model = create_model(config, Vocabulary.build(["make top-left red object blue", "add red cube to center"]))
    return save_checkpoint(tmp_path_factory.mktemp("models") / "tirg.pt", model)


@pytest.fixture(scope="session")
def encoder(clip_checkpoint):
    from webserver.encoders.clip import ClipEncoder

    # The server's default runtime (onnxruntime on a CPU in fp32), its export cached as the server caches it.
    return ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", batch_size=16, runtime="auto",
                       onnx_cache_dir=Settings(_env_file=None).ONNX_CACHE.expanduser())


@pytest.fixture(scope="session")
def tirg_encoder(tirg_checkpoint):
    from webserver.encoders.tirg import TirgEncoder

    return TirgEncoder(tirg_checkpoint, device="cpu", batch_size=16, runtime="auto",
                       onnx_cache_dir=Settings(_env_file=None).ONNX_CACHE.expanduser())


@pytest.fixture(scope="session")
def encoders(encoder, tirg_encoder):
    from webserver.encoders.registry import EncoderSet

    return EncoderSet(encoder, tirg_encoder)


@pytest.fixture(scope="session")
def tiny_css(tmp_path_factory):
    """A small generated data set (2D renderer: fast) shared by the tirg and script tests."""
    from tirg.scenes.generate import generate

    root = tmp_path_factory.mktemp("css") / "CSSDataset"
    generate(root, train_images=160, test_images=80, renderer="2d", image_size=32, seed=3, workers=1)
    return root


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    if not servers.mariadb_available():
        if os.environ.get("REQUIRE_MARIADB") == "1":
            pytest.fail("REQUIRE_MARIADB=1 but MariaDB can neither be reached nor started")
        pytest.skip("MariaDB not installed (apt-get install mariadb-server) and TEST_MYSQL_HOST not set")
    server = servers.start_mariadb(tmp_path_factory.mktemp("mariadb"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    server = servers.start_milvus_server(tmp_path_factory.mktemp("milvus-server"), Path(sys.executable).parent)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def milvus_standalone(tmp_path_factory):
    """The real Milvus server (requirements-servers.txt). Skipped where it is not installed, unless
    REQUIRE_MILVUS_STANDALONE=1 (CI), where that fails."""
    venv_bin = Path(sys.executable).parent
    if not (venv_bin / "milvus-server").exists():
        if os.environ.get("REQUIRE_MILVUS_STANDALONE") == "1":
            pytest.fail("REQUIRE_MILVUS_STANDALONE=1 but milvus-server is not installed "
                        "(pip install -r requirements-servers.txt)")
        pytest.skip("the real Milvus server is not installed (pip install -r requirements-servers.txt)")
    server = servers.start_milvus_standalone(tmp_path_factory.mktemp("milvus-standalone"), venv_bin)
    yield server
    server.stop()


def _fresh_mysql_database(server) -> str:
    import pymysql

    name = f"test_{uuid.uuid4().hex[:12]}"
    connection = pymysql.connect(host=server.host, port=server.port, user=server.user,
                                 password=server.password)
    with connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    return name


@pytest.fixture
def make_settings(tmp_path, clip_checkpoint, tirg_checkpoint, request):
    """Settings for one test: its own DATA_DIR; `milvus='server'` (milvus-lite's server), `'standalone'`
    (the real Milvus) and `metadata='mariadb'` switch stores."""

    def make(*, milvus: str = "lite", metadata: str = "sqlite", **overrides) -> Settings:
        values = dict(DATA_DIR=tmp_path / "data", CLIP_MODEL=TINY_MODEL, CLIP_PRETRAINED=str(clip_checkpoint),
                      DEVICE="cpu", MILVUS_TABLE="images", TIRG_CHECKPOINT=tirg_checkpoint, CLIP_PRECISION="fp32")
        if milvus in ("server", "standalone"):  # milvus-lite's server, or the real Milvus
            server = request.getfixturevalue("milvus_server" if milvus == "server" else "milvus_standalone")
            values.update(MILVUS_HOST="127.0.0.1", MILVUS_PORT=server.port,
                          MILVUS_TABLE=f"t{uuid.uuid4().hex[:10]}")
        if metadata == "mariadb":
            server = request.getfixturevalue("mariadb")
            values.update(MYSQL_HOST=server.host, MYSQL_PORT=server.port, MYSQL_USER=server.user,
                          MYSQL_PWD=server.password, MYSQL_DB=_fresh_mysql_database(server))
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture(scope="module")
def make_module_client(tmp_path_factory, clip_checkpoint, tirg_checkpoint, encoders):
    """Apps on embedded stores that live for a whole test module: for tests whose requests the server
    refuses or only reads (starting an app costs ~1 s, most of it the embedded Milvus Lite)."""
    from fastapi.testclient import TestClient

    from webserver.api.app import create_app

    clients = []

    def make(**overrides):
        settings = Settings(_env_file=None, DATA_DIR=tmp_path_factory.mktemp("module-app") / "data", DEVICE="cpu",
                            CLIP_MODEL=TINY_MODEL, CLIP_PRETRAINED=str(clip_checkpoint), MILVUS_TABLE="images",
                            TIRG_CHECKPOINT=tirg_checkpoint, **overrides)
        clients.append(client := TestClient(create_app(settings, encoders)))
        client.__enter__()
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def make_client(make_settings, encoders):
    from fastapi.testclient import TestClient

    from webserver.api.app import create_app

    clients = []

    def make(**kwargs) -> TestClient:
        client = TestClient(create_app(make_settings(**kwargs), encoders))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


# Files whose tests run scripts or training in subprocesses (10-45 s each): left out of the inner loop,
# `pytest -m "not slow and not browser"` (pyproject.toml names the markers).
SLOW_FILES = {
    "tests/scripts/test_demo.py", "tests/scripts/test_insert_milvus.py", "tests/scripts/test_insert_precomputed.py",
    "tests/scripts/test_reindex.py", "tests/scripts/test_ship_tirg.py", "tests/scripts/test_train_demo_clip.py",
    "tests/scripts/test_probe_css_leak.py", "tests/scripts/test_transfer_scripts.py",
    "tests/tirg/test_train.py", "tests/test_upgrade_from_release.py", "tests/test_fault_injection.py",
    "tests/webserver/api/test_fuzz.py", "tests/webserver/api/test_limits.py", "tests/test_two_processes.py",
    "tests/tirg/test_triplets.py", "tests/scripts/test_bench_scale.py",
}


def pytest_collection_modifyitems(config, items):
    """Marks from what a test uses: slow files, MariaDB, a Milvus server (also via parameters)."""
    for item in items:
        path = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
        params = {str(v) for v in item.callspec.params.values()} if hasattr(item, "callspec") else set()
        if path in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
        if "mariadb" in item.fixturenames or "mariadb" in params:
            item.add_marker(pytest.mark.mariadb)
        if "milvus_server" in item.fixturenames or "server" in params:
            item.add_marker(pytest.mark.milvus_server)
        if "milvus_standalone" in item.fixturenames or "standalone" in params:
            item.add_marker(pytest.mark.milvus_standalone)
