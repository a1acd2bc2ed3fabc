"""Answers from whoever holds a port, read with a bound: the review client's every call (not
only discovery), the TUI's simulator and /health calls, and a ticket mirror's remote. A huge
answer, a trickle or a decompression bomb must not hang or bloat the CLI, the TUI or the ticket
service (``engine/http_answer.py``). Real loopback servers, our clients unmocked."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from hostile_http import read_head, trickle, trickle_head

from engine.review_client import ANSWER_MAX_BYTES, ANSWER_TIMEOUTS, ApiError, Endpoint, ReviewClient
from engine.services.stack import ANSWER_MAX_BYTES as STACK_MAX_BYTES
from engine.services.stack import Stack, StackError
from engine.tickets.connectors import ConnectorError
from engine.tickets.github import GitHubIssuesConnector
from engine.tickets.rest_connector import ANSWER_MAX_BYTES as MIRROR_MAX_BYTES
from tui.api import ANSWER_MAX_BYTES as TUI_MAX_BYTES
from tui.api import ControlRoomApi

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def huge(sent: list[int], total: int) -> Handler:
    """Declares ``total`` bytes of body and keeps sending them while the client reads."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
        block = b" " * (1024 * 1024)
        with contextlib.suppress(ConnectionError):
            while sent[0] < total:
                writer.write(block)
                await writer.drain()
                sent[0] += len(block)
        writer.close()

    return handler


BOMB = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]", 9)
"""64 MiB of JSON in ~64 KiB of gzip."""


async def bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-type: application/json\r\n"
    writer.write(head + b"content-length: %d\r\n\r\n%s" % (len(BOMB), BOMB))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


