"""Search: text -> image, image -> image and composed (image + modification text) on CLIP collections
(composed by a composer over the CLIP space); image -> image and composed on TIRG collections. The
collection's encoder decides what it answers."""
from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from webserver.encoders.base import Encoder, kind_of
from webserver.errors import InvalidInput, NotFound
from webserver.services.collections import CollectionService
from webserver.services.images import ImageService, Upload
from webserver.services.imaging import open_stored
from webserver.services.query_batching import QueryBatching
from webserver.stores.metadata import ImageRecord, MetadataStore
from webserver.stores.vectors import VectorStore, build_filter

MAX_TOP_K = 1000
MAX_OFFSET = 10_000
MAX_TEXT_CHARS = 1000
MODE_WORDS = {"text": "text", "image": "image (file or image_id)", "composed": "image + modification text"}


@dataclass(frozen=True)
class SearchQuery:
    collection: str | None  # None: the service's default for the query's mode
    text: str | None = None
    image: Upload | None = None
    image_id: int | None = None
    top_k: int = 10
    offset: int = 0
    filter: dict[str, Any] | None = None
    composer: str | None = None  # a CLIP collection's composer for a composed query (None: the server's)


@dataclass(frozen=True)
class SearchHit:
    record: ImageRecord
    score: float


@dataclass(frozen=True)
class SearchResult:
    mode: str
    collection: str
    took_ms: float
    hits: list[SearchHit]
    stage_seconds: dict[str, float]  # encode, milvus_search, metadata_fetch: for metrics
    composer: str | None = None  # what composed the query on a CLIP collection (sum, trained)


def query_mode(query: SearchQuery) -> str:
    has_text = bool(query.text and query.text.strip())
    has_image = query.image is not None or query.image_id is not None
    if query.image is not None and query.image_id is not None:
        raise InvalidInput("Give either an image file or image_id, not both.")
    if has_text and has_image:
        return "composed"
    if has_text:
        return "text"
    if has_image:
        return "image"
    raise InvalidInput("Give a query: text, an image file, or image_id (or an image plus text).")


def check_answerable(collection: str, encoder: Encoder, mode: str) -> None:
    if mode not in encoder.modes:
        answers = " and ".join(MODE_WORDS[m] for m in MODE_WORDS if m in encoder.modes)
        raise InvalidInput(f"Collection {collection!r} holds {kind_of(encoder.encoder_id)} vectors and answers "
                           f"{answers} queries, not {MODE_WORDS[mode]}; pick a collection that does "
                           "(GET /collections lists what each answers).")


