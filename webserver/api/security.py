"""Who may do what: API keys for writes (API_KEYS) and for reads (READ_API_KEYS), the Origin of
state-changing requests from browsers, CORS, and the security headers of every response."""
from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import Settings

write_key = HTTPBearer(auto_error=False, scheme_name="write_key",
                       description="a key of API_KEYS: needed by requests that change state when it is set")
read_key = HTTPBearer(auto_error=False, scheme_name="read_key",
                      description="a key of READ_API_KEYS (or of API_KEYS): needed by reads when it is set")
Credentials = HTTPAuthorizationCredentials | None

PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _holds_one_of(credentials: Credentials, keys: list[str]) -> bool:
    """Compared in constant time against every key (no early exit that would time which one matched)."""
    if credentials is None:
        return False
    offered = credentials.credentials.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(offered, key.encode())
    return matched


def _unauthorized(what: str, setting: str) -> HTTPException:
    return HTTPException(401, f"{what} needs an API key: send `Authorization: Bearer <key>` with a key of "
                              f"{setting}.", headers={"WWW-Authenticate": "Bearer"})


def require_write(request: Request, credentials: Annotated[Credentials, Depends(write_key)]) -> None:
    """A request that changes state: from an allowed origin, and with a write key when keys are set."""
    settings = _settings(request)
    check_origin(request, settings)
    if settings.write_keys and not _holds_one_of(credentials, settings.write_keys):
        raise _unauthorized("This request changes data and", "API_KEYS")


def require_read(request: Request, credentials: Annotated[Credentials, Depends(read_key)]) -> None:
    settings = _settings(request)
    if settings.read_keys and not _holds_one_of(credentials, settings.read_keys + settings.write_keys):
        raise _unauthorized("Reading", "READ_API_KEYS (or API_KEYS)")


WRITE = [Depends(require_write)]
READ = [Depends(require_read)]


def check_origin(request: Request, settings: Settings) -> None:
    """403 for a browser request sent by a page of another site (a form post needs no key where none is
    set). Requests without Origin (curl, scripts) pass; `Origin: null` (sandboxed frames, files) does not."""
    origin = request.headers.get("origin")
    if origin is None:
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise HTTPException(403, "A page of another site may not change data here.")
        return
    if origin.rstrip("/") not in own_origins(request, settings):
        raise HTTPException(403, f"A page of {origin} may not change data here; list it in CORS_ORIGINS "
                                 "to allow it.")


def own_origins(request: Request, settings: Settings) -> set[str]:
    """The origins of this server's own pages and of CORS_ORIGINS. Never taken from the Host header alone,
    unless keys are set: a DNS-rebound name could otherwise pass as "own" on a keyless loopback server."""
    origins = set(settings.cors_origins)
    if settings.PUBLIC_URL:
        parts = urlsplit(settings.PUBLIC_URL)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    server = request.scope.get("server")
    if server:
        host, port = server[0], server[1]
        names = {"127.0.0.1", "localhost", "[::1]"} | ({host} if host not in ("0.0.0.0", "::") else set())
        for name in names:
            origins |= {f"http://{name}:{port}", f"https://{name}:{port}"}
            origins.add(f"http://{name}" if port == 80 else f"https://{name}" if port == 443 else "")
        origins.discard("")
    if settings.write_keys and "host" in request.headers:
        origins.add(f"{request.url.scheme}://{request.headers['host']}")
    return origins


def public_base(settings: Settings) -> str:
    """Where absolute links point: PUBLIC_URL, else the configured host and port (never the request's
    Host header); '' (relative links) when the configured host is a wildcard address."""
    if settings.PUBLIC_URL:
        return settings.PUBLIC_URL.rstrip("/")
    if settings.HOST in ("0.0.0.0", "::", ""):
        return ""
    host = f"[{settings.HOST}]" if ":" in settings.HOST else settings.HOST
    return f"http://{host}:{settings.PORT}"


class SecurityHeaders:
    """nosniff and no referrer on every response; the page also gets a strict CSP and may not be framed."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_page = scope.get("path") == "/"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if is_page:
                    headers += [(b"content-security-policy", PAGE_POLICY.encode()), (b"x-frame-options", b"DENY")]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def install_security(app: FastAPI, settings: Settings) -> None:
    app.state.settings = settings
    app.add_middleware(SecurityHeaders)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])
