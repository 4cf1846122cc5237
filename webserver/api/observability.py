"""Prometheus metrics and request ids.

Every request gets an id (the client's `X-Request-ID` if it sent a sane one, else a new one), echoed in
the response header and attached to every log line written while it runs. Request counts and latency
are recorded per route template (`/images/{image_id}`, not each id), and searches add per-stage
histograms (encode, Milvus search, metadata fetch). Each app has its own registry, so several apps in
one process (tests) do not collide.
"""
from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
import uuid

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REQUEST_ID_HEADER = "X-Request-ID"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = logging.getLogger("webserver.access")


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], registry=self.registry)
        self.search_stage = Histogram(
            "search_stage_duration_seconds", "Search time per stage (encode, milvus_search, metadata_fetch)",
            ["stage", "mode"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))

    def observe_search(self, mode: str, stage_seconds: dict[str, float]) -> None:
        for stage, seconds in stage_seconds.items():
            self.search_stage.labels(stage=stage, mode=mode).observe(seconds)

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def install_observability(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def observe(request: Request, call_next):
        sent = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = sent if _CLIENT_ID.match(sent) else uuid.uuid4().hex[:16]
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            seconds = time.perf_counter() - started
            route = _route_template(request)
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route).observe(seconds)
            log.info("request", extra={"method": request.method, "route": route, "path": request.url.path,
                                       "status": status, "duration_ms": round(seconds * 1000, 2)})
            request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (\"-\" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


_STANDARD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "request_id": getattr(record, "request_id", "-"), "message": record.getMessage()}
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_FIELDS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# Libraries' INFO chatter at start: faiss reports the AVX2/AVX-512 builds it could not import (a
# ModuleNotFoundError line that reads like a failure), Alembic its SQL dialect. Their warnings still show.
CHATTY_LOGGERS = ("faiss.loader", "alembic.runtime.migration")


class LibraryChatterFilter(logging.Filter):
    """open_clip logs a dozen INFO lines per model through the root logger (`logging.info`), so its
    records are told apart by the file that wrote them; its warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        from_open_clip = record.name == "root" and f"{os.sep}open_clip{os.sep}" in record.pathname
        return record.levelno >= logging.WARNING or not from_open_clip


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    if level > logging.DEBUG:
        handler.addFilter(LibraryChatterFilter())
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    logging.basicConfig(level=level, handlers=[handler], force=True)
