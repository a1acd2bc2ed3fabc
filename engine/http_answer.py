"""HTTP answers read with a bound on their size and on the whole exchange's time.

httpx reads a whole body into memory unless asked to stream, its timeouts are per read (a byte
every few seconds keeps an answer coming for ever), and it inflates ``gzip``/``br``/``zstd``
answers whole (a 64 KiB chunk may inflate to 64 MiB). Every answer we read comes from something
that may be hostile or broken: a squatter on a service's port, a mirror's remote. So answers are
asked for uncompressed (``accept-encoding: identity``), an answer compressed anyway is refused,
and the body is read in chunks up to ``max_bytes``; past it the connection is dropped.

    response = await send_bounded_async(client, client.build_request("GET", url), max_bytes=N)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any

import httpx

IDENTITY = {"accept-encoding": "identity"}
"""Headers asking for an uncompressed answer (no decompression bomb)."""


class NotJson(ValueError):
    """An answer whose body is not JSON, or is JSON nested past Python's stack (``json``
    raises ``RecursionError`` on ``[[[[…``, which escaped every caller that expected only a
    ``ValueError``)."""


def json_of(response: httpx.Response) -> Any:
    """The answer's JSON, any shape (callers check it); ``NotJson`` otherwise."""
    try:
        return response.json()
    except (ValueError, RecursionError):
        raise NotJson(f"answered {response.status_code} without JSON") from None


class AnswerRefused(httpx.DecodingError):
    """An answer too large, too slow in coming, or compressed when it was asked not to be
    (an ``httpx.HTTPError``, so callers' transport-failure handling covers it)."""


def _check_encoding(response: httpx.Response) -> None:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise AnswerRefused(
            f"answered with content-encoding {encoding[:40]!r}, which was not asked for",
            request=response.request,
        )


def _too_large(response: httpx.Response, max_bytes: int) -> AnswerRefused:
    return AnswerRefused(f"answer larger than {max_bytes} bytes", request=response.request)


def _whole(response: httpx.Response, data: bytearray) -> httpx.Response:
    """A response holding ``data`` as its (already read, unencoded) body."""
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=bytes(data),
        request=response.request,
        extensions=response.extensions,
    )


def send_bounded(
    client: httpx.Client, request: httpx.Request, *, max_bytes: int, limit_s: float
) -> httpx.Response:
    """Send ``request`` and read its answer, at most ``max_bytes`` of body, the whole exchange
    (connecting, the answer's head, its body) within ``limit_s``: ``httpx.ReadTimeout`` past
    it, ``AnswerRefused`` past the size or for an encoding not asked for.

    httpx's sync timeouts are per read, so a head sent a line at a time held the caller (a
    mirror's queue) for as long as the sender liked. A watchdog shuts the call's socket at the
    deadline, which ends the read blocked on it; the socket is taken from httpx's ``trace``
    extension as the connection is made, so each call has a connection of its own
    (``connection: close``: never one from the pool, whose socket no event names)."""
    request.headers.update(IDENTITY)
    request.headers["connection"] = "close"
    sockets: list[socket.socket] = []
    expired = threading.Event()

    def shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def trace(event: str, info: dict[str, Any]) -> None:
        if event in _CONNECTED:
            sock = info["return_value"].get_extra_info("socket")
            if isinstance(sock, socket.socket):
                sockets.append(sock)
                if expired.is_set():
                    shut(sock)

    def expire() -> None:
        expired.set()
        for sock in list(sockets):
            shut(sock)

    request.extensions = {**request.extensions, "trace": trace}
    watchdog = threading.Timer(limit_s, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        response = client.send(request, stream=True)
        try:
            _check_encoding(response)
            data = bytearray()
            for chunk in response.iter_raw():
                data += chunk
                if len(data) > max_bytes:
                    raise _too_large(response, max_bytes)
        finally:
            response.close()
    except httpx.HTTPError:
        if expired.is_set():
            raise httpx.ReadTimeout(
                f"no whole answer within {limit_s:g} s", request=request
            ) from None
        raise
    finally:
        watchdog.cancel()
    return _whole(response, data)


_CONNECTED = frozenset(
    f"connection.{step}.complete" for step in ("connect_tcp", "connect_unix_socket", "start_tls")
)
"""httpcore's trace events whose ``return_value`` is the connection's new network stream."""


async def send_bounded_async(
    client: httpx.AsyncClient, request: httpx.Request, *, max_bytes: int, limit_s: float
) -> httpx.Response:
    """Send ``request`` and read its answer, at most ``max_bytes`` of body, the whole exchange
    (connecting, headers, body) within ``limit_s``: ``httpx.TimeoutException`` past it,
    ``AnswerRefused`` past the size or for an encoding not asked for."""
    request.headers.update(IDENTITY)
    try:
        async with asyncio.timeout(limit_s):
            response = await client.send(request, stream=True)
            try:
                _check_encoding(response)
                data = bytearray()
                async for chunk in response.aiter_raw():
                    data += chunk
                    if len(data) > max_bytes:
                        raise _too_large(response, max_bytes)
            finally:
                await response.aclose()
    except TimeoutError:
        raise httpx.ReadTimeout(f"no whole answer within {limit_s:g} s", request=request) from None
    return _whole(response, data)
