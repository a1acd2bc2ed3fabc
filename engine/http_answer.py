"""HTTP answers read with a bound on their size and, where the caller is async, on the whole
exchange's time.

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
import time

import httpx

IDENTITY = {"accept-encoding": "identity"}
"""Headers asking for an uncompressed answer (no decompression bomb)."""


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
    """Send ``request`` and read its answer, at most ``max_bytes`` of body and, once the
    headers are in, for at most ``limit_s`` (checked between reads, each bounded by the
    client's read timeout). ``AnswerRefused`` past either bound."""
    request.headers.update(IDENTITY)
    response = client.send(request, stream=True)
    try:
        _check_encoding(response)
        data = bytearray()
        deadline = time.monotonic() + limit_s
        for chunk in response.iter_raw():
            data += chunk
            if len(data) > max_bytes:
                raise _too_large(response, max_bytes)
            if time.monotonic() > deadline:
                raise AnswerRefused(
                    f"answer still coming after {limit_s:g} s", request=response.request
                )
    finally:
        response.close()
    return _whole(response, data)


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
