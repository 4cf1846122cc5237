"""Schema revisions of the metadata database for operators (scripts/migrate.py): no model is loaded."""
from __future__ import annotations

from dataclasses import dataclass

from config import Settings
from webserver.stores import schema
from webserver.stores.metadata import MetadataStore
from webserver.stores.schema import SchemaReport


@dataclass(frozen=True)
class RevisionStatus:
    database: str  # the URL without its password
    current: str | None  # None: an empty database
    head: str  # the newest revision this code knows


def _open(settings: Settings) -> MetadataStore:
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    return MetadataStore(settings.metadata_url)


def status(settings: Settings) -> RevisionStatus:
    store = _open(settings)
    try:
        return RevisionStatus(store.engine.url.render_as_string(hide_password=True),
                              schema.current_revision(store.engine), schema.head_revision())
    finally:
        store.dispose()


def upgrade(settings: Settings) -> SchemaReport:
    """To the newest revision; a SQLite file is copied to DATA_DIR/backups first."""
    store = _open(settings)
    try:
        return store.prepare_schema(upgrade=True, backup_dir=settings.backups_dir)
    finally:
        store.dispose()


def downgrade(settings: Settings, revision: str) -> None:
    store = _open(settings)
    try:
        schema.downgrade(store.engine, revision)
    finally:
        store.dispose()
