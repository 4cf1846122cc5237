"""The FastAPI application: models and stores are built once in the lifespan and live on app.state."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from config import Settings
from webserver.api.errors import install_error_handlers
from webserver.api.limits import BodyLimit
from webserver.api.model_work import ModelWork
from webserver.api.observability import Metrics, install_observability
from webserver.api.openapi import install_openapi
from webserver.api.routes import admin, collections, health, images, metrics, page, search, seed
from webserver.api.security import install_security
from webserver.encoders.registry import EncoderSet
from webserver.errors import DomainError, EncoderMismatch, SchemaVersionError
from webserver.services.container import Services, build_services, default_collections, prepare_stores
from webserver.version import project_version

log = logging.getLogger(__name__)


def bootstrap(services: Services) -> None:
    """Schema and default collections; warn about collections another encoder made. A store that is down
    is logged, not fatal: /readyz reports it and requests answer 503. A stored layout the code may not
    use (older without permission to upgrade, or newer) stops the start."""
    try:
        if not services.settings.milvus_is_server:
            # Take the embedded Milvus Lite file now, not at the first request: a script that opened it
            # under an idle server (a local backup, a bulk load) would otherwise lock the server out.
            services.vectors.ping()
        prepare_stores(services, default_collections(services.settings, services.encoders))
        # Milvus Lite: searches use in-memory copies of the collections, read in the background now.
        services.vectors.start_memory_copies([record.name for record in services.collections.list_all()])
        for record in services.collections.mismatched():
            try:
                services.collections.require_servable(record.name)
            except EncoderMismatch as exc:
                log.error("refused until reindexed: %s", exc.detail)
    except SchemaVersionError as exc:
        log.error("startup refused: %s", exc.detail)
        raise
    except DomainError as exc:
        log.error("startup: %s", exc.detail)


def create_app(settings: Settings, encoders: EncoderSet | None = None) -> FastAPI:
    """`encoders`: models loaded beforehand (main.py, tests sharing one model); None loads them here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services = await anyio.to_thread.run_sync(build_services, settings, encoders)
        try:
            await anyio.to_thread.run_sync(bootstrap, services)
        except BaseException:
            services.close()  # release the embedded Milvus file's lock before the process ends
            raise
        app.state.services = services
        app.state.model_work = ModelWork(settings.MODEL_WORKERS)
        # Searches have threads of their own, more of them: their encodes wait in the query batchers,
        # where concurrent ones share a forward pass (webserver/encoders/batching.py).
        app.state.search_work = ModelWork(settings.SEARCH_WORKERS, name="search-work")
        log.info("serving with %s", services.encoders.describe())
        yield
        app.state.search_work.shutdown()
        app.state.model_work.shutdown()
        services.close()

    # /docs and /redoc with their JavaScript and CSS served from the installed package, not a CDN:
    # they work offline.
    app = FastAPIOffline(title="Composed image retrieval", version=project_version(), lifespan=lifespan,
                         description="Search an image collection by text, by image, or by image + text change.")
    app.state.metrics = Metrics()
    install_observability(app, app.state.metrics)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.MAX_REQUEST_BYTES, max_json_bytes=settings.MAX_JSON_BYTES,
                       max_file_bytes=settings.MAX_UPLOAD_BYTES)
    install_security(app, settings)  # outermost: its headers reach every answer, a refused body's too
    install_openapi(app, settings)
    for module in (page, health, metrics, collections, images, search, seed, admin):
        app.include_router(module.router)
    page.mount_static(app)
    return app
