"""Clients that connect and then take their time: a connection that sends nothing, or a request
head a line at a time, held a socket and a file descriptor of a service for ever (uvicorn bounds
only the wait *between* requests), so a few thousand of them shut everyone out. Each request
head now has ``head_timeout_s`` to arrive (``engine/http_server.py``); a real review service
(TCP port and operators' socket) on a real uvicorn."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from engine import http_server
from engine.auth.peer import TCP_SHARE, PeerCredProtocol
from engine.auth.socket_path import ShortPath
from engine.http_server import HeadTimeouts

HEAD_S = 1.0


@pytest.fixture
def review(make_review: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    # 10 s in service; raising=False: the test runs (and fails) against a protocol without it
    monkeypatch.setattr(PeerCredProtocol, "head_timeout_s", HEAD_S, raising=False)
    monkeypatch.setattr(PeerCredProtocol, "body_timeout_s", HEAD_S, raising=False)
    return make_review()


def _connect(review: Any, via: str) -> socket.socket:
    if via == "tcp":
        return socket.create_connection(("127.0.0.1", review.service.port), timeout=10)
    short = ShortPath(Path(review.socket))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(short.text)
    short.close()
    return s


def _closed_after(s: socket.socket, trickle: bool, body: bool = False) -> float:
    """Seconds until the service closed ``s`` (sending a header line every 0.2 s if
    ``trickle``, or a whole head and then a body byte every 0.2 s if ``body``); fails past
    8 s."""
    started = time.monotonic()
    s.settimeout(0.2)
    if body:
        s.sendall(
            b"POST /alarms/ack HTTP/1.1\r\nHost: review\r\ncontent-type: application/json\r\n"
            b"content-length: 100000\r\n\r\n{"
        )
    elif trickle:
        s.sendall(b"GET /whoami HTTP/1.1\r\nHost: review\r\n")
    while time.monotonic() - started < 8.0:
        try:
            if s.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            if trickle:
                try:
                    s.sendall(b" " if body else b"X-Slow: 1\r\n")
                except OSError:
                    return time.monotonic() - started
        except OSError:
            return time.monotonic() - started
    pytest.fail("the connection is still open after 8 s")


def _answer(s: socket.socket) -> bytes:
    """One whole answer (head and ``content-length`` body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize("via", ["tcp", "unix"])
@pytest.mark.parametrize("how", ["silent", "trickling_head", "trickling_body"])
def test_a_request_that_does_not_come_is_cut_off(review: Any, via: str, how: str) -> None:
    before = HeadTimeouts.count
    with _connect(review, via) as s:
        took = _closed_after(s, how == "trickling_head", body=how == "trickling_body")
    assert HEAD_S * 0.9 <= took < HEAD_S + 3.0, took
    assert HeadTimeouts.count == before + 1


def test_a_patient_keep_alive_client_is_still_served(review: Any) -> None:
    """Requests that arrive whole, on one connection, a little apart, are all answered."""
    with _connect(review, "unix") as s:
        for _ in range(3):
            s.sendall(b"GET /whoami HTTP/1.1\r\nHost: review\r\n\r\n")
            answer = _answer(s)
            assert answer.startswith(b"HTTP/1.1 200 ") and b'"unix_socket"' in answer, answer
            time.sleep(HEAD_S * 0.6)  # under the keep-alive timeout (5 s) and the head bound


def _busy(review: Any, via: str) -> tuple[socket.socket, bytes]:
    """A connection with a request running: a whole head, then a body that has not all come,
    and what the service first said. The head asks ``100-continue``, so the service's
    "100 Continue" says the request is running (its body being read); a refused connection
    gets its 503 instead. On TCP with an operator's token: without one the service answers 401
    before reading the body."""
    auth = b""
    if via == "tcp":
        if not hasattr(review, "ana_token"):
            review.ana_token = review.service.tokens.add("ana")[0]
        auth = b"authorization: Bearer " + review.ana_token.encode() + b"\r\n"
    s = _connect(review, via)
    said = b""
    with contextlib.suppress(OSError):
        s.sendall(
            b"POST /alarms/ack HTTP/1.1\r\nHost: review\r\ncontent-type: application/json"
            b"\r\n" + auth + b"expect: 100-continue\r\ncontent-length: 1000\r\n\r\n"
        )
        while b"\r\n\r\n" not in said:
            chunk = s.recv(4096)
            if not chunk:
                break
            said += chunk
        if said.startswith(b"HTTP/1.1 100 "):
            s.sendall(b"{")
    return s, said


def _closed_by_service(s: socket.socket) -> bool:
    s.settimeout(5.0)
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_connections_past_the_bound_are_answered_503_until_one_closes(
    make_review: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many clients at once, each with a request running: past ``MAX_CONNECTIONS`` a request
    gets a 503 straight away (its body unread), and the service serves again as soon as a
    connection closes."""
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 3)
    review = make_review()
    ask = b"GET /health HTTP/1.1\r\nHost: review\r\n\r\n"
    held = [_busy(review, via)[0] for via in ("tcp", "unix")]
    try:
        with _connect(review, "tcp") as third:
            third.sendall(
                b"POST /alarms/ack HTTP/1.1\r\nHost: review\r\ncontent-type: application/json"
                b"\r\ncontent-length: 1000000\r\n\r\n"
            )
            assert _answer(third).startswith(b"HTTP/1.1 503 ")
        held.pop().close()
        deadline = time.monotonic() + 10.0
        while True:  # the service sees the close when its loop next runs
            with _connect(review, "tcp") as again:
                again.sendall(ask)
                if _answer(again).startswith(b"HTTP/1.1 200 "):
                    break
            assert time.monotonic() < deadline, "still refused 10 s after a connection closed"
    finally:
        for s in held:
            s.close()


@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_idle_connections_make_room_for_a_new_one(
    make_review: Any, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    """One local client opened ``MAX_CONNECTIONS`` idle connections and reopened them as the
    head bound closed them: every other client's request, health checks included, was answered
    503 for as long as it liked. At the bound a new connection now closes the one that has
    waited longest for a request; a connection with a request running is never closed."""
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 6)
    review = make_review()
    busy, said = _busy(review, via)
    assert said.startswith(b"HTTP/1.1 100 "), said
    flood = [_connect(review, via) for _ in range(http_server.MAX_CONNECTIONS + 2)]
    before = review.service.body_limit.snapshot()["idle_closed_for_room"]
    try:
        with _connect(review, via) as client:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: review\r\n\r\n")
            assert _answer(client).startswith(b"HTTP/1.1 200 ")
        assert _closed_by_service(flood[0]), "the longest-idle connection is the one closed"
        evicted = review.service.body_limit.snapshot()["idle_closed_for_room"] - before
        assert evicted >= 1
        busy.sendall(b"}" + b" " * 998)  # the running request was left alone: it is answered
        status = _answer(busy).split(b"\r\n")[0]
        assert status.startswith(b"HTTP/1.1 ") and b" 503 " not in status, status
    finally:
        busy.close()
        for s in flood:
            s.close()


def test_tcp_clients_cannot_take_the_operators_socket_s_connections(
    make_review: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One TCP client (anyone on the host who can reach the loopback port, not only the
    operators' group) held every one of the ``MAX_CONNECTIONS`` with requests it kept running
    (a body a byte at a time). Each operator's call on the Unix socket was then answered 503:
    the operators were starved by a client that cannot even authenticate. TCP connections now
    get at most ``TCP_SHARE`` of them; past it a TCP connection is refused when every TCP one
    is busy, and the operators' socket keeps its share."""
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 6)
    review = make_review()
    ask = b"GET /health HTTP/1.1\r\nHost: review\r\n\r\n"
    flood: list[socket.socket] = []
    try:
        said = []
        for _ in range(http_server.MAX_CONNECTIONS + 4):  # busy TCP connections
            s, first = _busy(review, "tcp")
            flood.append(s)
            said.append(first.split(b"\r\n")[0])
        share = int(http_server.MAX_CONNECTIONS * TCP_SHARE)
        assert said == [b"HTTP/1.1 100 Continue"] * share + [
            b"HTTP/1.1 503 Service Unavailable"
        ] * (len(said) - share), "TCP ones past their share refused"
        for _ in range(2):
            with _connect(review, "unix") as operator:
                operator.sendall(ask)
                assert _answer(operator).startswith(b"HTTP/1.1 200 ")
    finally:
        for s in flood:
            s.close()
