"""Bulk indexing of a folder of images, for scripts/insert_milvus.py.

Shaped as reader -> encoder -> writer: a thread pool reads, hashes and decodes batch N+1 while the model
encodes batch N; each batch is written through ImageService (one transaction per batch), and images
already in the collection (by sha256) are skipped before decoding. So a run that is killed and
restarted ends with every image exactly once.

The seed's layout is also read: a folder holding `img.npy` (row i = the vector of `images/%06d.png`,
as `python -m tirg --export DIR` writes) is indexed with those vectors instead of encoding the images,
after checking on a sample that they are what the collection's model makes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from webserver.encoders.base import Encoder
from webserver.errors import DomainError, InvalidInput
from webserver.services.images import AddedImage, ImageService, PreparedImage, Upload
from webserver.stores.metadata import MetadataStore

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def find_image_files(root: Path) -> list[Path]:
    """Every file with an image suffix under root, recursively, in a stable order."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_captions(path: Path | None) -> dict[str, str]:
    """A JSON object {relative path or file name: caption}, or TSV lines `path<TAB>caption`."""
    if path is None:
        return {}
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object mapping file names to captions")
        return {str(k): str(v) for k, v in data.items()}
    pairs = (line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    return {key.strip(): caption.strip() for key, caption in pairs}


def load_metadata(path: Path | None) -> dict[str, dict[str, Any]]:
    """A JSON object {relative path or file name: {metadata object}}."""
    if path is None:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object mapping file names to metadata objects")
    return {str(k): v for k, v in data.items()}


def upload_for(path: Path, data: bytes, root: Path, captions: dict[str, str],
               metadata: dict[str, dict[str, Any]] | None = None) -> Upload:
    """The upload for one file of the folder: its caption and metadata (by relative path, then by name),
    the metadata over its sub-folder as `{"folder": ...}`."""
    relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    caption = captions.get(relative) or captions.get(path.name)
    folder = Path(relative).parent.as_posix()
    meta: dict[str, Any] = {"folder": folder} if folder not in ("", ".") else {}
    metadata = metadata or {}
    meta.update(metadata.get(relative) or metadata.get(path.name) or {})
    return Upload(data=data, filename=path.name, caption=caption, meta=meta)


VECTORS_FILE = "img.npy"
INDEXED_NAME = re.compile(r"^(\d{6})\.[A-Za-z]+$")
MIN_AGREEMENT = 0.99  # cosine between a stored row and the model's own vector for that image


class PrecomputedVectors:
    """`img.npy` of a folder in the seed's layout: row i belongs to images/%06d.png."""

    def __init__(self, root: Path):
        self.path = root / VECTORS_FILE
        try:
            self.matrix = np.load(self.path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{self.path}: not a readable .npy file ({exc}).") from None
        if self.matrix.ndim != 2:
            raise InvalidInput(f"{self.path}: expected a 2-D array (images x dimension), got {self.matrix.shape}.")

    @staticmethod
    def present(root: Path) -> bool:
        return (root / VECTORS_FILE).is_file()

    def row_for(self, path: Path) -> int:
        match = INDEXED_NAME.match(path.name)
        if not match or int(match.group(1)) >= len(self.matrix):
            raise InvalidInput(f"has no row in {VECTORS_FILE} (expected a name like 000042.png, "
                               f"index < {len(self.matrix)}).")
        return int(match.group(1))

    def vector(self, row: int) -> np.ndarray:
        return np.asarray(self.matrix[row], dtype=np.float32)

    def check_made_by(self, encoder: Encoder, files: Sequence[Path], sample: int = 8) -> float:
        """Encode a few images and compare with their rows: vectors from another model (or rows in
        another order) would make every search wrong, so they are refused. Returns the lowest cosine."""
        picked = [p for p in files if INDEXED_NAME.match(p.name)][:sample]
        if self.matrix.shape[1] != encoder.dimension:
            raise InvalidInput(f"{self.path} holds {self.matrix.shape[1]}-d vectors; the collection's model "
                               f"({encoder.encoder_id}) makes {encoder.dimension}-d ones.")
        if not picked:
            raise InvalidInput(f"no images named like 000042.png beside {self.path}.")
        fresh = encoder.encode_images([Image.open(p) for p in picked])
        stored = np.stack([self.vector(self.row_for(p)) for p in picked])
        stored /= np.maximum(np.linalg.norm(stored, axis=1, keepdims=True), 1e-12)
        lowest = float((fresh * stored).sum(axis=1).min())
        if lowest < MIN_AGREEMENT:
            raise InvalidInput(
                f"{self.path} does not match the collection's model {encoder.encoder_id}: cosine {lowest:.3f} "
                f"between a stored row and that image's vector. Export the vectors with the checkpoint the "
                "server loads (TIRG_CHECKPOINT), or index the images without img.npy.")
        return lowest


STAGES = ("read", "waiting_for_read", "encode", "write", "waiting_for_write")


@dataclass
class BulkReport:
    added: int = 0
    already_indexed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    # Seconds per stage: read (reader threads: read, hash, decode, preprocess), waiting_for_read (the
    # encoder idle, so the reader was the bottleneck), encode, write (the writer thread: files, SQL,
    # Milvus), waiting_for_write (the encoder idle behind the previous batch's write).
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))


@dataclass(frozen=True)
class _ReadBatch:
    prepared: list[PreparedImage]
    already_indexed: int
    failed: list[tuple[str, str]]
    seconds: float
    pixels: Any = None  # the encoder's input for the prepared images without a vector, in order


