"""A data dir written by release 0.4.0 (the last before schema revisions) opens with this code, with every
collection, image, caption, metadata value, stored file and search answer intact.

The release is taken from git history (`git archive` of its commit into a temp dir: a worktree without
the bookkeeping), run with this venv, and fills the data dir through its own HTTP API
(tests/release_probe.py); then this code opens the same data dir and must serve exactly the same.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, TINY_MODEL, _fresh_mysql_database
from webserver.stores import schema

RELEASE_0_4_0 = "e3039a50feda7f74dac8e0c3a33b52cbd1c17ce3"


@pytest.fixture(scope="module")
def release_0_4_0(tmp_path_factory):
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", RELEASE_0_4_0],
                             capture_output=True, check=True, timeout=120).stdout
    tree = tmp_path_factory.mktemp("release-0.4.0")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def probe(root, mode: str, env: dict, out) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "release_probe.py"), str(root), mode, str(out)],
                          env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def as_utc_instants(value):
    """`created` as instants: 0.4.0 wrote UTC times without a zone, 0.5.0 says UTC ("...Z")."""
    if isinstance(value, dict):
        return {k: (_instant(v) if k == "created" else as_utc_instants(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [as_utc_instants(v) for v in value]
    return value


def _instant(text: str):
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@pytest.mark.parametrize("metadata", ["sqlite", "mariadb"])
def test_a_data_dir_of_release_0_4_0_opens_with_everything_intact(release_0_4_0, metadata, tmp_path,
                                                                  clip_checkpoint, tirg_checkpoint, request):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MILVUS_", "MYSQL_", "TIRG_", "CLIP_"))}
    env.update(DATA_DIR=str(tmp_path / "data"), CLIP_MODEL=TINY_MODEL, CLIP_PRETRAINED=str(clip_checkpoint),
               TIRG_CHECKPOINT=str(tirg_checkpoint), DEVICE="cpu", LOG_FORMAT="text")
    if metadata == "mariadb":
        server = request.getfixturevalue("mariadb")
        env.update(MYSQL_HOST=server.host, MYSQL_PORT=str(server.port), MYSQL_USER=server.user,
                   MYSQL_PWD=server.password, MYSQL_DB=_fresh_mysql_database(server))
    before = probe(release_0_4_0, "write", env, tmp_path / "before.json")
    assert len(before["images"]["fashion"]) == 11 and len(before["search"]["composed"]) == 4  # the query image left out

    if metadata == "mariadb":  # a MySQL operator upgrades by command (SQLite upgrades itself at start)
        refused = subprocess.run([sys.executable, str(ROOT / "tests" / "release_probe.py"), str(ROOT), "read",
                                  str(tmp_path / "refused.json")], env=env, cwd=ROOT, capture_output=True,
                                 text=True, timeout=600)
        assert refused.returncode != 0 and "python scripts/migrate.py upgrade" in refused.stderr
        upgraded = subprocess.run([sys.executable, str(ROOT / "scripts" / "migrate.py"), "upgrade"], env=env,
                                  cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert upgraded.returncode == 0, upgraded.stderr
    after = probe(ROOT, "read", env, tmp_path / "after.json")

    assert as_utc_instants(after) == as_utc_instants(before)
    backups = list((tmp_path / "data" / "backups").glob("metadata-rev0001-*.db"))
    assert len(backups) == (1 if metadata == "sqlite" else 0)  # SQLite copied itself aside, then upgraded
    url = (f"mysql+pymysql://{env['MYSQL_USER']}:{env['MYSQL_PWD']}@{env['MYSQL_HOST']}:{env['MYSQL_PORT']}/"
           f"{env['MYSQL_DB']}" if metadata == "mariadb" else f"sqlite:///{tmp_path / 'data' / 'metadata.db'}")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:  # recorded now, not inferred
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == schema.head_revision()
    finally:
        engine.dispose()
