"""Schema revisions: created, recognised, upgraded (with a copy first) or refused, on SQLite and MariaDB."""
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.scripts.helpers import run_script
from webserver.errors import SchemaVersionError
from webserver.stores import schema
from webserver.stores.metadata import MetadataStore
from webserver.stores.metadata import schema as declared


@pytest.fixture(params=["sqlite", "mariadb"])
def settings(request, make_settings):
    settings = make_settings(metadata=request.param)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    return settings


@pytest.fixture
def store(settings):
    store = MetadataStore(settings.metadata_url)
    yield store
    store.dispose()


def at_revision(store, revision: str) -> None:
    with store.engine.begin() as conn:
        schema.command.upgrade(schema.alembic_config(conn), revision)


def add_row_at_0001(store) -> None:
    """A collection as release 0.4.0 wrote it (revision 0001's columns)."""
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO collections (name, encoder_id, dimension, metric, created) "
                             "VALUES ('c1', 'enc/a', 4, 'COSINE', '2026-11-30 10:00:00')"))


def revision_in_table(store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_an_empty_database_gets_the_layout_the_code_declares(store):
    report = store.create_schema()
    assert (report.before, report.after) == (None, schema.head_revision())
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), declared) == []
    assert revision_in_table(store) == schema.head_revision()


def test_a_database_of_release_0_4_0_is_recognised_as_0001_and_upgraded_not_recreated(store, settings):
    at_revision(store, "0001")
    add_row_at_0001(store)
    with store.engine.begin() as conn:  # as release 0.4.0 left it: the tables, no revision recorded
        conn.execute(sa.text("DROP TABLE alembic_version"))
    report = store.prepare_schema(upgrade=True, backup_dir=settings.backups_dir)
    assert (report.before, report.after) == (schema.UNVERSIONED_REVISION, schema.head_revision())
    record = store.get_collection("c1")
    assert (record.encoder_id, record.vector_layout) == ("enc/a", 1)


def test_tables_of_an_unknown_layout_are_refused(store):
    with store.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE images (id INTEGER PRIMARY KEY, other VARCHAR(10))"))
    with pytest.raises(SchemaVersionError, match="not the layout of release 0.4.0"):
        store.prepare_schema(upgrade=True)


def test_a_database_newer_than_the_code_is_refused_even_with_upgrades_allowed(store):
    store.create_schema()
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(SchemaVersionError, match="revision 0099, written by a newer release"):
        store.prepare_schema(upgrade=True)


def test_an_older_revision_is_refused_without_permission_and_upgraded_with_it(store, settings):
    at_revision(store, "0001")
    add_row_at_0001(store)
    with pytest.raises(SchemaVersionError, match="scripts/migrate.py upgrade"):
        store.prepare_schema(upgrade=False)
    assert revision_in_table(store) == "0001"

    report = store.prepare_schema(upgrade=True, backup_dir=settings.backups_dir)
    head = schema.head_revision()
    assert (report.before, report.after) == ("0001", head) and revision_in_table(store) == head
    assert store.get_collection("c1").vector_layout == 1
    if settings.MYSQL_HOST is None:  # the SQLite file was copied first, at its old revision
        backup = sa.create_engine(f"sqlite:///{report.backup}")
        with backup.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0001"
            assert conn.execute(sa.text("SELECT encoder_id FROM collections")).scalar() == "enc/a"
        backup.dispose()
    else:
        assert report.backup is None

    schema.downgrade(store.engine, "0001")
    assert revision_in_table(store) == "0001"
    assert "vector_layout" not in {c["name"] for c in sa.inspect(store.engine).get_columns("collections")}


def test_revision_0003_counts_file_references_and_continues_the_ids(store):
    """Ids go on after every id the old layout handed out (deleted ones too); each file's references are
    the rows using it."""
    at_revision(store, "0002")
    add_row_at_0001(store)
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO collections (name, encoder_id, dimension, metric, created) "
                             "VALUES ('c2', 'enc/a', 4, 'COSINE', '2026-11-30 10:00:00')"))
        for image_id, collection, n in [(1, "c1", 1), (2, "c2", 1), (3, "c2", 2), (9, "c1", 3)]:
            conn.execute(sa.text(
                "INSERT INTO images (id, collection, sha256, path, filename, meta, width, height, created) "
                "VALUES (:id, :c, :sha, :path, 'f.png', '{}', 1, 1, '2026-11-30 10:00:00')"),
                {"id": image_id, "c": collection, "sha": f"{n:064x}", "path": f"p/{n}.png"})
        conn.execute(sa.text("DELETE FROM images WHERE id = 9"))
    at_revision(store, "0003")
    assert store.file_references() == {"p/1.png": 2, "p/2.png": 1}
    assert store.next_id() == 10


def test_the_server_refuses_to_start_on_a_newer_database(make_settings):
    from fastapi.testclient import TestClient

    from webserver.api.app import create_app

    settings = make_settings()
    settings.DATA_DIR.mkdir(parents=True)
    store = MetadataStore(settings.metadata_url)
    store.create_schema()
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    store.dispose()
    with pytest.raises(SchemaVersionError, match="newer release"), TestClient(create_app(settings)):
        pass


def test_migrate_script_reports_and_upgrades(tmp_path, clip_checkpoint):
    from tests.scripts.helpers import script_env

    env = script_env(tmp_path / "data", clip_checkpoint)
    current = run_script("migrate.py", "current", env=env)
    assert current.returncode == 0 and "(empty database)" in current.stdout
    upgraded = run_script("migrate.py", "upgrade", env=env)
    assert upgraded.returncode == 0 and f"to {schema.head_revision()}" in upgraded.stdout
    again = run_script("migrate.py", "upgrade", env=env)
    assert f"already at revision {schema.head_revision()}" in again.stdout
