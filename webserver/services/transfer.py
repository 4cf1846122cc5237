"""Export and import a collection without encoding a single image.

A dump is readable without this project, and clip-retrieval's `clip inference` output imports too:

    DIR/manifest.json                 format, encoder id, dimension, metric, counts, sha256 of every shard
    DIR/img_emb/img_emb_K.npy         float32 [n, dim]: row i is the vector of row i of ...
    DIR/metadata/metadata_K.parquet   id, sha256, image_path, filename, caption, metadata (JSON), width,
                                      height, created
    DIR/files/ab/cd/<sha256>.<ext>    each image once, content-addressed (`image_path` points here)

Import keeps the original ids where no row of the target uses them (else it allocates new ones and reports
the mapping), skips images the target collection already holds (so a killed import resumes without
duplicates), and ends by checking counts.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from webserver.encoders.base import kind_of
from webserver.errors import EncoderMismatch, InvalidInput
from webserver.services.container import Services
from webserver.stores.metadata import CollectionRecord, ImageRecord, NewImage
from webserver.version import project_version

FORMAT = "composed-retrieval-export/1"
_SHARD = re.compile(r"img_emb_(\d+)\.npy$")


@dataclass
class ExportReport:
    images: int = 0
    files: int = 0
    shards: int = 0
    without_vector: list[int] = field(default_factory=list)  # rows left out: no vector in Milvus (see fsck)
    without_file: list[int] = field(default_factory=list)  # rows left out: their file is gone


@dataclass
class ImportReport:
    collection: str = ""
    added: int = 0
    already_present: int = 0
    remapped: dict[int, int] = field(default_factory=dict)  # dump id -> id in the target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- export ------------------------------------------------------------------------------------------
def export_collection(services: Services, name: str, out: Path, *, shard_size: int = 100_000,
                      on_rows: Callable[[int], None] | None = None) -> ExportReport:
    record = services.collections.get_record(name)
    batches = services.metadata.iter_image_batches(name, min(shard_size, 5000))
    return export_rows(services, record, batches, out, shard_size=shard_size, on_rows=on_rows)


def export_rows(services: Services, record: CollectionRecord, batches: Iterable[list[ImageRecord]], out: Path,
                *, shard_size: int = 100_000, on_rows: Callable[[int], None] | None = None) -> ExportReport:
    """A dump of `record`'s collection holding these rows (a backup passes the rows of its snapshot). A
    row whose vector or file is gone by the time it is copied (deleted meanwhile) is left out and listed."""
    name = record.name
    for folder in ("img_emb", "metadata", "files"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    report, shards = ExportReport(), []
    for index, rows in enumerate(_row_shards(batches, shard_size)):
        vectors = _vectors_of(services, name, rows)
        kept = [row for row in rows if row.id in vectors]
        report.without_vector += [row.id for row in rows if row.id not in vectors]
        shards.append(_write_shard(services, out, index, kept, vectors, record.dimension, report))
        if on_rows:
            on_rows(len(rows))
    manifest = {"format": FORMAT, "exported_by": project_version(), "collection": name,
                "encoder_id": record.encoder_id, "dimension": record.dimension, "metric": record.metric,
                "vector_layout": record.vector_layout, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "counts": {"images": report.images, "files": report.files, "shards": len(shards)},
                "shards": shards, "without_vector": report.without_vector, "without_file": report.without_file}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    report.shards = len(shards)
    return report


def _row_shards(batches: Iterable[list[ImageRecord]], shard_size: int) -> Iterator[list[ImageRecord]]:
    shard: list[ImageRecord] = []
    for batch in batches:
        shard.extend(batch)
        while len(shard) >= shard_size:
            yield shard[:shard_size]
            shard = shard[shard_size:]
    if shard:
        yield shard


def _vectors_of(services: Services, name: str, rows: list[ImageRecord]) -> dict[int, np.ndarray]:
    vectors: dict[int, np.ndarray] = {}
    for start in range(0, len(rows), 1000):
        vectors.update(services.vectors.get_vectors(name, [row.id for row in rows[start:start + 1000]]))
    return vectors


def _write_shard(services: Services, out: Path, index: int, rows: list[ImageRecord],
                 vectors: dict[int, np.ndarray], dimension: int, report: ExportReport) -> dict[str, Any]:
    rows = [row for row in rows if _copy_file(services, out, row, report)]
    matrix = np.stack([vectors[row.id] for row in rows]).astype(np.float32) if rows else \
        np.zeros((0, dimension), np.float32)
    vector_path = out / "img_emb" / f"img_emb_{index}.npy"
    metadata_path = out / "metadata" / f"metadata_{index}.parquet"
    np.save(vector_path, matrix)
    table = pa.table({
        "id": pa.array([row.id for row in rows], pa.int64()),
        "sha256": [row.sha256 for row in rows],
        "image_path": [f"files/{row.path}" for row in rows],
        "filename": [row.filename for row in rows],
        "caption": pa.array([row.caption for row in rows], pa.string()),
        "metadata": [json.dumps(row.meta, sort_keys=True) for row in rows],
        "width": pa.array([row.width for row in rows], pa.int32()),
        "height": pa.array([row.height for row in rows], pa.int32()),
        "created": pa.array([row.created for row in rows], pa.timestamp("s")),
    })
    pq.write_table(table, metadata_path)
    report.images += len(rows)
    return {"vectors": f"img_emb/{vector_path.name}", "vectors_sha256": sha256_of(vector_path),
            "metadata": f"metadata/{metadata_path.name}", "metadata_sha256": sha256_of(metadata_path),
            "rows": len(rows)}


def _copy_file(services: Services, out: Path, row: ImageRecord, report: ExportReport) -> bool:
    target = out / "files" / row.path
    if target.exists():
        return True
    try:
        data = services.files.read(row.path)
    except FileNotFoundError:
        report.without_file.append(row.id)
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    report.files += 1
    return True


# -- import ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dump:
    root: Path
    encoder_id: str
    dimension: int
    collection: str | None
    shards: list[tuple[Path, Path]]  # (vectors .npy, metadata .parquet), in order


def open_dump(root: Path, encoder_id: str | None = None) -> Dump:
    """A dump of ours (manifest.json, checksums verified here) or clip-retrieval's output (no manifest:
    the encoder that made the vectors must be named)."""
    manifest_path = root / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT:
            raise InvalidInput(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT!r}.")
        if encoder_id and encoder_id != manifest["encoder_id"]:
            raise EncoderMismatch(f"The dump's vectors were made by {manifest['encoder_id']}, not {encoder_id}.")
        shards = []
        for shard in manifest["shards"]:
            for key in ("vectors", "metadata"):
                if sha256_of(root / shard[key]) != shard[f"{key}_sha256"]:
                    raise InvalidInput(f"{root / shard[key]} does not match its checksum in manifest.json.")
            shards.append((root / shard["vectors"], root / shard["metadata"]))
        return Dump(root, manifest["encoder_id"], int(manifest["dimension"]), manifest.get("collection"), shards)
    if not encoder_id:
        raise InvalidInput(f"{root} has no manifest.json (clip-retrieval output?): name the encoder that made "
                           "its vectors (--encoder, e.g. open_clip/ViT-B-32/openai).")
    numbered = sorted((int(m.group(1)), path) for path in (root / "img_emb").glob("img_emb_*.npy")
                      if (m := _SHARD.search(path.name)))
    if not numbered:
        raise InvalidInput(f"{root} holds no img_emb/img_emb_K.npy shards.")
    shards = [(path, root / "metadata" / f"metadata_{k}.parquet") for k, path in numbered]
    dimension = int(np.load(shards[0][0], mmap_mode="r").shape[1])
    return Dump(root, encoder_id, dimension, None, shards)


def import_collection(services: Services, dump: Dump, *, collection: str | None = None, batch_size: int = 2000,
                      on_rows: Callable[[int], None] | None = None, ids_reserved: bool = False) -> ImportReport:
    """`ids_reserved`: the dump's ids were reserved in the target beforehand (a restore) and are kept."""
    name = collection or dump.collection
    if not name:
        raise InvalidInput("Name the target collection (--collection): the dump does not say.")
    encoder = services.encoders.matching(dump.encoder_id, dump.dimension)
    if encoder is None:
        raise EncoderMismatch(f"The dump's vectors were made by {dump.encoder_id} (dim {dump.dimension}); this "
                              f"server runs {services.encoders.describe()}. Start it with that model.")
    existing = services.metadata.get_collection(name)
    if existing is None:
        services.collections.create(name, kind_of(dump.encoder_id))
    elif (existing.encoder_id, existing.dimension) != (dump.encoder_id, dump.dimension):
        raise EncoderMismatch(f"Collection {name!r} holds vectors of {existing.encoder_id} (dim "
                              f"{existing.dimension}), the dump {dump.encoder_id} (dim {dump.dimension}).")
    report = ImportReport(collection=name)
    for vectors_path, metadata_path in dump.shards:
        vectors = np.load(vectors_path, mmap_mode="r")
        table = pq.read_table(metadata_path)
        if len(table) != len(vectors) or vectors.shape[1] != dump.dimension:
            raise InvalidInput(f"{vectors_path} holds {vectors.shape} vectors for {len(table)} rows.")
        for start in range(0, len(table), batch_size):
            rows = table.slice(start, batch_size).to_pylist()
            _import_batch(services, dump, name, rows, np.asarray(vectors[start:start + len(rows)]), report,
                          ids_reserved)
            if on_rows:
                on_rows(len(rows))
    services.vectors.flush(name)
    _check_counts(services, name)
    return report


