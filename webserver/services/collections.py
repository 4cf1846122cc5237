"""Collections: a metadata record (which encoder made the vectors) plus one Milvus collection."""
from __future__ import annotations

import re
from dataclasses import dataclass

from webserver.encoders.base import ImageTextEncoder
from webserver.errors import AlreadyExists, EncoderMismatch, InvalidInput, NotFound
from webserver.stores.files import FileStore
from webserver.stores.metadata import CollectionRecord, MetadataStore
from webserver.stores.vectors import VectorStore

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
METRIC = "COSINE"


@dataclass(frozen=True)
class CollectionInfo:
    record: CollectionRecord
    milvus_count: int
    metadata_count: int
    servable: bool


class CollectionService:
    def __init__(self, *, metadata: MetadataStore, vectors: VectorStore, files: FileStore,
                 encoder: ImageTextEncoder):
        self.metadata = metadata
        self.files = files
        self.vectors = vectors
        self.encoder = encoder

    def create(self, name: str) -> CollectionRecord:
        if not NAME_PATTERN.match(name):
            raise InvalidInput(f"Collection name {name!r} must match {NAME_PATTERN.pattern}.")
        if self.metadata.get_collection(name):
            raise AlreadyExists(f"Collection {name!r} already exists.")
        if not self.vectors.has_collection(name):
            self.vectors.create_collection(name, self.encoder.dimension)
        try:
            return self.metadata.add_collection(name=name, encoder_id=self.encoder.encoder_id,
                                                dimension=self.encoder.dimension, metric=METRIC)
        except Exception:
            self.vectors.drop_collection(name)
            raise

    def ensure(self, name: str) -> CollectionRecord:
        try:
            return self.create(name)
        except AlreadyExists:
            return self.get_record(name)

    def list(self) -> list[CollectionRecord]:
        return self.metadata.list_collections()

    def get_record(self, name: str) -> CollectionRecord:
        record = self.metadata.get_collection(name)
        if record is None:
            raise NotFound(f"Collection {name!r} does not exist (GET /collections lists them).")
        return record

    def describe(self, name: str) -> CollectionInfo:
        record = self.get_record(name)
        return CollectionInfo(record, self.vectors.count(name), self.metadata.count_images(name),
                              self.is_servable(record))

    def is_servable(self, record: CollectionRecord) -> bool:
        return record.encoder_id == self.encoder.encoder_id and record.dimension == self.encoder.dimension

    def require_servable(self, name: str) -> CollectionRecord:
        """The collection, if the loaded encoder made its vectors; otherwise a clear refusal."""
        record = self.get_record(name)
        if not self.is_servable(record):
            raise EncoderMismatch(
                f"Collection {name!r} holds vectors from {record.encoder_id} (dim {record.dimension}), "
                f"but the server runs {self.encoder.encoder_id} (dim {self.encoder.dimension}). "
                f"Re-encode it with `python scripts/reindex.py --collection {name}` or load that model.")
        return record

    def mismatched(self) -> list[CollectionRecord]:
        return [record for record in self.list() if not self.is_servable(record)]

    def delete(self, name: str) -> None:
        self.get_record(name)
        self.vectors.drop_collection(name)
        for sha256, path in self.metadata.delete_collection(name):
            if self.metadata.count_sha256_references(sha256) == 0:
                self.files.remove(path)
