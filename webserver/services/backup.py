"""Backup and restore of every collection, in the export format (services/transfer.py), while the server
keeps taking writes.

A backup reads the SQL rows of all collections in one read transaction (metadata.snapshot), then copies
exactly those rows' vectors and files. A row deleted after the snapshot may have lost its vector or file
by the time it is copied: it is left out (and listed), so every row of a backup has its vector and its
file. Rows added after the snapshot are not in it.

    OUT/backup.json              format, time, the collections, the id sequence at the snapshot
    OUT/collections/NAME/...     one dump per collection (manifest.json, img_emb/, metadata/, files/)

A restore goes into empty stores and keeps every id: it reserves all of the backup's ids first, then
imports each collection without encoding.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from webserver.errors import AlreadyExists, InvalidInput
from webserver.services.container import Services
from webserver.services.transfer import ExportReport, ImportReport, export_rows, import_collection, open_dump
from webserver.version import project_version

FORMAT = "composed-retrieval-backup/1"


@dataclass
class BackupReport:
    collections: dict[str, ExportReport] = field(default_factory=dict)

    @property
    def images(self) -> int:
        return sum(report.images for report in self.collections.values())


@dataclass
class RestoreReport:
    collections: dict[str, ImportReport] = field(default_factory=dict)


def backup(services: Services, out: Path, *, shard_size: int = 100_000,
           on_rows: Callable[[int], None] | None = None) -> BackupReport:
    if (out / "backup.json").exists():
        raise AlreadyExists(f"{out} holds a backup already; name a new folder.")
    report = BackupReport()
    with services.metadata.snapshot() as snapshot:
        records, next_id = snapshot.collections(), snapshot.next_id()
        for record in records:
            batches = snapshot.image_batches(record.name, min(shard_size, 5000))
            report.collections[record.name] = export_rows(
                services, record, batches, out / "collections" / record.name, shard_size=shard_size, on_rows=on_rows)
    collections = {name: {"images": r.images, "left_out": r.without_vector + r.without_file}
                   for name, r in report.collections.items()}
    summary = {"format": FORMAT, "made_by": project_version(), "next_id": next_id, "collections": collections,
               "created": datetime.now(UTC).isoformat(timespec="seconds")}
    (out / "backup.json").write_text(json.dumps(summary, indent=1))  # written last: a backup is complete
    return report


def restore(services: Services, root: Path, *, on_rows: Callable[[int], None] | None = None) -> RestoreReport:
    summary_path = root / "backup.json"
    if not summary_path.is_file():
        raise InvalidInput(f"{root} is not a complete backup (no backup.json).")
    summary = json.loads(summary_path.read_text())
    if summary.get("format") != FORMAT:
        raise InvalidInput(f"{summary_path}: format {summary.get('format')!r}, expected {FORMAT!r}.")
    if services.metadata.count_all_images():
        raise AlreadyExists("The target stores hold images already: restore goes into empty stores.")
    dumps = {name: open_dump(root / "collections" / name) for name in summary["collections"]}
    ids = [int(i) for dump in dumps.values() for _, metadata in dump.shards
           for i in pq.read_table(metadata, columns=["id"]).column("id").to_pylist()]
    if services.metadata.reserve_ids(sorted(ids)) != sorted(ids):
        raise AlreadyExists("The target's id sequence has moved past the backup's ids: restore into new stores.")
    report = RestoreReport()
    for name, dump in dumps.items():
        report.collections[name] = import_collection(services, dump, collection=name, on_rows=on_rows,
                                                     ids_reserved=True)
    return report
