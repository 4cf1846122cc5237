"""Do the three stores agree? SQL rows (the source of truth), Milvus vectors and stored files.

Per collection: a row without a vector is re-encoded from its file; a vector without a row (a write
killed between its Milvus write and its commit) is deleted; a row whose file is gone is reported, since
its bytes exist nowhere else. Across collections: files no row uses (a write killed before its commit)
are removed, and each file's recorded reference count is set to the number of rows using it.

Checking is safe while the server takes writes. Repairing too, with two guards for writes in flight: a
candidate (a vector without a row, a row without a vector) is looked at again after `settle_s` (a write
commits right after its vectors land, a delete right after its vectors go), and files younger than
`grace_s` are left alone (a write stores its file before its commit).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from webserver.errors import DomainError
from webserver.services.container import Services
from webserver.services.imaging import open_stored
from webserver.stores.metadata import ImageRecord


@dataclass
class CollectionCheck:
    name: str
    rows: int = 0
    vectors: int = 0
    missing_vectors: list[int] = field(default_factory=list)  # ids of rows without a vector
    stale_vectors: list[int] = field(default_factory=list)  # ids of vectors without a row
    missing_files: list[tuple[int, str]] = field(default_factory=list)  # rows whose file is gone
    unrepaired: list[str] = field(default_factory=list)  # why a repair could not be made

    @property
    def clean(self) -> bool:
        return not (self.missing_vectors or self.stale_vectors or self.missing_files)


@dataclass
class FsckReport:
    collections: list[CollectionCheck]
    orphan_files: list[str] = field(default_factory=list)
    wrong_references: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (recorded, rows)
    repaired: bool = False

    @property
    def clean(self) -> bool:
        return all(c.clean for c in self.collections) and not (self.orphan_files or self.wrong_references)


def fsck(services: Services, collections: Sequence[str] | None = None, *, repair: bool = False,
         grace_s: float = 600.0, settle_s: float = 2.0) -> FsckReport:
    """Check the named collections (all when None), and the file store; with `repair`, fix what can be."""
    names = list(collections) if collections else [r.name for r in services.metadata.list_collections()]
    for name in names:
        services.collections.get_record(name)  # NotFound for a name that is not a collection
    report = FsckReport([_check_collection(services, name) for name in names], repaired=repair)
    counted = services.metadata.counted_file_references()
    recorded = services.metadata.file_references()
    report.wrong_references = {
        path: (recorded.get(path, 0), counted[path][1] if path in counted else 0)
        for path in set(counted) | set(recorded)
        if recorded.get(path, 0) != (counted[path][1] if path in counted else 0)}
    report.orphan_files = _orphan_files(services, set(counted), grace_s)
    if repair:
        _settle(settle_s, report)
        for check in report.collections:
            _repair_collection(services, check)
        if report.wrong_references:
            services.metadata.set_file_references(services.metadata.counted_file_references())
        still_used = set(services.metadata.counted_file_references())
        for path in report.orphan_files:
            if path not in still_used:
                services.files.remove(path)
    return report


def _check_collection(services: Services, name: str) -> CollectionCheck:
    check = CollectionCheck(name)
    row_ids: set[int] = set()
    for batch in services.metadata.iter_image_batches(name, 1000):
        row_ids.update(row.id for row in batch)
        check.missing_files += [(row.id, row.path) for row in batch if not services.files.exists(row.path)]
    vector_ids = services.vectors.all_ids(name)
    check.rows, check.vectors = len(row_ids), len(vector_ids)
    check.missing_vectors = sorted(row_ids - vector_ids)
    check.stale_vectors = sorted(vector_ids - row_ids)
    return check


def _settle(settle_s: float, report: FsckReport) -> None:
    if any(c.missing_vectors or c.stale_vectors for c in report.collections):
        time.sleep(settle_s)


def _repair_collection(services: Services, check: CollectionCheck) -> None:
    if check.stale_vectors:  # only those still without a row after the settle time
        rows = services.metadata.get_images(check.stale_vectors, collection=check.name)
        services.vectors.delete(check.name, [i for i in check.stale_vectors if i not in rows])
    if check.missing_vectors:
        rows = services.metadata.get_images(check.missing_vectors, collection=check.name)
        present = services.vectors.get_vectors(check.name, list(rows)) if rows else {}
        _reencode(services, check, [row for image_id, row in sorted(rows.items()) if image_id not in present])


def _reencode(services: Services, check: CollectionCheck, rows: list[ImageRecord]) -> None:
    if not rows:
        return
    try:
        encoder = services.collections.require_servable(check.name)
    except DomainError as exc:
        check.unrepaired.append(f"{len(rows)} rows left without a vector: {exc.detail}")
        return
    missing_files = {image_id for image_id, _ in check.missing_files}
    readable = [row for row in rows if row.id not in missing_files and services.files.exists(row.path)]
    for start in range(0, len(readable), 64):
        batch = readable[start:start + 64]
        images = [open_stored(services.files.read(row.path)) for row in batch]
        services.vectors.upsert(check.name, [row.id for row in batch], encoder.encode_images(images),
                                [row.meta for row in batch])
    if len(readable) < len(rows):
        check.unrepaired.append(f"{len(rows) - len(readable)} rows without a vector have no file to encode")


def _orphan_files(services: Services, used: set[str], grace_s: float) -> list[str]:
    """Files no row uses (temporary ones of killed writes too), older than the grace time: a write in
    flight stores its file before its commit."""
    cutoff = time.time() - grace_s
    return sorted(path for path, mtime in services.files.list_files() if mtime < cutoff and path not in used)
