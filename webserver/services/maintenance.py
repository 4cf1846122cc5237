"""Rebuilding a collection's vectors from the source of truth (metadata rows + stored files)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import UnidentifiedImageError

from webserver.encoders.base import kind_of
from webserver.errors import AlreadyExists
from webserver.services.container import Services
from webserver.services.imaging import open_stored
from webserver.stores.vectors import VECTOR_LAYOUT

BUILD_SUFFIX = "__reindex"


@dataclass
class ReindexReport:
    encoded: int = 0
    missing: list[tuple[int, str]] = field(default_factory=list)  # (image id, why) of rows left without a vector


def reindex(services: Services, collection: str, *, batch_size: int = 64,
            on_batch: Callable[[int], None] | None = None) -> ReindexReport:
    """Encode every stored image again with the loaded encoder of the collection's kind (CLIP or TIRG)
    into a new Milvus collection beside the old one, then switch: the old vectors stay searchable until
    the new ones are complete, and an interrupted run leaves them untouched (running it again starts the
    build over). A row whose file is missing or unreadable is skipped and reported, not fatal.

    Rows added while it runs are picked up (the rows are read in id order until none is left); the
    recorded encoder changes only with the switch.
    """
    record = services.collections.get_record(collection)
    encoder = services.encoders.get(kind_of(record.encoder_id))
    building = collection + BUILD_SUFFIX
    if services.metadata.get_collection(building) is not None:
        raise AlreadyExists(f"A collection named {building!r} exists; reindex builds there. Rename it first.")
    if services.vectors.has_collection(building):  # left by an interrupted run
        services.vectors.drop_collection(building)
    services.vectors.create_collection(building, encoder.dimension)
    report = ReindexReport()
    for batch in services.metadata.iter_image_batches(collection, batch_size):
        readable, images = [], []
        for row in batch:
            try:
                images.append(open_stored(services.files.read(row.path)))
                readable.append(row)
            except (OSError, UnidentifiedImageError) as exc:
                report.missing.append((row.id, f"{row.path}: {exc}"))
        if readable:
            vectors = encoder.encode_images(images)
            services.vectors.upsert(building, [r.id for r in readable], vectors, [r.meta for r in readable])
        report.encoded += len(readable)
        if on_batch:
            on_batch(len(batch))
    services.vectors.flush(building)
    services.vectors.replace_collection(collection, building)
    services.metadata.set_collection_encoder(collection, encoder_id=encoder.encoder_id,
                                             dimension=encoder.dimension, vector_layout=VECTOR_LAYOUT)
    return report
