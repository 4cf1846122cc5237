"""Metadata in SQL: SQLite file by default, MySQL/MariaDB through pymysql. One code path (SQLAlchemy Core).

This store, with the image files, is the source of truth: Milvus holds only derived vectors and can be
rebuilt from it (scripts/reindex.py).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, IntegrityError, InterfaceError, OperationalError

from webserver.errors import AlreadyExists, Contention, NotFound, StoreUnavailable
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
    sqlite_autoincrement=True,  # revision 0001's layout; ids now come from id_sequence
)
# Ids are handed out here, in a transaction of their own, so no id is ever given twice (revision 0003).
id_sequence_table = sa.Table(
    "id_sequence", schema,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("next_id", sa.BigInteger, nullable=False),
)
# How many image rows use each content-addressed file, changed in the rows' own transaction.
stored_files_table = sa.Table(
    "stored_files", schema,
    sa.Column("path", sa.String(512), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("refs", sa.Integer, nullable=False),
)
_IMAGE_IDS = id_sequence_table.c.name == "images"
MAX_IMAGE_ID = 2**53 - 1  # ids stay exact in JavaScript and in clients that read JSON numbers as doubles


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
    except OperationalError as exc:
        if _is_contention(exc):
            raise Contention(f"Concurrent writes held each other up ({what}); send the request again.") from exc
        raise StoreUnavailable(f"The metadata database is unavailable ({what}): {exc.orig}") from exc
    except InterfaceError as exc:
        raise StoreUnavailable(f"The metadata database is unavailable ({what}): {exc.orig}") from exc


MYSQL_DEADLOCK, MYSQL_LOCK_WAIT_TIMEOUT = 1213, 1205


def _is_contention(exc: OperationalError) -> bool:
    """A deadlock or lock timeout (MySQL), or SQLite still locked after its busy timeout: not a store
    that is down, but writes in each other's way."""
    args = getattr(exc.orig, "args", ())
    if args and args[0] in (MYSQL_DEADLOCK, MYSQL_LOCK_WAIT_TIMEOUT):
        return True
    return "database is locked" in str(exc.orig)


