"""The review client's discovery (``/health`` names the operators' socket) against hostile
answers on a real loopback port: whoever holds the review port while the service is down
answers ``/health``. A trickle or a huge answer must not hang or bloat the TUI and the CLI,
and a socket that is not the operator's to trust must not get their actions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hostile_http import trickle

from engine.review_client import DISCOVERY_S, HEALTH_MAX_BYTES, ApiError, Endpoint, ReviewClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _request(reader: asyncio.StreamReader) -> None:
    while (await reader.readline()) not in (b"\r\n", b""):
        pass


def _answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


@asynccontextmanager
async def health(handler: Handler) -> AsyncIterator[ReviewClient]:
    """A client of a loopback port whose every answer comes from ``handler``."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = ReviewClient(Endpoint(f"http://127.0.0.1:{port}"), timeout=10.0)
    try:
        yield client
    finally:
        await client.aclose()
        server.close()


def naming(path: Path) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(_answer(json.dumps({"auth": {"socket": str(path)}}).encode()))
        await writer.drain()
        writer.close()

    return handler


async def test_a_trickling_health_is_a_timeout_not_a_hang() -> None:
    async with health(trickle) as client:
        with pytest.raises(ApiError) as failed:
            await asyncio.wait_for(client.whoami(), DISCOVERY_S + 5.0)
    assert failed.value.status is None
    assert "timed out" in failed.value.detail and "/health" in failed.value.detail


async def test_a_huge_health_is_refused_at_its_bound() -> None:
    sent = [0]

    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        size = 64 * HEALTH_MAX_BYTES
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        with contextlib.suppress(ConnectionError):
            for _ in range(64):
                writer.write(b" " * HEALTH_MAX_BYTES)
                await writer.drain()
                sent[0] += HEALTH_MAX_BYTES
        writer.close()

    async with health(huge) as client:
        with pytest.raises(ApiError) as failed:
            await client.whoami()
    assert f"more than {HEALTH_MAX_BYTES} bytes" in failed.value.detail


async def _evil_socket(path: Path, heard: list[bytes]) -> asyncio.Server:
    async def evil(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heard.append(await reader.read(4096))
        body = json.dumps({"operator": "mallory-listens", "via": "unix_socket"}).encode()
        writer.write(_answer(body))
        await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(evil, str(path))


@pytest.mark.parametrize("how", ["world_writable_dir", "symlink", "other_owner"])
async def test_a_socket_not_the_operators_to_trust_gets_nothing(tmp_path: Path, how: str) -> None:
    """A squatter's /health names a socket the squatter controls: the client refuses it by
    name, and the socket hears nothing (it would get every approve, close and shelve, and the
    operator's uid with them)."""
    if how == "other_owner" and os.geteuid() != 0:
        pytest.skip("giving a socket to another uid needs root")
    drop = tmp_path / "drop"
    drop.mkdir()
    heard: list[bytes] = []
    server = await _evil_socket(drop / "evil.sock", heard)
    named = drop / "evil.sock"
    if how == "world_writable_dir":
        drop.chmod(0o1777)  # like /tmp: anyone may put a socket here
    elif how == "symlink":
        named = tmp_path / "review.sock"
        named.symlink_to(drop / "evil.sock")
    else:
        os.chown(drop / "evil.sock", 65534, 65534)
        os.chown(drop, 65534, 65534)
    try:
        async with health(naming(named)) as client:
            with pytest.raises(ApiError) as refused:
                await client.whoami()
    finally:
        server.close()
    assert f"names the socket '{named}'" in refused.value.detail, refused.value.detail
    assert heard == []


async def test_the_operators_own_socket_is_used(tmp_path: Path) -> None:
    heard: list[bytes] = []
    server = await _evil_socket(tmp_path / "review.sock", heard)
    try:
        async with health(naming(tmp_path / "review.sock")) as client:
            assert (await client.whoami()).operator == "mallory-listens"
            assert client.endpoint.socket == tmp_path / "review.sock"
    finally:
        server.close()
    assert heard and heard[0].startswith(b"GET /whoami ")


@pytest.mark.parametrize("names", ["nothing", "a_missing_socket", "not_json", "deep_json"])
async def test_a_squatter_naming_no_socket_gets_no_call(tmp_path: Path, names: str) -> None:
    """Whoever holds the review port while the service is down answers /health without a
    socket (or one not on this host) and then every call over TCP: the client must not take
    its forged tickets, nor send it the operator's approvals. (The real service refuses every
    call without an identity, so plain TCP without a token never served anyone.)"""
    heard: list[bytes] = []
    health_body = {
        "nothing": b'{"status": "ok"}',
        "a_missing_socket": json.dumps({"auth": {"socket": str(tmp_path / "gone.sock")}}).encode(),
        "not_json": b"<html>ok</html>",
        "deep_json": b"[" * 100_000 + b"]" * 100_000,  # past Python's stack, under the bound
    }[names]

    async def squatter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        await _request(reader)
        if line.startswith(b"GET /health "):
            writer.write(_answer(health_body))
        else:
            heard.append(line)
            writer.write(_answer(json.dumps({"operator": "mallory", "via": "token"}).encode()))
        await writer.drain()
        writer.close()

    async with health(squatter) as client:
        for _ in range(2):
            with pytest.raises(ApiError) as refused:
                await client.whoami()
            assert "cannot tell who you are" in refused.value.detail, refused.value.detail
    assert heard == [], "no call reached the squatter"


@pytest.mark.parametrize("mode", [0o775, 0o1777])
def test_the_service_binds_no_socket_where_others_could_replace_it(
    tmp_path: Path, mode: int
) -> None:
    """The service holds the rule its clients hold: in a directory others can write to, any of
    them could put their own socket in its place (and get the operators' actions), so it does
    not bind there at all and says why, naming the fix."""
    from engine.auth.peer import bind_unix

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    with pytest.raises(OSError) as refused:
        bind_unix(shared / "review.sock")
    assert "others can write to" in str(refused.value) and f"chmod go-w {shared}" in str(
        refused.value
    )
    assert not (shared / "review.sock").exists()


def test_var_is_made_safe_for_the_socket_whatever_the_umask(tmp_path: Path) -> None:
    """umask 002 (many desktops) made var/ group-writable: the service's own socket was then
    refused by every client on the host."""
    from engine.auth.peer import bind_unix
    from engine.paths import var_dir

    old = os.umask(0o002)
    try:
        var = var_dir({"CONTROLROOM_VAR": str(tmp_path / "state" / "var")})
    finally:
        os.umask(old)
    assert var.stat().st_mode & 0o777 == 0o755
    bind_unix(var / "review.sock").close()
