"""Vectors in Milvus through pymilvus' MilvusClient: an embedded Milvus Lite file or a server URL.

One Milvus collection per project collection: an INT64 primary key (the metadata row id), a
FLOAT_VECTOR compared by COSINE, and the user's metadata as a JSON field so filters run inside Milvus.
Reads use Session consistency (see READ_CONSISTENCY). The index of new collections and how far a search
explores it are IndexSettings (MILVUS_INDEX_TYPE and friends; defaults from scripts/bench_scale.py).
"""
from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from webserver.errors import DomainError, InvalidInput, NotFound, StoreUnavailable
from webserver.stores.exact_index import ExactIndex, MemoryCopies, SearchFilter

VECTOR_FIELD = "vector"
META_FIELD = "meta"
FILTER_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_FILTER_TERMS = 16
FLUSH_EVERY_ROWS = 5000


@dataclass(frozen=True)
class Hit:
    id: int
    score: float


class _LiteUnimplementedFilter(logging.Filter):
    """Milvus Lite's embedded gRPC server logs a traceback when pymilvus asks it for a timestamp while
    waiting on an index build, and pymilvus warns when a query iterator cannot get one (RPCs Lite does
    not implement, and pymilvus copes without)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "Method not implemented" not in message and "failed to get mvccTs" not in message


_LITE_FILTER = _LiteUnimplementedFilter()


class DataDirLocked(StoreUnavailable):
    """Another process holds the embedded Milvus Lite file."""


# Lite files this process has opened: Milvus Lite keeps its lock until the process exits, even after
# close(), and reopening in the same process works, so those are not "held by another process".
_OPENED_LITE_PATHS: set[str] = set()


def _lite_locked_by_another_process(path: str) -> bool:
    """Milvus Lite takes an exclusive flock on <path>/LOCK; pymilvus only reports 'Open local milvus
    failed' when it is taken, so look first to give a message that says what to do."""
    import fcntl

    lock = Path(path) / "LOCK"
    if str(Path(path).resolve()) in _OPENED_LITE_PATHS or not lock.exists():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def build_filter(equalities: Mapping[str, Any] | None, *, exclude_id: int | None = None) -> SearchFilter:
    """Metadata equalities as a filter, with the same condition as a Milvus boolean expression. Keys are
    checked against a strict pattern and values are rendered as literals, so user text never becomes
    expression syntax."""
    checked = _checked_equalities(equalities or {})
    terms = [f'{META_FIELD}["{key}"] == {_literal(key, value)}' for key, value in checked]
    if exclude_id is not None:
        terms.append(f"id != {int(exclude_id)}")
    return SearchFilter(tuple(checked), None if exclude_id is None else int(exclude_id), " and ".join(terms))


def _checked_equalities(equalities: Mapping[str, Any]) -> list[tuple[str, Any]]:
    if len(equalities) > MAX_FILTER_TERMS:
        raise InvalidInput(f"filter: at most {MAX_FILTER_TERMS} keys.")
    for key in equalities:
        if not isinstance(key, str) or not FILTER_KEY_PATTERN.match(key):
            raise InvalidInput(f"filter: key {key!r} must match {FILTER_KEY_PATTERN.pattern}.")
    return list(equalities.items())


