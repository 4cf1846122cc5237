"""Build every service from Settings, for the app's lifespan and for the scripts alike."""
from __future__ import annotations

from dataclasses import dataclass

from config import Settings
from webserver.encoders.clip import ClipEncoder
from webserver.encoders.registry import EncoderSet
from webserver.encoders.tirg import TirgEncoder
from webserver.services.collections import CollectionService
from webserver.services.images import ImageService
from webserver.services.search import SearchService
from webserver.stores.files import FileStore
from webserver.stores.metadata import MetadataStore
from webserver.stores.vectors import VectorStore


@dataclass
class Services:
    settings: Settings
    encoders: EncoderSet
    metadata: MetadataStore
    vectors: VectorStore
    files: FileStore
    collections: CollectionService
    images: ImageService
    search: SearchService

    def close(self) -> None:
        self.vectors.close()
        self.metadata.dispose()


def load_encoder(settings: Settings) -> ClipEncoder:
    return ClipEncoder(settings.CLIP_MODEL, settings.CLIP_PRETRAINED, device=settings.DEVICE,
                       precision=settings.CLIP_PRECISION, batch_size=settings.ENCODE_BATCH_SIZE,
                       cpu_class=settings.CPU_CLASS)


def load_encoders(settings: Settings, clip: ClipEncoder | None = None) -> EncoderSet:
    """CLIP always; TIRG when TIRG_CHECKPOINT is set. `clip` reuses an already loaded CLIP model."""
    encoders = [clip or load_encoder(settings)]
    if settings.TIRG_CHECKPOINT:
        encoders.append(TirgEncoder(settings.TIRG_CHECKPOINT, device=settings.DEVICE,
                                    batch_size=settings.ENCODE_BATCH_SIZE, precision=settings.TIRG_PRECISION,
                                    cpu_class=settings.CPU_CLASS))
    return EncoderSet(*encoders)


def build_services(settings: Settings, encoders: EncoderSet | None = None) -> Services:
    """Stores connect lazily: building succeeds while Milvus or MySQL is down (readyz reports it)."""
    encoders = encoders or load_encoders(settings)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    metadata = MetadataStore(settings.metadata_url)
    vectors = VectorStore(settings.milvus_uri, token=settings.MILVUS_TOKEN,
                          index_type=settings.MILVUS_INDEX_TYPE, timeout_s=settings.MILVUS_TIMEOUT_S)
    files = FileStore(settings.files_dir)
    collections = CollectionService(metadata=metadata, vectors=vectors, files=files, encoders=encoders)
    images = ImageService(collections=collections, metadata=metadata, vectors=vectors, files=files,
                          max_bytes=settings.MAX_UPLOAD_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS)
    defaults = {"text": settings.MILVUS_TABLE, "image": settings.MILVUS_TABLE, "composed": settings.TIRG_TABLE}
    search = SearchService(collections=collections, images=images, metadata=metadata, vectors=vectors,
                           default_collections=defaults)
    return Services(settings, encoders, metadata, vectors, files, collections, images, search)