class MetadataStore:
    def __init__(self, url: str):
        connect_args: dict[str, Any] = {}
        engine_args: dict[str, Any] = {}
        if url.startswith("mysql"):
            connect_args = {"connect_timeout": 5, "read_timeout": 30, "write_timeout": 30}
            # No gap locks on index scans: a delete and an insert of neighbouring rows no longer deadlock.
            engine_args["isolation_level"] = "READ COMMITTED"
        elif url.startswith("sqlite"):
            connect_args = {"timeout": 30, "check_same_thread": False}
        self.url = url
        self.engine: Engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args,
                                                **engine_args)
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
        # MySQL's collation matches 'Fashion' to 'fashion'; a name is exact everywhere else (Milvus).
        return CollectionRecord(**row._mapping) if row is not None and row.name == name else None

    def list_collections(self) -> list[CollectionRecord]:
        with _unavailable_as_domain_error("listing collections"), self.engine.connect() as conn:
            rows = conn.execute(collections_table.select().order_by(collections_table.c.name)).all()
        return [CollectionRecord(**row._mapping) for row in rows]

    def set_collection_encoder(self, name: str, *, encoder_id: str, dimension: int, vector_layout: int) -> None:
        with _unavailable_as_domain_error("updating a collection"), self.engine.begin() as conn:
            conn.execute(collections_table.update().where(collections_table.c.name == name)
                         .values(encoder_id=encoder_id, dimension=dimension, vector_layout=vector_layout))

    @contextlib.contextmanager
    def delete_collection(self, name: str) -> Iterator[list[str]]:
        """Delete the collection and its rows in a transaction that commits only if the block succeeds;
        yields the paths of the files no row uses any more, for the block to remove (see delete_images)."""
        with _unavailable_as_domain_error("deleting a collection"), self.engine.begin() as conn:
            released = _release_files(conn, images_table.c.collection == name)
            conn.execute(images_table.delete().where(images_table.c.collection == name))
            conn.execute(collections_table.delete().where(collections_table.c.name == name))
            yield released

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

    def get_images(self, ids: Sequence[int], *, collection: str | None = None) -> dict[int, ImageRecord]:
        """The rows of these ids; with `collection`, only those of that collection (a search never returns
        another collection's row, even for a vector left behind under an id)."""
        if not ids:
            return {}
        query = images_table.select().where(images_table.c.id.in_([int(i) for i in ids]))
        if collection is not None:
            query = query.where(images_table.c.collection == collection)
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
        def read(query: sa.Select) -> Sequence[sa.Row]:
            with self.engine.connect() as conn:  # a connection per batch: writers are not held up
                return conn.execute(query).all()

        return _image_batches(read, collection, batch_size)

    @contextlib.contextmanager
    def insert_images(self, collection: str, images: Sequence[NewImage], *,
                      ids: Sequence[int | None] | None = None,
                      created: Sequence[datetime | None] | None = None,
                      ids_reserved: bool = False) -> Iterator[list[int]]:
        """Insert rows in an open transaction and yield their ids; commit only if the block succeeds.

        The caller stores the files and writes the vectors inside the block. The rows' file references are
        taken first: they hold each file's lock until the commit, so a delete of the file's last other row
        waits, and cannot remove a file this insert is about to use.
        Ids are reserved before, in a transaction of their own: never handed out again, even if this one
        rolls back or the process dies. `ids` (an import) asks for given ids, kept where never handed out
        (see reserve_ids); `created` keeps given times. Raises AlreadyExists when a digest is already
        in the collection (a concurrent insert of the same bytes). `ids_reserved`: the caller reserved
        `ids` already (a restore reserves all of a backup's ids at once); they are used as given.
        """
        if ids_reserved and ids is not None and all(i is not None for i in ids):
            reserved = [int(i) for i in ids if i is not None]
        else:
            reserved = self.reserve_ids(list(ids) if ids is not None else [None] * len(images))
        with _unavailable_as_domain_error("inserting images"):
            try:
                with self.engine.begin() as conn:
                    _reference_files(conn, images)
                    conn.execute(images_table.insert(), [
                        {**image.__dict__, "id": image_id, "collection": collection,
                         "created": (created[i] if created else None) or _now()}
                        for i, (image, image_id) in enumerate(zip(images, reserved, strict=True))])
                    yield reserved
            except IntegrityError as exc:
                if self.get_collection(collection) is None:  # the rows' collection went meanwhile
                    raise NotFound(f"Collection {collection!r} was deleted while the images were added.") from exc
                raise AlreadyExists("An image with the same bytes was inserted concurrently.") from exc

    def reserve_ids(self, wanted: Sequence[int | None]) -> list[int]:
        """One id per entry, committed at once so no other writer gets it: the wanted id where it was
        never handed out (at or above the sequence's next id, not asked twice), else a fresh one."""
        with _unavailable_as_domain_error("reserving ids"), self.engine.begin() as conn:
            # A write first: it takes the lock (SQLite's write lock, InnoDB's row lock) before the read.
            conn.execute(id_sequence_table.update().where(_IMAGE_IDS).values(next_id=id_sequence_table.c.next_id))
            next_id = int(conn.execute(sa.select(id_sequence_table.c.next_id).where(_IMAGE_IDS)).scalar_one())
            kept = {int(w) for w in wanted if w is not None and next_id <= int(w) <= MAX_IMAGE_ID}
            ceiling = max(kept, default=next_id - 1) + 1
            reserved = []
            for w in wanted:
                if w is not None and int(w) in kept:
                    kept.discard(int(w))
                    reserved.append(int(w))
                else:
                    reserved.append(ceiling)
                    ceiling += 1
            conn.execute(id_sequence_table.update().where(_IMAGE_IDS).values(next_id=ceiling))
        return reserved

    def count_all_images(self) -> int:
        with _unavailable_as_domain_error("counting images"), self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(images_table)).scalar_one())

    def next_id(self) -> int:
        """Every id ever handed out is below this."""
        with _unavailable_as_domain_error("reading the id sequence"), self.engine.connect() as conn:
            return int(conn.execute(sa.select(id_sequence_table.c.next_id).where(_IMAGE_IDS)).scalar_one())

    @contextlib.contextmanager
    def delete_images(self, collection: str, ids: Sequence[int]) -> Iterator[list[str]]:
        """Delete rows of one collection in a transaction that commits only if the block (the vector delete)
        succeeds. Yields the paths of the files no row uses any more: the block removes them while the
        transaction still holds their locks, so an insert of the same bytes waits for the commit and then
        stores the file again."""
        of_these = sa.and_(images_table.c.collection == collection,
                           images_table.c.id.in_([int(i) for i in ids]))
        with _unavailable_as_domain_error("deleting images"), self.engine.begin() as conn:
            released = _release_files(conn, of_these)
            conn.execute(images_table.delete().where(of_these))
            yield released

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """Reads that all see the database as of one moment (a backup while writes go on): one read
        transaction, held open (SQLite's WAL keeps its snapshot; MySQL: a consistent snapshot)."""
        with _unavailable_as_domain_error("opening a snapshot"), self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")
            else:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            try:
                yield Snapshot(conn)
            finally:
                conn.rollback()

    # -- stored files (for fsck) ----------------------------------------------------------------------
    def file_references(self) -> dict[str, int]:
        """path -> the recorded count of rows using it."""
        with _unavailable_as_domain_error("reading file references"), self.engine.connect() as conn:
            return {path: int(refs) for path, refs in conn.execute(
                sa.select(stored_files_table.c.path, stored_files_table.c.refs)).all()}

    def counted_file_references(self) -> dict[str, tuple[str, int]]:
        """path -> (sha256, how many rows use it), counted from the rows themselves."""
        query = (sa.select(images_table.c.path, sa.func.min(images_table.c.sha256), sa.func.count())
                 .group_by(images_table.c.path))
        with _unavailable_as_domain_error("counting file references"), self.engine.connect() as conn:
            return {path: (sha, int(count)) for path, sha, count in conn.execute(query).all()}

    def set_file_references(self, counted: dict[str, tuple[str, int]]) -> None:
        """Make stored_files say exactly `counted` (fsck --repair, offline)."""
        with _unavailable_as_domain_error("rewriting file references"), self.engine.begin() as conn:
            conn.execute(stored_files_table.delete())
            if counted:
                conn.execute(stored_files_table.insert(), [
                    {"path": path, "sha256": sha, "refs": refs} for path, (sha, refs) in counted.items()])