def _import_batch(services: Services, dump: Dump, name: str, rows: list[dict], vectors: np.ndarray,
                  report: ImportReport, ids_reserved: bool = False) -> None:
    data: list[bytes | None] = [None if row.get("sha256") else _read(dump.root, row) for row in rows]
    digests = [row.get("sha256") or hashlib.sha256(raw or b"").hexdigest() for row, raw in zip(rows, data, strict=True)]
    seen = set(services.metadata.find_by_sha256(name, digests))
    fresh = []
    for i, digest in enumerate(digests):  # the target's images, and repeats within the dump, are skipped
        if digest not in seen:
            seen.add(digest)
            fresh.append(i)
    report.already_present += len(rows) - len(fresh)
    if not fresh:
        return
    wanted = [int(rows[i]["id"]) if rows[i].get("id") is not None else None for i in fresh]
    contents = [data[i] or _read(dump.root, rows[i]) for i in fresh]
    images = [_image_row(services, rows[i], raw, digests[i]) for i, raw in zip(fresh, contents, strict=True)]
    created = [_created(rows[i].get("created")) for i in fresh]
    # An id is kept where the target never handed it out (metadata.reserve_ids), else mapped.
    with services.metadata.insert_images(name, images, ids=wanted, created=created,
                                         ids_reserved=ids_reserved) as stored_ids:
        for image, raw in zip(images, contents, strict=True):
            services.files.write(image.path, raw)
        services.vectors.upsert(name, stored_ids, vectors[fresh], [image.meta for image in images])
    report.added += len(fresh)
    report.remapped.update({old: new for old, new in zip(wanted, stored_ids, strict=True)
                            if old is not None and old != new})


