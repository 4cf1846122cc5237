"""Search: text -> image, image -> image; composed (image + text) arrives with TIRG collections."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from webserver.encoders.base import ImageTextEncoder
from webserver.errors import InvalidInput, NotFound, NotImplementedMode
from webserver.services.collections import CollectionService
from webserver.services.images import ImageService, Upload
from webserver.stores.metadata import ImageRecord, MetadataStore
from webserver.stores.vectors import VectorStore, build_filter

MAX_TOP_K = 1000
MAX_OFFSET = 10_000
MAX_TEXT_CHARS = 1000


@dataclass(frozen=True)
class SearchQuery:
    collection: str
    text: str | None = None
    image: Upload | None = None
    image_id: int | None = None
    top_k: int = 10
    offset: int = 0
    filter: dict[str, Any] | None = None


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


class SearchService:
    def __init__(self, *, collections: CollectionService, images: ImageService, metadata: MetadataStore,
                 vectors: VectorStore, encoder: ImageTextEncoder):
        self.collections = collections
        self.images = images
        self.metadata = metadata
        self.vectors = vectors
        self.encoder = encoder

    def search(self, query: SearchQuery) -> SearchResult:
        started = time.perf_counter()
        _check_paging(query)
        mode = query_mode(query)
        self.collections.require_servable(query.collection)
        expression = build_filter(query.filter, exclude_id=query.image_id)
        vector = self._query_vector(query, mode)
        hits = self.vectors.search(query.collection, vector, limit=query.top_k, offset=query.offset,
                                   expression=expression)
        records = self.metadata.get_images([hit.id for hit in hits])
        found = [SearchHit(records[hit.id], hit.score) for hit in hits if hit.id in records]
        return SearchResult(mode, query.collection, (time.perf_counter() - started) * 1000, found)

    def _query_vector(self, query: SearchQuery, mode: str) -> np.ndarray:
        if mode == "composed":
            raise NotImplementedMode(
                "Composed search (image + text) needs a TIRG collection, which this server does not serve "
                "yet; send text alone or an image alone.")
        if mode == "text":
            text = query.text.strip()
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidInput(f"text is over {MAX_TEXT_CHARS} characters.")
            return self.encoder.encode_texts([text])[0]
        if query.image_id is not None:
            return self._indexed_vector(query.collection, query.image_id)
        prepared = self.images.prepare(query.image)
        return self.encoder.encode_images([prepared.decoded.image])[0]

    def _indexed_vector(self, collection: str, image_id: int) -> np.ndarray:
        record = self.metadata.get_images([image_id]).get(image_id)
        if record is None or record.collection != collection:
            raise NotFound(f"Image {image_id} is not in collection {collection!r}.")
        vector = self.vectors.get_vectors(collection, [image_id]).get(image_id)
        if vector is None:
            raise NotFound(f"Image {image_id} has no vector in Milvus; rebuild with scripts/reindex.py.")
        return vector


def _check_paging(query: SearchQuery) -> None:
    if not 1 <= query.top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}.")
    if not 0 <= query.offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}.")
