"""Which layout a metadata database holds, and bringing it to the code's (Alembic revisions in
`migrations/versions/`, one small file per change).

Rules, for SQLite and MySQL/MariaDB alike:
- an empty database is created at the newest revision;
- a database made before revisions existed (release 0.4.0: tables, no `alembic_version`) is checked to
  hold revision 0001's tables and stamped 0001, never re-created;
- an older revision is upgraded only when the caller allows it (the embedded SQLite default always,
  after copying its file aside; MySQL only with MIGRATE_ON_START=1 or `scripts/migrate.py upgrade`);
- a revision this code does not know (a newer release wrote it) is always refused: old code never runs
  on a new layout.
"""
from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from webserver.errors import SchemaVersionError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
UPGRADE_COMMAND = "python scripts/migrate.py upgrade"
# What release 0.4.0 created, before revisions were recorded: such a database is revision 0001.
UNVERSIONED_REVISION = "0001"
UNVERSIONED_TABLES = {
    "collections": {"name", "encoder_id", "dimension", "metric", "created"},
    "images": {"id", "collection", "sha256", "path", "filename", "caption", "meta", "width", "height", "created"},
}


@dataclass(frozen=True)
class SchemaReport:
    before: str | None  # the revision found (None: an empty database)
    after: str  # the revision the database holds now
    backup: Path | None = None  # the copy made before upgrading (SQLite)

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration revisions"
    return head


def known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The recorded revision; an unversioned 0.4.0 database reads as 0001; an empty one as None."""
    with engine.connect() as conn:
        recorded = MigrationContext.configure(conn).get_current_revision()
        if recorded is not None:
            return recorded
        return UNVERSIONED_REVISION if _unversioned_layout(conn) else None


def _unversioned_layout(conn: Connection) -> bool:
    """True for release 0.4.0's tables; False for an empty database; refuses anything else."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names()) & set(UNVERSIONED_TABLES)
    if not present:
        return False
    for table, expected in UNVERSIONED_TABLES.items():
        columns = {c["name"] for c in inspector.get_columns(table)} if table in present else set()
        if columns != expected:
            raise SchemaVersionError(
                f"The metadata database has a table {table!r} with columns {sorted(columns)} but no recorded "
                f"schema revision, and it is not the layout of release 0.4.0 ({sorted(expected)}). "
                "Refusing to touch it: point the server at another database or restore a backup.")
    return True


def prepare(engine: Engine, *, upgrade: bool, backup_dir: Path | None = None) -> SchemaReport:
    """Bring the database to the code's revision, or refuse (see the module's rules). `upgrade` allows
    upgrading an older revision; `backup_dir` (SQLite) receives a copy of the file first."""
    head = head_revision()
    with _schema_lock(engine):
        found = current_revision(engine)
        if found is not None and found not in known_revisions():
            raise SchemaVersionError(
                f"The metadata database is at schema revision {found}, written by a newer release; this code "
                f"knows revisions up to {head}. Run the newer release, or restore a backup made before the "
                "upgrade.")
        if found == head:
            _stamp_if_unrecorded(engine, head)
            return SchemaReport(found, head)
        if found is not None and not upgrade:
            raise SchemaVersionError(
                f"The metadata database is at schema revision {found}; this release needs {head}. Back it up "
                f"and run `{UPGRADE_COMMAND}` (or start once with MIGRATE_ON_START=1).")
        backup = backup_sqlite(engine, backup_dir, found) if found is not None and backup_dir else None
        _stamp_if_unrecorded(engine, found)
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        return SchemaReport(found, head, backup)


def _stamp_if_unrecorded(engine: Engine, revision: str | None) -> None:
    """Record the revision of an unversioned 0.4.0 database (tables untouched)."""
    if revision is None:
        return
    with engine.begin() as conn:
        if MigrationContext.configure(conn).get_current_revision() is None:
            command.stamp(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with _schema_lock(engine), engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)


def backup_sqlite(engine: Engine, backup_dir: Path, revision: str) -> Path | None:
    """A consistent copy of the SQLite file (sqlite3's online backup, WAL included) before an upgrade."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = backup_dir / f"{Path(database).stem}-rev{revision}-{stamp}.db"
    with contextlib.closing(sqlite3.connect(database)) as source, contextlib.closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    """On MySQL, one process at a time checks and upgrades (several app processes may start together)."""
    if engine.dialect.name != "mysql":
        yield
        return
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT GET_LOCK('image_retrieval_schema', 120)")).scalar() != 1:
            raise SchemaVersionError("Another process held the schema lock for 120 s; try again.")
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT RELEASE_LOCK('image_retrieval_schema')"))
