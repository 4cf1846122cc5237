"""Exact cosine search over one collection's rows held in this process's memory.

Why: Milvus Lite 3.2.2 walks every row of a collection in a Python loop on each search (deduplication and
delete checks before its FAISS index is asked), ~550 ms per search at 100k rows on the 2-core developer
machine, against ~10 ms for a matrix product over the same rows (docs/benchmarks.md). A Lite file is open
in one process only, so that process sees every write and can keep a copy of the rows: VectorStore keeps
one ExactIndex per collection beside Milvus Lite, which stays the store of record (the copy is read back
from it in the background after a start; meanwhile Lite's own search answers). Filters are the same
metadata equalities as in Milvus, with Lite's own semantics (Python equality: 1 == 1.0 == True, "1" is
not 1, a missing key never matches).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from webserver.errors import InvalidInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchFilter:
    """Metadata equalities (checked keys and values, see vectors.build_filter) and an id to leave out."""
    equalities: tuple[tuple[str, Any], ...] = ()
    exclude_id: int | None = None
    expression: str = ""  # the same condition in Milvus' filter syntax

    def matches(self, meta: Mapping[str, Any]) -> bool:
        return all(key in meta and meta[key] == value for key, value in self.equalities)


class ExactIndex:
    """Rows packed at the front of growing arrays; a delete moves the last row into the gap."""

    def __init__(self) -> None:
        self._vectors = np.empty((0, 0), dtype=np.float32)  # unit rows (zero rows stay zero)
        self._ids = np.empty(0, dtype=np.int64)
        self._metas: list[Mapping[str, Any]] = []
        self._row_of: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._metas)

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, metas: Iterable[Mapping[str, Any]]) -> None:
        units = _unit_rows(np.asarray(vectors, dtype=np.float32))
        if not self._metas and self._vectors.shape[1] != units.shape[1]:  # the first rows set the dimension
            self._vectors = np.empty((0, units.shape[1]), dtype=np.float32)
            self._ids = np.empty(0, dtype=np.int64)
        for pk, unit, meta in zip(ids, units, metas, strict=True):
            row = self._row_of.get(int(pk))
            if row is None:
                row = self._append_row()
                self._row_of[int(pk)] = row
                self._ids[row] = int(pk)
                self._metas.append(dict(meta))
            else:
                self._metas[row] = dict(meta)
            self._vectors[row] = unit

    def delete(self, ids: Iterable[int]) -> None:
        for pk in ids:
            row = self._row_of.pop(int(pk), None)
            if row is None:
                continue
            last = len(self._metas) - 1
            if row != last:
                moved = int(self._ids[last])
                self._vectors[row], self._ids[row], self._metas[row] = self._vectors[last], moved, self._metas[last]
                self._row_of[moved] = row
            self._metas.pop()

    def search(self, query: np.ndarray, *, limit: int, offset: int = 0,
               where: SearchFilter | None = None) -> list[tuple[int, float]]:
        """(id, cosine) of the best rows, best first, as Milvus' COSINE search answers."""
        size = len(self._metas)
        if size == 0 or limit <= 0:
            return []
        if np.shape(query) != (self._vectors.shape[1],):
            raise InvalidInput(f"The query vector has shape {np.shape(query)}; this collection's vectors have "
                               f"{self._vectors.shape[1]} dimensions.")
        scores = self._vectors[:size] @ _unit_rows(np.asarray(query, dtype=np.float32)[None, :])[0]
        excluded = self._row_of.get(where.exclude_id) if where is not None and where.exclude_id is not None else None
        if excluded is not None:
            scores[excluded] = -np.inf
        depth = limit + offset
        if where is not None and where.equalities:
            rows = self._matching_rows_best_first(scores, where, depth)
        else:
            rows = _best_rows(scores, depth)
        return [(int(self._ids[row]), float(scores[row])) for row in rows[offset:depth] if scores[row] > -np.inf]

    def _matching_rows_best_first(self, scores: np.ndarray, where: SearchFilter, depth: int) -> list[int]:
        found: list[int] = []
        for row in np.argsort(-scores, kind="stable").tolist():
            if scores[row] == -np.inf:
                break
            if where.matches(self._metas[row]):
                found.append(row)
                if len(found) == depth:
                    break
        return found

    def _append_row(self) -> int:
        row = len(self._metas)
        if row == len(self._ids):
            capacity = max(1024, 2 * row)
            self._vectors = _grown(self._vectors, capacity)
            self._ids = _grown(self._ids, capacity)
        return row


