"""Typed domain errors. Stores and services raise these; `webserver/api/errors.py` maps them to HTTP
in one place, so no layer below the API knows about status codes."""
from __future__ import annotations


class DomainError(Exception):
    """Base class: `detail` is a sentence a person can act on."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    pass


class AlreadyExists(DomainError):
    pass


class Contention(DomainError):
    """Concurrent writes kept waiting on each other (a deadlock, a lock held too long); sending the request
    again succeeds. Services retry a few times before they let it reach the client."""


class InvalidInput(DomainError):
    pass


class UnsupportedMedia(DomainError):
    pass


class PayloadTooLarge(DomainError):
    pass


class EncoderMismatch(DomainError):
    """A collection's vectors were made by another encoder than the one loaded."""


class StoreUnavailable(DomainError):
    """Milvus or the metadata database cannot be reached."""


class EncoderLoadError(DomainError):
    """The configured model cannot be loaded (e.g. it would need a download while offline)."""


class SchemaVersionError(DomainError):
    """The stored layout is not the code's and may not be changed now (older without permission to
    upgrade, newer than the code, or unknown): the server refuses to start."""