class BulkIngest:
    """Reader -> encoder -> writer (clip-retrieval's `clip_inference` shape): reader threads read, hash,
    decode and preprocess the next batch while this thread encodes the current one and writes it; each
    stage is timed in the report."""

    def __init__(self, *, images: ImageService, metadata: MetadataStore, collection: str, root: Path,
                 captions: dict[str, str] | None = None,
                 file_metadata: dict[str, dict[str, Any]] | None = None, read_workers: int = 2,
                 precomputed: PrecomputedVectors | None = None):
        self.images = images
        self.metadata = metadata
        self.collection = collection
        self.root = root
        self.captions = captions or {}
        self.file_metadata = file_metadata or {}
        self.read_workers = read_workers
        self.precomputed = precomputed

    def run(self, files: Sequence[Path], batch_size: int,
            on_batch: Callable[[int, BulkReport], None] | None = None) -> BulkReport:
        """`on_batch(files_done, report)` is called after each batch is written (progress bars, logs).
        Batches are written in order, one at a time, each while the next one is encoded."""
        report = BulkReport()
        encoder = self.images.collections.require_servable(self.collection)
        batches = [files[i:i + batch_size] for i in range(0, len(files), batch_size)]
        writing: tuple[Future, int] | None = None  # the batch being written, and its file count
        with ThreadPoolExecutor(max_workers=self.read_workers) as pool, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-write") as writer:
            for batch, read in zip(batches, self._read_ahead(pool, batches, encoder), strict=True):
                with _timed(report, "waiting_for_read"):
                    result = read.result()
                report.seconds["read"] += result.seconds
                report.already_indexed += result.already_indexed
                report.failed.extend(result.failed)
                encoded = None
                if result.prepared:
                    with _timed(report, "encode"):
                        encoded = _with_vectors(encoder, result)
                if writing is not None:
                    self._finish(writing, report, on_batch)
                    writing = None
                if encoded is not None:
                    writing = (writer.submit(self._write, encoded, report), len(batch))
                elif on_batch:
                    on_batch(len(batch), report)
            if writing is not None:
                self._finish(writing, report, on_batch)
        if report.added:
            self.images.vectors.flush(self.collection)
        return report

    def _write(self, encoded: list[PreparedImage], report: BulkReport) -> list[AddedImage]:
        with _timed(report, "write"):
            return self.images.add_prepared(self.collection, encoded)

    @staticmethod
    def _finish(writing: tuple[Future, int], report: BulkReport,
                on_batch: Callable[[int, BulkReport], None] | None) -> None:
        """Wait for a batch's write (its error, a store down, stops the run here) and count it."""
        future, count = writing
        with _timed(report, "waiting_for_write"):
            added = future.result()
        report.added += sum(not item.duplicate for item in added)
        report.already_indexed += sum(item.duplicate for item in added)
        if on_batch:
            on_batch(count, report)

    def _read_ahead(self, pool: ThreadPoolExecutor, batches: Iterable[Sequence[Path]],
                    encoder: Encoder) -> Iterator[Future]:
        """Keep one batch being read while the caller encodes and writes the previous one."""
        pending: list[Future] = []
        for batch in batches:
            pending.append(pool.submit(self._read_batch, batch, encoder))
            if len(pending) > 1:
                yield pending.pop(0)
        yield from pending

    def _read_batch(self, paths: Sequence[Path], encoder: Encoder) -> _ReadBatch:
        started = time.perf_counter()
        raw, failed = [], []
        for path in paths:
            try:
                data = path.read_bytes()
                raw.append((path, data, hashlib.sha256(data).hexdigest()))
            except OSError as exc:
                failed.append((str(path), f"unreadable: {exc}"))
        indexed = self.metadata.find_by_sha256(self.collection, [sha for _, _, sha in raw])
        prepared = []
        for path, data, sha in raw:
            if sha in indexed:
                continue
            try:
                prepared.append(self._prepare(path, data))
            except DomainError as exc:
                failed.append((str(path), exc.detail))
        to_encode = [img.decoded.image for img in prepared if img.vector is None]
        pixels = encoder.preprocess_images(to_encode) if to_encode else None
        return _ReadBatch(prepared, sum(sha in indexed for _, _, sha in raw), failed,
                          time.perf_counter() - started, pixels)

    def _prepare(self, path: Path, data: bytes) -> PreparedImage:
        upload = upload_for(path, data, self.root, self.captions, self.file_metadata)
        if self.precomputed is None:
            return self.images.prepare(upload)
        row = self.precomputed.row_for(path)
        prepared = self.images.prepare(dataclasses.replace(upload, meta={**upload.meta, "index": row}))
        return dataclasses.replace(prepared, vector=self.precomputed.vector(row))


@contextlib.contextmanager
def _timed(report: BulkReport, stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        report.seconds[stage] += time.perf_counter() - started


def _with_vectors(encoder: Encoder, batch: _ReadBatch) -> list[PreparedImage]:
    """The encoder stage: a vector for every image that has none yet (precomputed ones are kept), from
    the tensors the reader already made."""
    if batch.pixels is None:
        return list(batch.prepared)
    vectors = iter(encoder.encode_pixels(batch.pixels))
    return [img if img.vector is not None else dataclasses.replace(img, vector=next(vectors))
            for img in batch.prepared]
