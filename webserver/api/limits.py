"""Request bodies are capped before they are read: by Content-Length at once, and by counting the bytes
of a streamed (chunked) body as they arrive, so no request can make the server buffer or spool more
than the cap (a 2 GB chunked upload was written to /tmp before the 413; a 2 GB JSON body grew the
process by 11 GB). JSON bodies have a smaller cap of their own, and each file of a multipart body is
measured as it streams. A pure ASGI middleware: it answers
the 413 itself, whatever the app and the middlewares inside it do with the exception-free disconnect."""
from __future__ import annotations

import json

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class PartSizes:
    """Follows a multipart body as it streams and reports a part (a file) that grows past `max_part`
    bytes at once, before the rest is spooled (Starlette spools each file to disk while it parses)."""

    def __init__(self, content_type: bytes, max_part: int):
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        self.max_part = max_part
        self.current = 0
        self.parser = MultipartParser(boundary, {"on_part_begin": self._begin, "on_part_data": self._data}) \
            if boundary else None

    def _begin(self) -> None:
        self.current = 0

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.current += end - start

    def too_big(self, chunk: bytes) -> bool:
        if self.parser is None or not chunk:
            return False
        try:
            self.parser.write(chunk)
        except Exception:  # noqa: BLE001 - a malformed body is the form parser's to refuse, not ours
            self.parser = None
            return False
        return self.current > self.max_part


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int, max_json_bytes: int, max_file_bytes: int | None = None):
        """`max_file_bytes`: no part (file) of a multipart body may grow past it."""
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_bytes = max_json_bytes
        self.max_file_bytes = max_file_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.lower(): value for key, value in scope.get("headers", [])}
        is_json = headers.get(b"content-type", b"").split(b";")[0].strip().endswith(b"json")
        cap, what = (self.max_json_bytes, "JSON body") if is_json else (self.max_bytes, "request body")
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            await _refuse(send, f"The {what} is over the {cap}-byte limit.")
            return
        received, refused = 0, False
        content_type = headers.get(b"content-type", b"")
        parts = PartSizes(content_type, self.max_file_bytes) \
            if self.max_file_bytes and content_type.startswith(b"multipart/") else None

        async def counted() -> Message:
            """A streamed body that goes past the cap: answer 413 now, and tell the app the client left
            (it stops reading; whatever it answers to that is dropped)."""
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > cap:
                    refused = True
                    await _refuse(send, f"The {what} is over the {cap}-byte limit.")
                    return {"type": "http.disconnect"}
                if parts is not None and parts.too_big(chunk):
                    refused = True
                    await _refuse(send, f"A file of this upload is over the {self.max_file_bytes}-byte limit.")
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
