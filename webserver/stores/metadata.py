"""Metadata in SQL: SQLite file by default, MySQL/MariaDB through pymysql. One code path (SQLAlchemy Core).

This store, with the image files, is the source of truth: Milvus holds only derived vectors and can be
rebuilt from it (scripts/reindex.py).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, IntegrityError, InterfaceError, OperationalError

from webserver.errors import AlreadyExists, StoreUnavailable
from webserver.stores import schema as schema_revisions
from webserver.stores.schema import SchemaReport

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only

# The layout of the newest revision in stores/migrations/versions (a test holds the two equal).
schema = sa.MetaData()
collections_table = sa.Table(
    "collections", schema,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("encoder_id", sa.String(255), nullable=False),
    sa.Column("dimension", sa.Integer, nullable=False),
    sa.Column("metric", sa.String(16), nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),
    # The VectorStore layout its Milvus collection was made with (stores/vectors.py VECTOR_LAYOUT).
    sa.Column("vector_layout", sa.Integer, nullable=False, server_default="1"),
)
images_table = sa.Table(
    "images", schema,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("collection", sa.String(64),
              sa.ForeignKey("collections.name", ondelete="CASCADE"), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("caption", sa.Text, nullable=True),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),
    sa.UniqueConstraint("collection", "sha256", name="uq_images_collection_sha256"),
    sa.Index("ix_images_collection_filename", "collection", "filename"),
    sqlite_autoincrement=True,  # never reuse a deleted id: it is also the Milvus primary key
)


@dataclass(frozen=True)
class CollectionRecord:
    name: str
    encoder_id: str
    dimension: int
    metric: str
    created: datetime
    vector_layout: int = 1


@dataclass(frozen=True)
class NewImage:
    sha256: str
    path: str
    filename: str
    caption: str | None
    meta: dict[str, Any]
    width: int
    height: int


@dataclass(frozen=True)
class ImageRecord(NewImage):
    id: int
    collection: str
    created: datetime


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@contextlib.contextmanager
def _unavailable_as_domain_error(what: str) -> Iterator[None]:
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise StoreUnavailable(f"The metadata database is unavailable ({what}): {exc.orig}") from exc


class MetadataStore:
    def __init__(self, url: str):
        connect_args: dict[str, Any] = {}
        if url.startswith("mysql"):
            connect_args = {"connect_timeout": 5, "read_timeout": 30, "write_timeout": 30}
        elif url.startswith("sqlite"):
            connect_args = {"timeout": 30, "check_same_thread": False}
        self.url = url
        self.engine: Engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    def prepare_schema(self, *, upgrade: bool, backup_dir: Path | None = None) -> SchemaReport:
        """Create, recognise, upgrade or refuse the stored layout (webserver/stores/schema.py's rules)."""
        with _unavailable_as_domain_error("checking the schema revision"):
            return schema_revisions.prepare(self.engine, upgrade=upgrade, backup_dir=backup_dir)

    def create_schema(self) -> SchemaReport:
        """The newest layout, creating or upgrading as needed (tests and tools on their own data)."""
        return self.prepare_schema(upgrade=True)

    def ping(self) -> None:
        with _unavailable_as_domain_error("ping"), self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    # -- collections -------------------------------------------------------------------------
    def add_collection(self, *, name: str, encoder_id: str, dimension: int, metric: str,
                       vector_layout: int = 1) -> CollectionRecord:
        record = CollectionRecord(name, encoder_id, dimension, metric, _now(), vector_layout)
        with _unavailable_as_domain_error("adding a collection"):
            try:
                with self.engine.begin() as conn:
                    conn.execute(collections_table.insert().values(**record.__dict__))
            except IntegrityError as exc:
                raise AlreadyExists(f"Collection {name!r} already exists.") from exc
        return record

    def get_collection(self, name: str) -> CollectionRecord | None:
        with _unavailable_as_domain_error("reading a collection"), self.engine.connect() as conn:
            row = conn.execute(collections_table.select().where(collections_table.c.name == name)).first()
        return CollectionRecord(**row._mapping) if row else None

    def list_collections(self) -> list[CollectionRecord]:
        with _unavailable_as_domain_error("listing collections"), self.engine.connect() as conn:
            rows = conn.execute(collections_table.select().order_by(collections_table.c.name)).all()
        return [CollectionRecord(**row._mapping) for row in rows]

    def set_collection_encoder(self, name: str, *, encoder_id: str, dimension: int, vector_layout: int) -> None:
        with _unavailable_as_domain_error("updating a collection"), self.engine.begin() as conn:
            conn.execute(collections_table.update().where(collections_table.c.name == name)
                         .values(encoder_id=encoder_id, dimension=dimension, vector_layout=vector_layout))

    def delete_collection(self, name: str) -> list[tuple[str, str]]:
        """Delete the collection and its rows; returns the (sha256, path) of the deleted images."""
        with _unavailable_as_domain_error("deleting a collection"), self.engine.begin() as conn:
            files = conn.execute(sa.select(images_table.c.sha256, images_table.c.path)
                                 .where(images_table.c.collection == name)).all()
            conn.execute(images_table.delete().where(images_table.c.collection == name))
            conn.execute(collections_table.delete().where(collections_table.c.name == name))
        return [(sha, path) for sha, path in files]

    # -- images ------------------------------------------------------------------------------
    def count_images(self, collection: str) -> int:
        query = sa.select(sa.func.count()).select_from(images_table).where(
            images_table.c.collection == collection)
        with _unavailable_as_domain_error("counting images"), self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def find_by_sha256(self, collection: str, digests: Sequence[str]) -> dict[str, int]:
        if not digests:
            return {}
        query = sa.select(images_table.c.sha256, images_table.c.id).where(
            images_table.c.collection == collection, images_table.c.sha256.in_(list(set(digests))))
        with _unavailable_as_domain_error("looking up digests"), self.engine.connect() as conn:
            return {sha: image_id for sha, image_id in conn.execute(query).all()}

    def get_images(self, ids: Sequence[int]) -> dict[int, ImageRecord]:
        if not ids:
            return {}
        query = images_table.select().where(images_table.c.id.in_([int(i) for i in ids]))
        with _unavailable_as_domain_error("reading images"), self.engine.connect() as conn:
            return {row.id: ImageRecord(**row._mapping) for row in conn.execute(query).all()}

    def find_by_filename(self, collection: str, filenames: Sequence[str]) -> ImageRecord | None:
        """The oldest image of the collection stored under one of these names."""
        query = (images_table.select().where(images_table.c.collection == collection,
                                             images_table.c.filename.in_(list(filenames)))
                 .order_by(images_table.c.id).limit(1))
        with _unavailable_as_domain_error("finding an image by name"), self.engine.connect() as conn:
            row = conn.execute(query).first()
        return ImageRecord(**row._mapping) if row else None

    def list_images(self, collection: str, *, limit: int, offset: int) -> list[ImageRecord]:
        query = (images_table.select().where(images_table.c.collection == collection)
                 .order_by(images_table.c.id).limit(limit).offset(offset))
        with _unavailable_as_domain_error("listing images"), self.engine.connect() as conn:
            return [ImageRecord(**row._mapping) for row in conn.execute(query).all()]

    def iter_image_batches(self, collection: str, batch_size: int) -> Iterator[list[ImageRecord]]:
        last_id = 0
        while True:
            query = (images_table.select().where(images_table.c.collection == collection,
                                                 images_table.c.id > last_id)
                     .order_by(images_table.c.id).limit(batch_size))
            with _unavailable_as_domain_error("reading images"), self.engine.connect() as conn:
                batch = [ImageRecord(**row._mapping) for row in conn.execute(query).all()]
            if not batch:
                return
            yield batch
            last_id = batch[-1].id

    def count_sha256_references(self, sha256: str) -> int:
        query = sa.select(sa.func.count()).select_from(images_table).where(images_table.c.sha256 == sha256)
        with _unavailable_as_domain_error("counting references"), self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    @contextlib.contextmanager
    def insert_images(self, collection: str, images: Sequence[NewImage], *,
                      ids: Sequence[int | None] | None = None,
                      created: Sequence[datetime | None] | None = None) -> Iterator[list[int]]:
        """Insert rows in an open transaction and yield their ids; commit only if the block succeeds.

        The caller writes the vectors inside the block, so a failed vector write leaves no row.
        Raises AlreadyExists when a digest is already present (a concurrent insert of the same bytes).
        `ids` / `created` (an import) keep given values; a None id is allocated as usual.
        """
        with _unavailable_as_domain_error("inserting images"):
            try:
                with self.engine.begin() as conn:
                    yield [self._insert_one(conn, collection, image, ids[i] if ids else None,
                                            created[i] if created else None) for i, image in enumerate(images)]
            except IntegrityError as exc:
                raise AlreadyExists("An image with the same bytes was inserted concurrently.") from exc

    def taken_ids(self, ids: Sequence[int]) -> set[int]:
        """Which of these ids any collection's rows already use (ids are global: they key Milvus too)."""
        if not ids:
            return set()
        query = sa.select(images_table.c.id).where(images_table.c.id.in_([int(i) for i in ids]))
        with _unavailable_as_domain_error("checking ids"), self.engine.connect() as conn:
            return {int(row[0]) for row in conn.execute(query).all()}

    @staticmethod
    def _insert_one(conn: Connection, collection: str, image: NewImage, image_id: int | None = None,
                    created: datetime | None = None) -> int:
        extra = {"id": image_id} if image_id is not None else {}
        result = conn.execute(images_table.insert().values(collection=collection, created=created or _now(),
                                                           **extra, **image.__dict__))
        key = result.inserted_primary_key
        assert key is not None, "an INSERT of one row reports its key"
        return int(key[0])

    @contextlib.contextmanager
    def delete_images(self, ids: Sequence[int]) -> Iterator[None]:
        """Delete rows in a transaction that commits only if the block (the vector delete) succeeds."""
        with _unavailable_as_domain_error("deleting images"), self.engine.begin() as conn:
            conn.execute(images_table.delete().where(images_table.c.id.in_([int(i) for i in ids])))
            yield


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


__all__ = ["MetadataStore", "CollectionRecord", "ImageRecord", "NewImage", "DatabaseError"]
