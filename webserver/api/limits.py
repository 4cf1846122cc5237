"""Request bodies are capped before they are read: by Content-Length at once, and by counting the bytes
of a streamed (chunked) body as they arrive, so no request can make the server buffer or spool more
than the cap (a 2 GB chunked upload was written to /tmp before the 413; a 2 GB JSON body grew the
process by 11 GB). JSON bodies have a smaller cap of their own. A pure ASGI middleware: it answers
the 413 itself, whatever the app and the middlewares inside it do with the exception-free disconnect."""
from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int, max_json_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_bytes = max_json_bytes

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

        async def counted() -> Message:
            """A streamed body that goes past the cap: answer 413 now, and tell the app the client left
            (it stops reading; whatever it answers to that is dropped)."""
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    refused = True
                    await _refuse(send, f"The {what} is over the {cap}-byte limit.")
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