def _literal(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise InvalidInput(f"filter: value of {key!r} is outside the 64-bit integer range.")
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        if len(value) > 256 or any(ord(ch) < 32 for ch in value):
            raise InvalidInput(f"filter: value of {key!r} must be at most 256 printable characters.")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise InvalidInput(f"filter: value of {key!r} must be a string, number or boolean.")


@dataclass(frozen=True)
class IndexSettings:
    """The index new collections get, and how widely searches explore it. An existing collection keeps
    the index it was made with: search parameters follow the index each collection has.

    The defaults were chosen with scripts/bench_scale.py (docs/benchmarks.md): HNSW M 16 / efConstruction
    200 / ef 64 gave recall@10 >= 0.98 at 1M clustered vectors on the Milvus server."""
    index_type: str | None = None  # None: HNSW on a Milvus server, AUTOINDEX (FAISS HNSW) on Milvus Lite
    hnsw_m: int = 16
    ef_construction: int = 200
    ivf_nlist: int = 1024
    search_ef: int = 64  # HNSW: candidates explored per search (at least the depth asked for)
    ivf_nprobe: int = 16  # IVF: cells scanned per search

    def build_params(self, index_type: str) -> dict[str, int]:
        if index_type == "HNSW":
            return {"M": self.hnsw_m, "efConstruction": self.ef_construction}
        if index_type.startswith("IVF"):
            return {"nlist": self.ivf_nlist}
        return {}

    def search_params(self, index_type: str, depth: int, *, is_server: bool) -> dict[str, int]:
        if index_type == "HNSW" or (index_type == "AUTOINDEX" and not is_server):  # Lite: FAISS HNSW
            return {"ef": max(self.search_ef, depth)}
        if index_type.startswith("IVF"):
            return {"nprobe": self.ivf_nprobe}
        return {}


# Reads see this process's own writes at once (Session: an upload answered 201 is found by the next
# search through the same process) without waiting for the server's next time tick, which Strong does
# on every read (p50 200 ms on a Milvus 2.3 standalone). Another process's writes show up within the
# server's time-tick interval (200 ms by default).
# pymilvus records the timestamp of each write for Session reads, but a Milvus 2.3 server reports none
# for deletes: for a moment after this process deletes, its reads of that collection use Strong.
READ_CONSISTENCY = "Session"
STRONG_AFTER_DELETE_S = 1.0

# What create_collection makes: fields id (INT64 primary) / vector (FLOAT_VECTOR) / meta (JSON), COSINE,
# the index of `index_type`. Bump it with any change there: collections recorded with an older layout are
# refused until `scripts/reindex.py` rebuilds them (each collection's record carries its layout).
VECTOR_LAYOUT = 1

# MilvusException codes that mean "cannot serve now" rather than "this request is wrong".
_UNAVAILABLE_CODES = {2, 8, 9}  # connection failed / not ready, rate limited, writes denied
_UNAVAILABLE_WORDS = ("unavailable", "deadline", "timeout", "timed out", "connect", "not ready")
_COLLECTION_NOT_FOUND = 100


def _rejection(exc: Exception, what: str) -> DomainError | None:
    """A request Milvus answered and refused (bad filter, wrong dimension, a collection dropped meanwhile)
    is the caller's error; None for a connection failure or timeout (or anything not from Milvus), which
    the caller reports as the store being unavailable."""
    from pymilvus.exceptions import (
        ConnectError,
        ConnectionNotExistException,
        MilvusException,
        MilvusUnavailableException,
    )

    if not isinstance(exc, MilvusException) or isinstance(
            exc, (ConnectError, ConnectionNotExistException, MilvusUnavailableException)):
        return None
    message = str(getattr(exc, "message", "") or exc)
    if exc.code in _UNAVAILABLE_CODES or any(word in message.lower() for word in _UNAVAILABLE_WORDS):
        return None
    if exc.code == _COLLECTION_NOT_FOUND:
        return NotFound(f"Milvus has no such collection ({what}): {message}")
    return InvalidInput(f"Milvus rejected the request ({what}): {message}")


class VectorStore:
    def __init__(self, uri: str, *, token: str | None = None, index: IndexSettings | None = None,
                 timeout_s: float = 10.0, memory_search: bool = True):
        self.uri = uri
        self.is_server = uri.startswith(("http://", "https://", "tcp://", "grpc://"))
        # On Milvus Lite, searches run over a copy of each collection in this process (exact_index.py).
        self._copies = MemoryCopies(self._read_rows) if memory_search and not self.is_server else None
        self.index = index or IndexSettings()
        self.index_type = self.index.index_type or ("HNSW" if self.is_server else "AUTOINDEX")
        self._index_types: dict[str, str] = {}  # collection -> the index type it was made with
        self._token = token
        # Every call has a deadline: a Milvus that stops answering is a prompt 503, not a hung request.
        # Loading, creating, flushing and listing a large collection get longer.
        self._timeout_s = timeout_s
        self._slow_timeout_s = timeout_s * 30
        self._client = None
        self._connect_lock = threading.Lock()
        self._loaded: set[str] = set()
        self._unflushed: dict[str, int] = {}
        self._deleted_at: dict[str, float] = {}

    # -- connection --------------------------------------------------------------------------
    @property
    def client(self):
        """Connected on first use (and again after a failure), so the app starts while Milvus is down."""
        if self._client is None:
            with self._connect_lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self):
        from pymilvus import MilvusClient

        if not self.is_server and _lite_locked_by_another_process(self.uri):
            raise DataDirLocked(
                f"The Milvus Lite file {self.uri} is held by another process (is the server running?). "
                "Only one process can open an embedded Milvus Lite file: stop it, go through its HTTP "
                "API (scripts/insert_milvus.py --server URL), or serve the file with "
                "`milvus-lite server --data-dir DIR --port P` and set MILVUS_HOST/MILVUS_PORT.")
        try:
            if self.is_server:
                # Dedicated: pymilvus 3 otherwise shares one cached channel per address between clients,
                # and a cached channel left idle (then refused by the server's ping policy) failed to
                # recover for the next client.
                return MilvusClient(uri=self.uri, token=self._token or "", timeout=self._timeout_s,
                                    dedicated=True)
            for noisy in ("grpc._server", "pymilvus.client.iterator.query_iterator"):
                logging.getLogger(noisy).addFilter(_LITE_FILTER)
            client = MilvusClient(uri=self.uri)
            _OPENED_LITE_PATHS.add(str(Path(self.uri).resolve()))
            return client
        except Exception as exc:  # pymilvus raises a wide variety here
            raise StoreUnavailable(f"Cannot connect to Milvus at {self.uri}: {exc}") from exc

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(self.client, *args, **kwargs)
        except StoreUnavailable:
            raise
        except Exception as exc:  # MilvusException, grpc and socket errors alike
            rejected = _rejection(exc, what)
            if rejected is not None:
                raise rejected from exc
            if self.is_server:
                self._client = None  # reconnect on the next call
                self._loaded.clear()
            raise StoreUnavailable(f"Milvus failed while {what}: {exc}") from exc

    def _ensure_loaded(self, name: str) -> None:
        """A collection reopened by a new process can be 'released'; load it once before reading."""
        if name not in self._loaded:
            self._call("loading a collection", lambda c: c.load_collection(name, timeout=self._slow_timeout_s))
            self._loaded.add(name)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def ping(self) -> None:
        self._call("listing collections", lambda c: c.list_collections(timeout=self._timeout_s))

    # -- collections -------------------------------------------------------------------------
    def has_collection(self, name: str) -> bool:
        return bool(self._call("checking a collection", lambda c: c.has_collection(name, timeout=self._timeout_s)))

    def create_collection(self, name: str, dimension: int) -> None:
        from pymilvus import DataType, MilvusClient

        def create(client):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dimension)
            schema.add_field(META_FIELD, DataType.JSON)
            index = client.prepare_index_params()
            index.add_index(field_name=VECTOR_FIELD, index_type=self.index_type, metric_type="COSINE",
                            params=self.index.build_params(self.index_type))
            client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong",
                                     timeout=self._slow_timeout_s)

        self._call("creating a collection", create)

    def drop_collection(self, name: str) -> None:
        self._forget(name)
        self._call("dropping a collection", lambda c: c.drop_collection(name, timeout=self._slow_timeout_s))

    def replace_collection(self, name: str, replacement: str) -> None:
        """`replacement` takes `name` (the old collection is dropped, the new one renamed): the switch
        after a rebuild, a few milliseconds without the collection."""
        for forgotten in (name, replacement):
            self._forget(forgotten)
        if self.has_collection(name):
            self._call("dropping the replaced collection",
                       lambda c: c.drop_collection(name, timeout=self._slow_timeout_s))
        self._call("renaming the rebuilt collection", lambda c: c.rename_collection(replacement, name,
                                                                                  timeout=self._slow_timeout_s))

    def _forget(self, name: str) -> None:
        self._loaded.discard(name)
        self._index_types.pop(name, None)
        if self._copies is not None:
            self._copies.forget(name)

    def count(self, name: str) -> int:
        self._ensure_loaded(name)
        level = self._read_level(name)
        rows = self._call("counting", lambda c: c.query(name, filter="", output_fields=["count(*)"],
                                                        consistency_level=level, timeout=self._timeout_s))
        return int(rows[0]["count(*)"])

    # -- vectors -----------------------------------------------------------------------------
    def insert(self, name: str, ids: Sequence[int], vectors: np.ndarray,
               metas: Sequence[Mapping[str, Any]]) -> None:
        """For ids that are new to the collection (the id sequence never hands one out twice). On a
        Milvus server an upsert is a delete plus an insert: every new row also wrote a tombstone for
        compaction to clear (100k rows: built in 157-260 s by upserts, 119 s by inserts)."""
        self._write(name, ids, vectors, metas, replace=False)

    def upsert(self, name: str, ids: Sequence[int], vectors: np.ndarray,
               metas: Sequence[Mapping[str, Any]]) -> None:
        """For ids the collection may hold already (repairs, resumed imports and rebuilds): replaces them."""
        self._write(name, ids, vectors, metas, replace=True)

    def _write(self, name: str, ids: Sequence[int], vectors: np.ndarray, metas: Sequence[Mapping[str, Any]], *,
               replace: bool) -> None:
        rows = [{"id": int(i), VECTOR_FIELD: v.astype(np.float32).tolist(), META_FIELD: dict(m)}
                for i, v, m in zip(ids, vectors, metas, strict=True)]
        if rows:
            write = (lambda c: c.upsert(name, rows, timeout=self._timeout_s)) if replace else (
                lambda c: c.insert(name, rows, timeout=self._timeout_s))
            self._write_through(name, "writing vectors", write, lambda copy: copy.upsert(ids, vectors, metas))
            self._unflushed[name] = self._unflushed.get(name, 0) + len(rows)
            if not self.is_server and self._unflushed[name] >= FLUSH_EVERY_ROWS:
                self.flush(name)

    def flush(self, name: str) -> None:
        """Seal freshly written rows into indexed segments. Searching rows that are still in Milvus
        Lite's growing segment was ~8x slower here (10k rows: ~150 ms vs ~20 ms), so bulk writers flush
        at the end and on Lite the store flushes by itself every FLUSH_EVERY_ROWS rows. Not on a server:
        there each flush seals a segment of its own, and 20 segments of 5,000 rows searched 2-4x slower
        than the segments the server seals by itself (scripts/bench_scale.py, 100k vectors)."""
        self._unflushed[name] = 0
        self._call("flushing", lambda c: c.flush(name, timeout=self._slow_timeout_s))

    def delete(self, name: str, ids: Sequence[int]) -> None:
        if ids:
            self._write_through(name, "deleting vectors",
                                lambda c: c.delete(name, ids=[int(i) for i in ids], timeout=self._timeout_s),
                                lambda copy: copy.delete(ids))
            self._deleted_at[name] = time.monotonic()

    def _write_through(self, name: str, what: str, write, change: Callable[[ExactIndex], None]) -> None:
        """The Milvus write, then the same change to the collection's in-memory copy (Milvus Lite), under
        the copies' lock so the copy sees writes in Milvus' order."""
        if self._copies is None:
            self._call(what, write)
            return
        with self._copies.lock:
            self._call(what, write)
            self._copies.apply(name, change)

    def _read_level(self, name: str) -> str:
        deleted = self._deleted_at.get(name)
        recent = deleted is not None and time.monotonic() - deleted < STRONG_AFTER_DELETE_S
        return "Strong" if recent else READ_CONSISTENCY

    def all_ids(self, name: str, *, batch_size: int = 4096) -> set[int]:
        """Every primary key in the collection (fsck compares them with the rows)."""
        def read(client) -> set[int]:
            found: set[int] = set()
            # Strong: a checker in another process must see every write acknowledged before it started.
            for batch in self._batches(client, name, ["id"], batch_size, consistency_level="Strong"):
                found.update(int(row["id"]) for row in batch)
            return found

        self._ensure_loaded(name)
        return self._call("listing ids", read)

    def get_vectors(self, name: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
        self._ensure_loaded(name)
        level = self._read_level(name)
        rows = self._call("reading vectors",
                          lambda c: c.get(name, ids=[int(i) for i in ids], output_fields=[VECTOR_FIELD],
                                          consistency_level=level, timeout=self._timeout_s))
        return {int(row["id"]): np.asarray(row[VECTOR_FIELD], dtype=np.float32) for row in rows}

    def search(self, name: str, query: np.ndarray, *, limit: int, offset: int = 0,
               where: SearchFilter | None = None) -> list[Hit]:
        if self._copies is not None:
            found = self._copies.search(name, query, limit=limit, offset=offset, where=where)
            if found is not None:
                return [Hit(pk, score) for pk, score in found]
        level = self._read_level(name)

        self._ensure_loaded(name)
        params = {"metric_type": "COSINE", "params": self._search_params(name, limit + offset)}

        def run(client):
            return client.search(name, data=[query.astype(np.float32).tolist()], limit=limit,
                                 offset=offset, filter=where.expression if where else "", anns_field=VECTOR_FIELD,
                                 search_params=params,
                                 output_fields=["id"], consistency_level=level, timeout=self._timeout_s)

        results = self._call("searching", run)
        return [Hit(int(hit["id"]), float(hit["distance"])) for hit in results[0]]

    def start_memory_copies(self, names: Sequence[str]) -> None:
        """Begin reading these collections into memory in the background (Milvus Lite only)."""
        if self._copies is not None:
            for name in names:
                self._copies.start_reading(name)

    def read_memory_copy(self, name: str) -> None:
        """Read the collection into memory now, so that searches use the copy (Milvus Lite only)."""
        if self._copies is not None:
            self._copies.read_now(name)

    def _read_rows(self, name: str, *, batch_size: int = 4096) -> ExactIndex:
        """Every row of the collection from Milvus Lite into a new in-memory copy (~0.5 ms a row here)."""
        def read(client) -> ExactIndex:
            copy = ExactIndex()
            for batch in self._batches(client, name, ["id", VECTOR_FIELD, META_FIELD], batch_size):
                copy.upsert([int(row["id"]) for row in batch],
                            np.asarray([row[VECTOR_FIELD] for row in batch], dtype=np.float32),
                            [row[META_FIELD] or {} for row in batch])
            return copy

        self._ensure_loaded(name)
        return self._call("reading the collection into memory", read)

    def _batches(self, client, name: str, fields: list[str], batch_size: int, **options) -> Iterator[list[dict]]:
        """Every row of the collection, a batch at a time, through a query iterator that is always closed."""
        iterator = client.query_iterator(name, batch_size=batch_size, filter="", output_fields=fields,
                                         timeout=self._slow_timeout_s, **options)
        try:
            while batch := iterator.next():
                yield batch
        finally:
            iterator.close()

    def _search_params(self, name: str, depth: int) -> dict[str, int]:
        return self.index.search_params(self.index_type_of(name), depth, is_server=self.is_server)

    def index_type_of(self, name: str) -> str:
        """The index the collection was made with (read once: settings may have changed since)."""
        if name not in self._index_types:
            try:
                described = self._describe_index(name)
            except (InvalidInput, NotFound):
                return self.index_type  # a collection dropped meanwhile: the search itself says so
            self._index_types[name] = str(described.get("index_type") or self.index_type)
        return self._index_types[name]

    def _describe_index(self, name: str) -> dict[str, Any]:
        described = self._call("describing the index",
                               lambda c: c.describe_index(name, VECTOR_FIELD, timeout=self._timeout_s))
        return dict(described or {})

    def wait_for_index(self, name: str, *, timeout_s: float) -> None:
        """Until every row written is indexed (a Milvus server builds indexes in the background). Rows the
        server re-indexes after merging segments (pending_index_rows) are searchable meanwhile."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            described = self._describe_index(name)
            if int(described.get("indexed_rows", 0) or 0) >= int(described.get("total_rows", 0) or 0):
                return
            time.sleep(1.0)
        raise StoreUnavailable(f"Milvus has not indexed collection {name} within {timeout_s:.0f} s.")
