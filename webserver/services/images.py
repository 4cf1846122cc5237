"""Adding, reading and deleting images, keeping the metadata rows, files and Milvus vectors consistent.

Order of a write: ids reserved (committed, never handed out again) -> metadata rows and file references
in an open transaction -> files (content-addressed, idempotent) -> Milvus upsert -> commit. A failed
Milvus write rolls the rows back; a failed commit deletes the vectors again. A killed process leaves at
most files and vectors no row refers to: `scripts/fsck.py --repair` removes them.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from webserver.encoders.base import Encoder
from webserver.errors import AlreadyExists, InvalidInput, NotFound, PayloadTooLarge
from webserver.services.collections import CollectionService
from webserver.services.imaging import DecodedImage, checked_size, decode_image
from webserver.services.retry import retry_contention
from webserver.stores.files import FileStore
from webserver.stores.metadata import ImageRecord, MetadataStore, NewImage
from webserver.stores.vectors import VectorStore

MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 8
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_CAPTION_CHARS = 2000


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str
    caption: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedImage:
    decoded: DecodedImage
    filename: str
    caption: str | None
    meta: dict[str, Any]
    vector: np.ndarray | None = None  # precomputed by the collection's model (img.npy); None: encode it


@dataclass(frozen=True)
class AddedImage:
    id: int
    sha256: str
    duplicate: bool


def check_metadata(meta: Any, name: str) -> dict[str, Any]:
    """A JSON object Milvus and every reader can hold: at most MAX_METADATA_BYTES of JSON, nested at most
    MAX_METADATA_DEPTH deep, integers within int64, finite numbers, string keys."""
    if not isinstance(meta, dict):
        raise InvalidInput(f"{name}: metadata must be a JSON object.")
    _check_json_value(meta, f"{name}: metadata", depth=1)
    if len(json.dumps(meta)) > MAX_METADATA_BYTES:
        raise InvalidInput(f"{name}: metadata is over {MAX_METADATA_BYTES} bytes of JSON.")
    return meta


def _check_json_value(value: Any, where: str, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise InvalidInput(f"{where} is nested over {MAX_METADATA_DEPTH} levels deep.")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{where}: keys must be strings.")
            _check_json_value(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_value(item, where, depth + 1)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidInput(f"{where}: the integer {value} is outside the 64-bit range Milvus stores.")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{where}: numbers must be finite (no NaN or Infinity).")
    else:
        raise InvalidInput(f"{where}: values must be JSON (objects, arrays, strings, numbers, booleans, null).")


def check_caption(caption: str | None, name: str) -> str | None:
    if caption is not None and len(caption) > MAX_CAPTION_CHARS:
        raise InvalidInput(f"{name}: caption is over {MAX_CAPTION_CHARS} characters.")
    return caption or None


class ImageService:
    def __init__(self, *, collections: CollectionService, metadata: MetadataStore, vectors: VectorStore,
                 files: FileStore, max_bytes: int, max_pixels: int, max_request_pixels: int | None = None):
        self.collections = collections
        self.metadata = metadata
        self.vectors = vectors
        self.files = files
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.max_request_pixels = max_request_pixels

    def prepare(self, upload: Upload) -> PreparedImage:
        """Decode and validate one upload; raises a domain error naming the file."""
        name = upload.filename or "upload"
        decoded = decode_image(upload.data, name=name, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        return PreparedImage(decoded, _safe_filename(name), check_caption(upload.caption, name),
                             check_metadata(upload.meta, name))

    def add(self, collection: str, uploads: Sequence[Upload]) -> list[AddedImage]:
        """All-or-nothing validation: one bad file rejects the request before anything is written, and
        every file's header is checked (sizes, the request's pixel budget) before any file is decoded."""
        self.collections.require_servable(collection)
        self.check_pixel_budget(uploads)
        return self.add_prepared(collection, [self.prepare(upload) for upload in uploads])

    def check_pixel_budget(self, uploads: Sequence[Upload]) -> None:
        total = 0
        for upload in uploads:
            width, height = checked_size(upload.data, name=upload.filename or "upload", max_bytes=self.max_bytes,
                                         max_pixels=self.max_pixels)
            total += width * height
        if self.max_request_pixels is not None and total > self.max_request_pixels:
            raise PayloadTooLarge(f"The images of this request hold {total} pixels together, over the "
                                  f"{self.max_request_pixels}-pixel limit per request: send fewer at a time.")

    def add_prepared(self, collection: str, images: Sequence[PreparedImage]) -> list[AddedImage]:
        encoder = self.collections.require_servable(collection)
        for attempt in range(2):
            existing = self.metadata.find_by_sha256(collection, [img.decoded.sha256 for img in images])
            fresh = _first_of_each_digest([img for img in images if img.decoded.sha256 not in existing])
            try:
                if fresh:
                    existing.update(self._write(collection, encoder, fresh))
                break
            except AlreadyExists:  # a concurrent writer added some of the same bytes: look again, once
                if attempt == 1:
                    raise AlreadyExists("Other uploads of the same bytes kept landing first; send it again.") \
                        from None
        fresh_digests = {img.decoded.sha256 for img in fresh}
        results, reported = [], set()
        for img in images:
            sha = img.decoded.sha256
            results.append(AddedImage(existing[sha], sha, sha not in fresh_digests or sha in reported))
            reported.add(sha)
        return results

    def _write(self, collection: str, encoder: Encoder, images: Sequence[PreparedImage]) -> dict[str, int]:
        """Rows (with their file references) -> files -> vectors -> commit. A process killed part way
        leaves at most files and vectors no row refers to, which fsck removes; never a row without both."""
        vectors = _vectors_for(encoder, images)
        rows = [NewImage(sha256=img.decoded.sha256,
                         path=self.files.relative_path(img.decoded.sha256, img.decoded.format),
                         filename=img.filename, caption=img.caption, meta=img.meta,
                         width=img.decoded.width, height=img.decoded.height) for img in images]
        ids = retry_contention(lambda: self._store(collection, images, rows, vectors))
        return {img.decoded.sha256: image_id for img, image_id in zip(images, ids, strict=True)}

    def _store(self, collection: str, images: Sequence[PreparedImage], rows: Sequence[NewImage],
               vectors: np.ndarray) -> list[int]:
        written_ids: list[int] = []
        try:
            with self.metadata.insert_images(collection, rows) as ids:
                for img, row in zip(images, rows, strict=True):
                    self.files.write(row.path, img.decoded.data)
                self.vectors.insert(collection, ids, vectors, [img.meta for img in images])  # fresh ids
                written_ids = ids
        except Exception:
            if written_ids:  # the commit failed after the vectors landed
                self.vectors.delete(collection, written_ids)
            raise
        return written_ids

    def get(self, image_id: int) -> ImageRecord:
        record = self.metadata.get_images([image_id]).get(image_id)
        if record is None:
            raise NotFound(f"Image {image_id} does not exist.")
        return record

    def find_by_filename(self, collection: str, filenames: Sequence[str]) -> ImageRecord:
        self.collections.get_record(collection)
        record = self.metadata.find_by_filename(collection, filenames)
        if record is None:
            raise NotFound(f"No image named {filenames[0]!r} in collection {collection!r}.")
        return record

    def read_file(self, image_id: int) -> tuple[bytes, str]:
        record = self.get(image_id)
        try:
            return self.files.read(record.path), self.files.content_type(record.path)
        except FileNotFoundError:
            raise NotFound(f"Image {image_id}: its file is missing from the file store.") from None

    def list(self, collection: str, *, limit: int, offset: int) -> list[ImageRecord]:
        self.collections.get_record(collection)
        return self.metadata.list_images(collection, limit=limit, offset=offset)

    def delete(self, image_id: int) -> None:
        record = self.get(image_id)

        def delete_everywhere() -> None:
            with self.metadata.delete_images(record.collection, [image_id]) as released:
                self.vectors.delete(record.collection, [image_id])
                for path in released:  # while the transaction holds the file's reference lock
                    self.files.remove(path)

        retry_contention(delete_everywhere)


def _vectors_for(encoder: Encoder, images: Sequence[PreparedImage]) -> np.ndarray:
    """Precomputed vectors where given, the encoder's for the rest."""
    missing = [i for i, img in enumerate(images) if img.vector is None]
    vectors = np.zeros((len(images), encoder.dimension), np.float32)
    if missing:
        vectors[missing] = encoder.encode_images([images[i].decoded.image for i in missing])
    for i, img in enumerate(images):
        if img.vector is not None:
            if img.vector.shape != (encoder.dimension,):
                raise InvalidInput(f"{img.filename}: a precomputed vector of shape {img.vector.shape}, "
                                   f"the collection's model makes ({encoder.dimension},).")
            vectors[i] = img.vector
    return vectors


def _first_of_each_digest(images: Sequence[PreparedImage]) -> list[PreparedImage]:
    seen: dict[str, PreparedImage] = {}
    for img in images:
        seen.setdefault(img.decoded.sha256, img)
    return list(seen.values())


def _safe_filename(name: str) -> str:
    """The original name, kept only as a label: no directories, bounded length."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or "upload"
    return base[:255]
