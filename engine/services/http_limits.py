"""A bound on HTTP request bodies, as a small ASGI middleware any of our FastAPI apps can mount.

Why: FastAPI reads a JSON body whole before validating it, so six 150 MiB posts took the review
service to 1.5 GiB. The middleware refuses a body over the limit before the application sees a
byte of it:

- a ``Content-Length`` over the limit is answered 413 at once, without reading the body;
- a body without a length (chunked) is counted as it streams, and the request is cut off with a
  413 as soon as the count passes the limit (the application, still reading, gets a disconnect).

Refusals are counted (``BodyLimitStats``) so a service can show them in ``/health``.

    stats = mount_body_limit(app, max_bytes=256 * 1024)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException

from engine.http_server import Evictions, HeadTimeouts

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""1 MiB: far above any request our APIs define (the largest, a ticket edit, is ~100 KiB)."""


@dataclass
class BodyLimitStats:
    """Refused requests since start (thread-safe; read by ``/health``)."""

    max_bytes: int
    refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self) -> None:
        with self._lock:
            self.refused += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "max_body_bytes": self.max_bytes,
                "bodies_refused": self.refused,
                "heads_timed_out": HeadTimeouts.count,
                "idle_closed_for_room": Evictions.count,
            }


class BodyTooLarge(HTTPException):
    """Raised into the application's body read when a streamed body passes the limit. An
    HTTPException, so FastAPI answers it as the 413 it is (it turns other errors raised while
    parsing a body into a 400)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body over this service's limit of {max_bytes} bytes")


class BodyLimit:
    """ASGI middleware: 413 for any HTTP request body over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, stats: BodyLimitStats | None = None) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self.app = app
        self.max_bytes = max_bytes
        self.stats = stats or BodyLimitStats(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"request body of {declared} bytes")
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    self.stats.count()
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:  # an application that let it through (not FastAPI)
            if not started:
                await self._send_413(send, "the request body (streamed)")

    async def _refuse(self, send: Send, what: str) -> None:
        self.stats.count()
        await self._send_413(send, what)

    async def _send_413(self, send: Send, what: str) -> None:
        body = json.dumps(
            {"detail": f"{what} is over this service's limit of {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def mount_body_limit(app: FastAPI, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> BodyLimitStats:
    """Mount the limit on ``app`` (outermost, so nothing reads a body before it) and return the
    counters to show in ``/health``."""
    stats = BodyLimitStats(max_bytes)
    app.add_middleware(BodyLimit, max_bytes=max_bytes, stats=stats)
    return stats