class SearchService:
    def __init__(self, *, collections: CollectionService, images: ImageService, metadata: MetadataStore,
                 vectors: VectorStore, default_collections: dict[str, str], batching: QueryBatching | None = None):
        """`default_collections`: query mode -> the collection a query without one goes to. `batching`
        encodes concurrent queries together (none: each alone)."""
        self.default_collections = default_collections
        self.batching = batching or QueryBatching(window_s=0.0, max_batch=1)
        self.collections = collections
        self.images = images
        self.metadata = metadata
        self.vectors = vectors

    def search(self, query: SearchQuery) -> SearchResult:
        started = time.perf_counter()
        _check_paging(query)
        mode = query_mode(query)
        collection = self._collection_for(query, mode)
        encoder = self.collections.require_servable(collection)
        check_answerable(collection, encoder, mode)
        composer = encoder.composer_for(query.composer) if mode == "composed" else None
        source = self._source_record(query)
        where = build_filter(query.filter, exclude_id=self._excluded_id(query, source, collection, mode))
        stages = _StageClock()
        with stages("encode"):
            vector = self._query_vector(query, source, collection, mode, encoder, composer)
        with stages("milvus_search"):
            hits = self.vectors.search(collection, vector, limit=query.top_k, offset=query.offset,
                                       where=where)
        with stages("metadata_fetch"):
            records = self.metadata.get_images([hit.id for hit in hits], collection=collection)
        found = [SearchHit(records[hit.id], hit.score) for hit in hits if hit.id in records]
        took_ms = (time.perf_counter() - started) * 1000
        return SearchResult(mode, collection, took_ms, found, stages.seconds, composer)

    def defaults_served(self) -> dict[str, str]:
        """Query kind -> its default collection, for the kinds some loaded model answers."""
        modes = {mode for encoder in self.collections.encoders.by_kind.values() for mode in encoder.modes}
        return {mode: name for mode, name in self.default_collections.items() if mode in modes}

    def _collection_for(self, query: SearchQuery, mode: str) -> str:
        if query.collection:
            return query.collection
        if mode not in self.defaults_served():
            raise InvalidInput(f"No model loaded here answers {MODE_WORDS[mode]} queries: composed queries need a "
                               "TIRG model; start the server with TIRG_CHECKPOINT set to a TIRG checkpoint (the "
                               "demo's is models/tirg-css.pt).")
        return self.default_collections[mode]

    def _source_record(self, query: SearchQuery) -> ImageRecord | None:
        """The row of `image_id`, in whichever collection holds it: any stored image can start a query."""
        if query.image_id is None:
            return None
        record = self.metadata.get_images([query.image_id]).get(query.image_id)
        if record is None:
            raise NotFound(f"Image {query.image_id} does not exist.")
        return record

    def _excluded_id(self, query: SearchQuery, source: ImageRecord | None, collection: str, mode: str) -> int | None:
        """The indexed image a query starts from, kept out of its results: the `image_id` itself, or the copy
        of its bytes in the searched collection when it came from another one; for a composed query with an
        uploaded file, a stored copy of those bytes ("this one, but blue" never wants the unchanged image
        back; the paper's protocol). An image query by upload still finds its copy."""
        if source is not None:
            if source.collection == collection:
                return source.id
            digest = source.sha256
        elif mode == "composed" and query.image is not None:
            digest = hashlib.sha256(query.image.data).hexdigest()
        else:
            return None
        return self.metadata.find_by_sha256(collection, [digest]).get(digest)

    def _query_vector(self, query: SearchQuery, source: ImageRecord | None, collection: str, mode: str,
                      encoder: Encoder, composer: str | None) -> np.ndarray:
        if mode == "text":
            return self.batching.text(encoder, _checked_text(query.text))
        if mode == "composed":
            if encoder.composes_vectors and source is not None and source.collection == collection:
                # A CLIP composer takes the unit image vector the collection stores: no image to encode.
                text_vector = self.batching.text(encoder, _checked_text(query.text))
                return encoder.compose_vectors(self._indexed_vector(collection, source.id)[None],
                                               text_vector[None], composer)[0]
            # TIRG needs its image encoder's raw features, not the stored unit vector: re-encode.
            return self.batching.composed(encoder, self._query_image(query, source), _checked_text(query.text),
                                          composer)
        if source is not None and source.collection == collection:
            return self._indexed_vector(collection, source.id)
        # An upload, or an image of another collection (other vectors, perhaps another model): encode it.
        return self.batching.image(encoder, self._query_image(query, source))

    def _query_image(self, query: SearchQuery, source: ImageRecord | None) -> Image.Image:
        if source is not None:
            data, _ = self.images.read_file(source.id)
            return open_stored(data)
        if query.image is None:
            raise InvalidInput("Give an image file or image_id.")
        return self.images.prepare(query.image).decoded.image

    def _indexed_vector(self, collection: str, image_id: int) -> np.ndarray:
        vector = self.vectors.get_vectors(collection, [image_id]).get(image_id)
        if vector is None:
            raise NotFound(f"Image {image_id} has no vector in Milvus; rebuild with scripts/reindex.py.")
        return vector


class _StageClock:
    """`with clock("stage"):` adds the block's wall time to clock.seconds["stage"]."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


def _checked_text(text: str | None) -> str:
    text = (text or "").strip()
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"text is over {MAX_TEXT_CHARS} characters.")
    return text


def _check_paging(query: SearchQuery) -> None:
    if not 1 <= query.top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}.")
    if not 0 <= query.offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}.")
