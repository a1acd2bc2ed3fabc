"""A bound on HTTP request bodies for every service (mounted by ``Service``).

Pure ASGI, so nothing is buffered before the check: a declared ``Content-Length`` over the limit
is refused with 413 before a byte of the body is read; a chunked body is counted as it streams
and refused as soon as it passes the limit. Refusals are counted (``refused``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(Exception):
    pass


@dataclass
class BodyLimitStats:
    """Shared with the service for /health (the middleware instance is built by Starlette)."""

    max_bytes: int = DEFAULT_MAX_BODY_BYTES
    refused: int = 0


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, stats: BodyLimitStats) -> None:
        self.app = app
        self.stats = stats
        self.max_bytes = stats.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"request body of {declared} bytes")
            return
        seen = 0
        refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer now and tell the app the client is gone: it stops reading, and
                    # whatever it would answer is dropped (one response per request).
                    refused = True
                    await self._refuse(send, f"request body of more than {self.max_bytes} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            if not refused:
                raise  # the app's own failure; after a refusal it is only the disconnect

    async def _refuse(self, send: Send, what: str) -> None:
        self.stats.refused += 1
        body = json.dumps({"detail": f"{what} is over the limit of {self.max_bytes}"}).encode()
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