@contextlib.contextmanager
def serving_in_a_thread(handler: Handler) -> Iterator[str]:
    """``serving`` for a synchronous caller: the server's loop in a thread of its own."""
    ready = threading.Event()
    urls: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with serving(handler) as url:
            urls.append(url)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield urls[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def review_client(url: str, timeout: float = 10.0) -> ReviewClient:
    """A client past discovery (a token: nothing to discover), so every call is a plain one."""
    return ReviewClient(Endpoint(url, token="crt_test"), timeout=timeout)


async def test_a_huge_review_answer_is_refused_at_its_bound() -> None:
    sent = [0]
    async with serving(huge(sent, 8 * ANSWER_MAX_BYTES)) as url, review_client(url) as client:
        with pytest.raises(ApiError) as failed:
            await client.tickets()
    assert failed.value.status is None
    assert f"larger than {ANSWER_MAX_BYTES} bytes" in failed.value.detail, failed.value.detail
    assert "/tickets" in failed.value.detail
    assert sent[0] < 2 * ANSWER_MAX_BYTES, "the client stopped reading at its bound"


async def test_a_trickling_review_answer_is_a_timeout_not_a_hang() -> None:
    timeout = 0.5
    async with serving(trickle) as url, review_client(url, timeout) as client:
        started = time.monotonic()
        with pytest.raises(ApiError) as failed:
            await asyncio.wait_for(client.whoami(), 30.0)
    assert time.monotonic() - started < timeout * ANSWER_TIMEOUTS + 2.0
    assert "timed out" in failed.value.detail and "/whoami" in failed.value.detail


async def test_a_compressed_review_answer_is_not_inflated() -> None:
    async with serving(bomb) as url, review_client(url) as client:
        with pytest.raises(ApiError) as failed:
            await client.tickets()
    assert "content-encoding 'gzip'" in failed.value.detail, failed.value.detail


@pytest.mark.parametrize("how", ["huge", "trickle", "bomb"])
async def test_the_tuis_other_calls_are_bounded(how: str) -> None:
    sent = [0]
    handler = {"huge": huge(sent, 8 * TUI_MAX_BYTES), "trickle": trickle, "bomb": bomb}[how]
    async with serving(handler) as url:
        api = ControlRoomApi({"simulator": url}, timeout=0.5)
        try:
            with pytest.raises(ApiError) as failed:
                await asyncio.wait_for(api.scenario_status(), 30.0)
            with pytest.raises(ApiError):
                await asyncio.wait_for(api.health("simulator", timeout=0.5), 30.0)
        finally:
            await api.aclose()
    said = {"huge": "larger than", "trickle": "timed out", "bomb": "content-encoding"}[how]
    assert said in failed.value.detail, failed.value.detail
    assert sent[0] < 2 * (TUI_MAX_BYTES + 4 * 1024 * 1024), "two calls, each stopped at its bound"


@pytest.mark.parametrize("how", ["huge", "bomb", "deep_ok", "deep_error"])
def test_a_mirror_remote_cannot_bloat_the_ticket_service(how: str) -> None:
    """GitHub's answers are read to ``MIRROR_MAX_BYTES`` at most, never inflated: a hostile or
    broken remote is a retried server fault, not the ticket service's memory. An answer nested
    past Python's stack is one too: its RecursionError escaped the connector, so the job was
    never marked failed and, first in the queue, held back every job after it."""
    sent = [0]
    handler = {
        "huge": huge(sent, 64 * MIRROR_MAX_BYTES),
        "bomb": bomb,
        "deep_ok": deep(b"200 OK"),
        "deep_error": deep(b"500 Internal Server Error"),
    }[how]
    with serving_in_a_thread(handler) as url:
        connector = GitHubIssuesConnector("t0k3n", "acme/plant", api_url=url, timeout_s=5.0)
        try:
            with pytest.raises(ConnectorError) as failed:
                connector._request("GET", "/repos/acme/plant/issues/1")
        finally:
            connector.close_client()
    said = {"huge": "larger than", "bomb": "content-encoding", "deep_ok": "without JSON"}
    assert said.get(how, "500") in str(failed.value), failed.value
    assert sent[0] < 4 * MIRROR_MAX_BYTES


@pytest.mark.parametrize("reuse", [False, True])
def test_a_mirror_call_ends_at_its_deadline_while_the_head_trickles(reuse: bool) -> None:
    """A mirror's remote sending its answer's head a line every 0.1 s held the connector's
    call for as long as it liked (still waiting after 40 s at a 1 s timeout): httpx's sync
    timeouts are per read. ``send_bounded`` shuts the socket at its deadline, a connection
    kept from an earlier call included (``reuse``: the pool's sockets are named by no event,
    so no call leaves one there)."""
    from engine.http_answer import send_bounded

    calls = [0]

    async def first_fine_then_trickle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        calls[0] += 1
        if reuse and calls[0] == 1:
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            await writer.drain()
            await trickle_head(reader, writer)  # the next call on this connection, if any
            return
        await trickle_head(reader, writer)

    outcome: list[BaseException] = []
    with serving_in_a_thread(first_fine_then_trickle) as url, httpx.Client(timeout=5.0) as client:

        def call() -> None:
            try:
                if reuse:
                    send_bounded(client, client.build_request("GET", url), max_bytes=99, limit_s=5)
                send_bounded(client, client.build_request("GET", url), max_bytes=99, limit_s=1)
            except BaseException as exc:
                outcome.append(exc)

        calling = threading.Thread(target=call, daemon=True)
        started = time.monotonic()
        calling.start()
        calling.join(20.0)
        assert not calling.is_alive(), "still waiting for the head after 20 s"
    assert outcome and isinstance(outcome[0], httpx.ReadTimeout), outcome
    assert "within 1 s" in str(outcome[0])
    assert time.monotonic() - started < 15
    assert calls[0] == (2 if reuse else 1)  # a connection of its own each call


DEEP = b"[" * 100_000 + b"]" * 100_000
"""Valid JSON, 200 KB, nested past Python's stack (``json`` raises RecursionError)."""


def deep(status: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        head = b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        writer.write(head + b"content-length: %d\r\n\r\n%s" % (len(DEEP), DEEP))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    return handler


async def test_answers_nested_past_the_stack_are_api_errors() -> None:
    """An error answer (read by ``error_detail``) or a TUI call's answer nested 100,000 deep:
    a RecursionError escaped both, out of the CLI as a traceback, out of a TUI worker."""
    async with serving(deep(b"409 Conflict")) as url, review_client(url) as client:
        with pytest.raises(ApiError) as failed:
            await client.approve("T-0001")
    assert failed.value.status == 409
    async with serving(deep(b"200 OK")) as url:
        api = ControlRoomApi({"simulator": url}, timeout=5.0)
        try:
            with pytest.raises(ApiError, match="not JSON"):
                await api.scenario_status()
            with pytest.raises(ApiError, match="not JSON"):
                await api.health("simulator")
        finally:
            await api.aclose()


@pytest.mark.parametrize("how", ["huge", "trickle", "trickle_head", "bomb", "deep"])
def test_the_stacks_calls_to_its_children_are_bounded(how: str, tmp_path: Path) -> None:
    """``controlroom up`` asks its children's ports for /health and the scenario: whatever
    answers there may be a squatter. A huge, endless, compressed or too deep answer is a
    ``StackError`` or a transport failure, read to ``STACK_MAX_BYTES`` at most. An answer
    whose head never ends (a header line every 0.1 s) held ``health(timeout=0.5)`` for
    minutes: httpx's sync timeouts are per read, and the bound was on the body only."""
    sent = [0]
    handler = {
        "huge": huge(sent, 8 * STACK_MAX_BYTES),
        "trickle": trickle,
        "trickle_head": trickle_head,
        "bomb": bomb,
        "deep": deep(b"200 OK"),
    }[how]
    with serving_in_a_thread(handler) as url:
        port = int(url.rsplit(":", 1)[1])
        stack = Stack(ports={"simulator": port}, services=["simulator"], var=tmp_path, environ={})
        outcome: list[BaseException] = []

        def ask() -> None:
            try:
                stack.health("simulator", timeout=0.5)
            except BaseException as exc:
                outcome.append(exc)

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        asking.join(20.0)
        assert not asking.is_alive(), "health(timeout=0.5) still waiting after 20 s"
    with pytest.raises((StackError, httpx.HTTPError)) as failed:
        raise outcome[0] if outcome else AssertionError("answered")
    said = {"huge": "larger than", "bomb": "content-encoding", "deep": "no JSON"}.get(how, "")
    assert said in str(failed.value), failed.value
    assert sent[0] < 2 * STACK_MAX_BYTES + 4 * 1024 * 1024
