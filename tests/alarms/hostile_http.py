"""Answers a hostile or broken HTTP server gives, on a real loopback socket (asyncio
``start_server`` handlers): shared by the discovery and the bounded-answer tests."""

from __future__ import annotations

import asyncio
import contextlib


async def read_head(reader: asyncio.StreamReader) -> None:
    """Read one request's head (and ignore it)."""
    while (await reader.readline()) not in (b"\r\n", b""):
        pass


async def _drip(writer: asyncio.StreamWriter, first: bytes, then: bytes) -> None:
    """Send ``first``, then ``then`` every 0.1 s (well inside any read timeout) for ever."""
    writer.write(first)
    with contextlib.suppress(ConnectionError):
        while True:
            writer.write(then)
            await writer.drain()
            await asyncio.sleep(0.1)


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A 200 whose chunked body comes a byte at a time, well inside any read timeout, for ever."""
    await read_head(reader)
    await _drip(writer, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"1\r\n \r\n")


async def trickle_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A 200 whose head comes a header line every 0.1 s, for ever: each read is well inside
    any read timeout, and the answer's head is never whole."""
    await read_head(reader)
    await _drip(writer, b"HTTP/1.1 200 OK\r\n", b"x-slow: 1\r\n")
