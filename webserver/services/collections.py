"""Collections: a metadata record (which encoder made the vectors) plus one Milvus collection.

A collection is made by one kind of encoder (CLIP or TIRG) and is served by the loaded encoder with the
id and dimension it recorded; that encoder also decides which queries it answers."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from webserver.encoders.base import CLIP, Encoder, kind_of
from webserver.encoders.registry import EncoderSet
from webserver.errors import AlreadyExists, EncoderMismatch, InvalidInput, NotFound
from webserver.services.retry import retry_contention
from webserver.stores.files import FileStore
from webserver.stores.metadata import CollectionRecord, MetadataStore
from webserver.stores.vectors import VECTOR_LAYOUT, VectorStore

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
METRIC = "COSINE"
QUERY_MODES = ("text", "image", "composed")


@dataclass(frozen=True)
class CollectionStatus:
    record: CollectionRecord
    kind: str
    servable: bool
    answers: list[str]  # query modes, empty while not servable


@dataclass(frozen=True)
class CollectionInfo:
    status: CollectionStatus
    milvus_count: int
    metadata_count: int


class CollectionService:
    def __init__(self, *, metadata: MetadataStore, vectors: VectorStore, files: FileStore,
                 encoders: EncoderSet, defaults: Mapping[str, str] | None = None):
        """`defaults`: name -> encoder kind of the collections the server makes at start."""
        self.defaults = dict(defaults or {})
        self.metadata = metadata
        self.files = files
        self.vectors = vectors
        self.encoders = encoders

    def create(self, name: str, kind: str = CLIP) -> CollectionRecord:
        if not NAME_PATTERN.match(name):
            raise InvalidInput(f"Collection name {name!r} must match {NAME_PATTERN.pattern}.")
        encoder = self.encoders.get(kind)
        same_but_case = [r.name for r in self.metadata.list_collections()
                         if r.name.lower() == name.lower() and r.name != name]
        if same_but_case:  # MySQL compares names regardless of case, Milvus does not: never both
            raise AlreadyExists(f"Collection {same_but_case[0]!r} exists; names differ by more than case.")
        # The record claims the name first: of two concurrent creates the loser stops here, before it
        # touches Milvus (it used to drop the winner's vectors on its way out).
        record = self.metadata.add_collection(name=name, encoder_id=encoder.encoder_id,
                                              dimension=encoder.dimension, metric=METRIC,
                                              vector_layout=VECTOR_LAYOUT)
        try:
            if self.vectors.has_collection(name):
                # No record named it, so no row owns its vectors (a crash, another database): start clean,
                # in this encoder's dimension, rather than reuse vectors of any size.
                self.vectors.drop_collection(name)
            self.vectors.create_collection(name, encoder.dimension)
        except Exception:
            with self.metadata.delete_collection(name):
                pass
            raise
        return record

    def ensure(self, name: str, kind: str = CLIP) -> CollectionRecord:
        """The collection, created if missing; an existing one of another kind is refused."""
        try:
            record = self.create(name, kind)
        except AlreadyExists:
            existing = self.metadata.get_collection(name)
            if existing is None:  # another name, differing only in case
                raise
            record = existing
            if kind_of(record.encoder_id) != kind:
                raise AlreadyExists(f"Collection {name!r} exists and holds {kind_of(record.encoder_id)} "
                                    f"vectors, not {kind}; pick another name.") from None
        self.defaults.pop(name, None)  # made once: deleted later, it stays deleted until a restart
        return record

    def list_all(self) -> list[CollectionRecord]:
        return self.metadata.list_collections()

    def get_record(self, name: str) -> CollectionRecord:
        """A default collection that could not be made at start (a store was down) is made now: while
        Milvus is still down that is a 503, never a 404 for a collection the server promises."""
        record = self.metadata.get_collection(name)
        if record is None and name in self.defaults:
            return self.ensure(name, self.defaults[name])
        if record is None:
            raise NotFound(f"Collection {name!r} does not exist (GET /collections lists them).")
        return record

    def _serving_encoder(self, record: CollectionRecord) -> Encoder | None:
        """The loaded encoder that made the vectors, if they are in this release's Milvus layout."""
        if record.vector_layout != VECTOR_LAYOUT:
            return None
        return self.encoders.matching(record.encoder_id, record.dimension)

    def status(self, record: CollectionRecord) -> CollectionStatus:
        encoder = self._serving_encoder(record)
        answers = [mode for mode in QUERY_MODES if encoder and mode in encoder.modes]
        return CollectionStatus(record, kind_of(record.encoder_id), encoder is not None, answers)

    def describe(self, name: str) -> CollectionInfo:
        record = self.get_record(name)
        return CollectionInfo(self.status(record), self.vectors.count(name), self.metadata.count_images(name))

    def is_servable(self, record: CollectionRecord) -> bool:
        return self._serving_encoder(record) is not None

    def require_servable(self, name: str) -> Encoder:
        """The loaded encoder that made the collection's vectors; otherwise a clear refusal."""
        record = self.get_record(name)
        if record.vector_layout != VECTOR_LAYOUT:
            raise EncoderMismatch(
                f"Collection {name!r} holds its vectors in Milvus layout {record.vector_layout}; this release "
                f"uses layout {VECTOR_LAYOUT}. Rebuild it with `python scripts/reindex.py --collection {name}`.")
        encoder = self.encoders.matching(record.encoder_id, record.dimension)
        if encoder is None:
            raise EncoderMismatch(
                f"Collection {name!r} holds vectors from {record.encoder_id} (dim {record.dimension}), "
                f"but the server runs {self.encoders.describe()}. Re-encode it with "
                f"`python scripts/reindex.py --collection {name}` or load that model.")
        return encoder

    def mismatched(self) -> list[CollectionRecord]:
        return [record for record in self.list_all() if not self.is_servable(record)]

    def delete(self, name: str) -> None:
        """Rows first (the source of truth), with the files no other collection uses removed before their
        commit, then the vectors: a failure part way leaves at most vectors nothing refers to (fsck)."""
        if self.metadata.get_collection(name) is None:
            raise NotFound(f"Collection {name!r} does not exist (GET /collections lists them).")
        def delete_rows_and_files() -> None:
            with self.metadata.delete_collection(name) as released:
                for path in released:
                    self.files.remove(path)

        retry_contention(delete_rows_and_files)
        self.vectors.drop_collection(name)
