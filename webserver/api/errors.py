"""The one place where domain errors become HTTP responses."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from webserver import errors
from webserver.api.schemas import ErrorResponse

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.DomainError], int] = {
    errors.InvalidInput: 400,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.EncoderMismatch: 409,
    errors.Contention: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMedia: 415,
    errors.StoreUnavailable: 503,
    errors.EncoderLoadError: 503,
}

def error_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI documentation of the error answers a route can give."""
    return {code: {"model": ErrorResponse} for code in codes}


def status_for(exc: errors.DomainError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[kind]
    return 500


async def _domain_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DomainError)  # registered for DomainError only
    status = status_for(exc)
    if status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.detail)
    return JSONResponse({"detail": exc.detail}, status_code=status)


async def _nested_too_deep(_request: Request, _exc: Exception) -> JSONResponse:
    """A JSON body nested deeper than the parser recurses (it was a 500)."""
    return JSONResponse({"detail": "The JSON body is nested too deep."}, status_code=400)


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer, except that a 405 lists every method of the path in `Allow` (Starlette named only
    those of the first route matching the path, e.g. GET of GET+POST /collections)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        methods = set((exc.headers or {}).get("Allow", "").replace(" ", "").split(",")) - {""}
        for template, operations in request.app.openapi().get("paths", {}).items():
            if compile_path(template)[0].match(request.url.path):
                methods |= {method.upper() for method in operations}
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(methods))}
    return await http_exception_handler(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.DomainError, _domain_error_handler)
    app.add_exception_handler(RecursionError, _nested_too_deep)
    app.add_exception_handler(StarletteHTTPException, _http_error)