def _source(root: Path, row: dict) -> Path:
    path = Path(row["image_path"])
    return path if path.is_absolute() else root / path


def _read(root: Path, row: dict) -> bytes:
    return _source(root, row).read_bytes()


def _image_row(services: Services, row: dict, data: bytes, digest: str) -> NewImage:
    """The dump's row as a metadata record of this server (its file path in this server's file store)."""
    if hashlib.sha256(data).hexdigest() != digest:
        raise InvalidInput(f"{row['image_path']}: its bytes do not match the sha256 of its row.")
    with Image.open(io.BytesIO(data)) as image:  # the header only: sizes and format, no decode
        width, height, image_format = image.width, image.height, image.format or "bin"
    meta = json.loads(row["metadata"]) if isinstance(row.get("metadata"), str) else (row.get("metadata") or {})
    return NewImage(sha256=digest, path=services.files.relative_path(digest, image_format),
                    filename=row.get("filename") or Path(row["image_path"]).name, caption=row.get("caption"),
                    meta=meta, width=int(row.get("width") or width), height=int(row.get("height") or height))


def _created(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return None


def _check_counts(services: Services, name: str) -> None:
    rows, vectors = services.metadata.count_images(name), services.vectors.count(name)
    if rows != vectors:
        raise InvalidInput(f"After the import {name!r} holds {rows} rows but {vectors} vectors: run fsck.")
