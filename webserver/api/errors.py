"""The one place where domain errors become HTTP responses."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.DomainError, _domain_error_handler)