class Snapshot:
    """Reads of one open transaction (MetadataStore.snapshot)."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def collections(self) -> list[CollectionRecord]:
        with _unavailable_as_domain_error("reading collections"):
            rows = self.conn.execute(collections_table.select().order_by(collections_table.c.name)).all()
        return [CollectionRecord(**row._mapping) for row in rows]

    def next_id(self) -> int:
        with _unavailable_as_domain_error("reading the id sequence"):
            return int(self.conn.execute(sa.select(id_sequence_table.c.next_id).where(_IMAGE_IDS)).scalar_one())

    def image_batches(self, collection: str, batch_size: int) -> Iterator[list[ImageRecord]]:
        return _image_batches(lambda query: self.conn.execute(query).all(), collection, batch_size)


def _image_batches(read: Callable[[sa.Select], Sequence[sa.Row]], collection: str,
                   batch_size: int) -> Iterator[list[ImageRecord]]:
    """A collection's rows in id order, batch_size at a time (keyset pagination); `read` runs each query."""
    last_id = 0
    while True:
        query = (images_table.select().where(images_table.c.collection == collection, images_table.c.id > last_id)
                 .order_by(images_table.c.id).limit(batch_size))
        with _unavailable_as_domain_error("reading images"):
            batch = [ImageRecord(**row._mapping) for row in read(query)]
        if not batch:
            return
        yield batch
        last_id = batch[-1].id


def _reference_files(conn: Connection, images: Sequence[NewImage]) -> None:
    """One more reference on each image's file (a new file row at 1), in path order (no lock cycles)."""
    by_path = {image.path: image.sha256 for image in images}
    table = stored_files_table
    for path in sorted(by_path):
        values = {"path": path, "sha256": by_path[path], "refs": 1}
        statement: sa.Executable
        if conn.dialect.name == "sqlite":
            statement = sqlite_insert(table).values(**values).on_conflict_do_update(
                index_elements=[table.c.path], set_={"refs": table.c.refs + 1})
        else:
            statement = mysql_insert(table).values(**values).on_duplicate_key_update(refs=table.c.refs + 1)
        conn.execute(statement)


def _release_files(conn: Connection, rows: sa.ColumnElement[bool]) -> list[str]:
    """One reference less on the file of each row matching `rows` (one collection's rows: a path occurs
    once), dropping the files that reach zero; returns their paths. The rows are locked first, by a
    write that changes nothing: so SQLite takes its write lock before reading anything, and of two
    deletes of the same row on MySQL the second waits, then finds it gone (both used to count it)."""
    conn.execute(images_table.update().where(rows).values(path=images_table.c.path))
    paths = sorted({row[0] for row in conn.execute(sa.select(images_table.c.path).where(rows)).all()})
    table = stored_files_table
    for path in paths:  # in path order: no lock cycles between deletes
        conn.execute(table.update().where(table.c.path == path).values(refs=table.c.refs - 1))
    released = [row[0] for row in conn.execute(
        sa.select(table.c.path).where(table.c.path.in_(paths), table.c.refs <= 0)).all()] if paths else []
    if released:
        conn.execute(table.delete().where(table.c.path.in_(released)))
    return released


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


__all__ = ["MetadataStore", "CollectionRecord", "ImageRecord", "NewImage", "DatabaseError"]
