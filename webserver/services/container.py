"""Build every service from Settings, for the app's lifespan and for the scripts alike."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from config import Settings
from webserver.encoders.base import CLIP, FUSED, TIRG, Encoder
from webserver.encoders.clip import ClipEncoder
from webserver.encoders.fused import FusedEncoder
from webserver.encoders.registry import EncoderSet
from webserver.encoders.tirg import TirgEncoder
from webserver.errors import EncoderLoadError
from webserver.services.collections import CollectionService
from webserver.services.images import ImageService
from webserver.services.query_batching import QueryBatching
from webserver.services.search import SearchService
from webserver.stores.files import FileStore
from webserver.stores.metadata import MetadataStore
from webserver.stores.schema import SchemaReport
from webserver.stores.vectors import IndexSettings, VectorStore

log = logging.getLogger(__name__)


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
        self.search.batching.close()
        self.vectors.close()
        self.metadata.dispose()


def load_encoder(settings: Settings) -> ClipEncoder:
    return ClipEncoder(settings.CLIP_MODEL, settings.CLIP_PRETRAINED, device=settings.DEVICE,
                       precision=settings.CLIP_PRECISION, batch_size=settings.ENCODE_BATCH_SIZE,
                       cpu_class=settings.CPU_CLASS, composer=settings.CLIP_COMPOSER,
                       sum_text_weight=settings.CLIP_SUM_TEXT_WEIGHT,
                       combiner_checkpoint=settings.CLIP_COMBINER_CHECKPOINT, runtime=settings.CLIP_RUNTIME,
                       onnx_cache_dir=settings.ONNX_CACHE.expanduser())


def load_encoders(settings: Settings, clip: ClipEncoder | None = None) -> EncoderSet:
    """CLIP always; TIRG when TIRG_CHECKPOINT is set. `clip` reuses an already loaded CLIP model."""
    clip = clip or load_encoder(settings)
    encoders: list[Encoder] = [clip]
    if settings.FUSED_TIRG_WEIGHT is not None and not settings.TIRG_CHECKPOINT:
        raise EncoderLoadError("FUSED_TIRG_WEIGHT needs TIRG_CHECKPOINT: the fusion's other half is TIRG.")
    if settings.TIRG_CHECKPOINT:
        encoders.append(tirg := TirgEncoder(settings.TIRG_CHECKPOINT, device=settings.DEVICE,
                                    batch_size=settings.ENCODE_BATCH_SIZE, precision=settings.TIRG_PRECISION,
                                    cpu_class=settings.CPU_CLASS, runtime=settings.TIRG_RUNTIME,
                                    onnx_cache_dir=settings.ONNX_CACHE.expanduser()))
        if settings.FUSED_TIRG_WEIGHT is not None:
            encoders.append(FusedEncoder(tirg, clip, settings.FUSED_TIRG_WEIGHT))
    return EncoderSet(*encoders)


def prepare_stores(services: Services, collections: Sequence[tuple[str, str]] = ()) -> SchemaReport:
    """The metadata schema at the code's revision (created, upgraded or refused by the settings' rules),
    then each (name, encoder kind) collection made if missing. One place for the server and the scripts."""
    settings = services.settings
    report = services.metadata.prepare_schema(upgrade=settings.upgrades_schema_on_start,
                                              backup_dir=settings.backups_dir)
    if report.changed and report.before is not None:
        log.warning("metadata schema upgraded from revision %s to %s%s", report.before, report.after,
                    f" (the old database was copied to {report.backup})" if report.backup else "")
    for name, kind in collections:
        services.collections.ensure(name, kind)
    return report


def default_collections(settings: Settings, encoders: EncoderSet) -> list[tuple[str, str]]:
    """The collections a server makes at start: CLIP's MILVUS_TABLE, and TIRG_TABLE with a TIRG model."""
    defaults = [(settings.MILVUS_TABLE, CLIP)]
    if encoders.tirg is not None:
        defaults.append((settings.TIRG_TABLE, TIRG))
    if encoders.fused is not None:
        defaults.append((settings.FUSED_TABLE, FUSED))
    return defaults


def build_services(settings: Settings, encoders: EncoderSet | None = None) -> Services:
    """Stores connect lazily: building succeeds while Milvus or MySQL is down (readyz reports it)."""
    encoders = encoders or load_encoders(settings)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    metadata = MetadataStore(settings.metadata_url)
    index = IndexSettings(index_type=settings.MILVUS_INDEX_TYPE, hnsw_m=settings.MILVUS_HNSW_M,
                          ef_construction=settings.MILVUS_HNSW_EF_CONSTRUCTION, ivf_nlist=settings.MILVUS_IVF_NLIST,
                          search_ef=settings.MILVUS_SEARCH_EF, ivf_nprobe=settings.MILVUS_IVF_NPROBE)
    vectors = VectorStore(settings.milvus_uri, token=settings.MILVUS_TOKEN, index=index,
                          timeout_s=settings.MILVUS_TIMEOUT_S, memory_search=settings.MILVUS_LITE_MEMORY_SEARCH)
    files = FileStore(settings.files_dir)
    collections = CollectionService(metadata=metadata, vectors=vectors, files=files, encoders=encoders,
                                    defaults=dict(default_collections(settings, encoders)))
    images = ImageService(collections=collections, metadata=metadata, vectors=vectors, files=files,
                          max_bytes=settings.MAX_UPLOAD_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS,
                          max_request_pixels=settings.MAX_REQUEST_PIXELS)
    composed = settings.TIRG_TABLE if encoders.tirg is not None else settings.MILVUS_TABLE
    defaults = {"text": settings.MILVUS_TABLE, "image": settings.MILVUS_TABLE, "composed": composed}
    batching = QueryBatching(window_s=settings.QUERY_BATCH_WINDOW_MS / 1000, max_batch=settings.QUERY_BATCH_MAX)
    search = SearchService(collections=collections, images=images, metadata=metadata, vectors=vectors,
                           default_collections=defaults, batching=batching)
    return Services(settings, encoders, metadata, vectors, files, collections, images, search)
