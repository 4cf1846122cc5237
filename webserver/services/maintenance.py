"""Rebuilding a collection's vectors from the source of truth (metadata rows + stored files)."""
from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image

from webserver.encoders.base import kind_of
from webserver.services.container import Services


def reindex(services: Services, collection: str, *, batch_size: int = 64,
            on_batch: Callable[[int], None] | None = None) -> int:
    """Drop the collection's Milvus vectors and encode every stored image again with the loaded encoder
    of the collection's kind (CLIP or TIRG).

    The collection's recorded encoder changes only at the end, so an interrupted run leaves it refused
    (or, if it matched, partly rebuilt) and running it again finishes the job. Returns the count encoded.
    """
    record = services.collections.get_record(collection)
    encoder = services.encoders.get(kind_of(record.encoder_id))
    services.vectors.drop_collection(collection)
    services.vectors.create_collection(collection, encoder.dimension)
    encoded = 0
    for batch in services.metadata.iter_image_batches(collection, batch_size):
        images = [Image.open(io.BytesIO(services.files.read(record.path))) for record in batch]
        vectors = encoder.encode_images(images)
        services.vectors.upsert(collection, [r.id for r in batch], vectors, [r.meta for r in batch])
        encoded += len(batch)
        if on_batch:
            on_batch(len(batch))
    services.vectors.flush(collection)
    services.metadata.set_collection_encoder(collection, encoder_id=encoder.encoder_id,
                                             dimension=encoder.dimension)
    return encoded