def _best_rows(scores: np.ndarray, depth: int) -> list[int]:
    if depth < len(scores):
        top = np.argpartition(-scores, depth - 1)[:depth]
        return top[np.argsort(-scores[top], kind="stable")].tolist()
    return np.argsort(-scores, kind="stable").tolist()


def _grown(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[:len(array)] = array
    return grown


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


Change = Callable[[ExactIndex], None]


class MemoryCopies:
    """The in-memory copies of one store's collections. A copy is read in a background thread (at the
    first search of its collection, or when asked at start) while Lite's own search answers; writes made
    meanwhile are replayed onto it before it answers. Writers hold `lock` across their Milvus write and
    `apply`, so the copy sees writes in Milvus' order."""

    RETRY_AFTER_S = 30.0

    def __init__(self, read: Callable[[str], ExactIndex]):
        self._read = read
        self._copies: dict[str, ExactIndex] = {}
        self._pending: dict[str, list[Change]] = {}  # collections being read -> writes made since
        self._failed_at: dict[str, float] = {}
        self.lock = threading.RLock()

    def apply(self, name: str, change: Change) -> None:
        with self.lock:
            if (copy := self._copies.get(name)) is not None:
                change(copy)
            elif (pending := self._pending.get(name)) is not None:
                pending.append(change)

    def search(self, name: str, query: np.ndarray, *, limit: int, offset: int,
               where: SearchFilter | None) -> list[tuple[int, float]] | None:
        """None while the collection has no copy yet (its reading is started)."""
        with self.lock:
            copy = self._copies.get(name)
            if copy is not None:
                return copy.search(query, limit=limit, offset=offset, where=where)
        self.start_reading(name)
        return None

    def start_reading(self, name: str) -> None:
        with self.lock:
            failed = self._failed_at.get(name)
            if (name in self._copies or name in self._pending
                    or (failed is not None and time.monotonic() - failed < self.RETRY_AFTER_S)):
                return
            pending = self._pending[name] = []
        threading.Thread(target=self._read_into, args=(name, pending), daemon=True,
                         name=f"memory-copy-{name}").start()

    def read_now(self, name: str) -> None:
        """Read the collection's copy in this thread (raises what reading raises)."""
        with self.lock:
            if name in self._copies:
                return
            pending = self._pending[name] = []  # a reading already under way will be discarded
        self._read_into(name, pending, quiet=False)

    def forget(self, name: str) -> None:
        with self.lock:
            self._copies.pop(name, None)
            self._pending.pop(name, None)
            self._failed_at.pop(name, None)

    def _read_into(self, name: str, pending: list[Change], *, quiet: bool = True) -> None:
        started = time.monotonic()
        try:
            copy = self._read(name)
        except Exception as exc:
            with self.lock:
                if self._pending.get(name) is pending:
                    del self._pending[name]
                    self._failed_at[name] = time.monotonic()
            if not quiet:
                raise
            log.warning("collection %s: no in-memory copy (%s); Milvus Lite's own search answers", name, exc)
            return
        with self.lock:
            if self._pending.get(name) is not pending:
                return  # dropped, or read again, meanwhile
            for change in self._pending.pop(name):
                change(copy)
            self._copies[name] = copy
        log.info("collection %s: %d rows in memory for search (read in %.1f s)", name, len(copy),
                 time.monotonic() - started)
