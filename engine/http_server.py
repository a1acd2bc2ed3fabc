"""The HTTP protocol every service serves with: uvicorn's h11 protocol with a bound on how long
a request's head may take.

uvicorn (0.54, h11) closes a connection idle *between* requests after ``timeout_keep_alive``,
but waits for ever for the first request's head, and for any head that has begun to arrive (its
keep-alive timer is cancelled by the first byte and not armed again). So a client that connects
and sends nothing, or a header line a minute, holds a socket and a file descriptor for as long
as it likes; a few thousand of them exhaust the service's descriptors (slowloris) and nobody,
health checks included, gets in. Here a request's head must be complete within
``HEAD_TIMEOUT_S`` of the connection or of the previous answer, and its body (bounded in size
by ``engine.services.http_limits``) within ``BODY_TIMEOUT_S`` of its head; otherwise the
connection is closed (and counted in ``HeadTimeouts``).

How many connections a service holds at once is bounded too (``MAX_CONNECTIONS``, uvicorn's
``limit_concurrency``): past it a request is answered 503 at once, before its body is read, so
what slow or many clients can make a service hold is at most ``MAX_CONNECTIONS`` request bodies.
A connection that arrives at the bound first closes the one that has waited longest for a
request (``Evictions``): idle connections cost the holder nothing to keep opening, so without
that, one local client reopening ``MAX_CONNECTIONS`` idle sockets as the head bound closed them
had every other client's request, health checks included, answered 503. A connection with a
request in flight is never closed for room; a client whose idle keep-alive connection was
closed opens another (httpx does so by itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64
"""Connections one service holds at once (idle keep-alive ones included): a control room has a
few TUIs, the CLI and the stack's health checks per service, each with one or two connections.
Past it, requests are answered 503 (body unread) until connections close (an idle one within
``HEAD_TIMEOUT_S``); the same bound caps the request bodies held at once (at most 1 MiB each).
The review service's TCP connections get three quarters of it, the operators' Unix socket the
rest (``engine.auth.peer.TCP_SHARE``): anyone on the host can reach a TCP port."""
BODY_TIMEOUT_S = 60.0
"""A 1 MiB body (the largest any service takes) at 20 KB/s: a slow link, not a trickle."""


class HeadTimeouts:
    """Connections closed for a head or a body that did not arrive in time (all services of a
    process)."""

    count = 0


class Evictions:
    """Idle connections closed to make room for a new one at the bound (all services of a
    process)."""

    count = 0


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is late, and the
    longest-idle connection when a new one arrives at the bound."""

    head_timeout_s = HEAD_TIMEOUT_S
    body_timeout_s = BODY_TIMEOUT_S
    _head_timer: asyncio.TimerHandle | None = None
    _in_body = False
    _idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(cast(asyncio.Transport, transport))
        self._idle_since = self.loop.time()
        self._arm_head_timer()
        limit = self.limit_concurrency  # uvicorn answers 503 from the limit-th connection on
        self.make_room(None if limit is None else limit - 1, lambda _: True)

    def waiting(self) -> bool:
        """Open, with no request begun or running: closing it loses nobody's request."""
        return (
            self.conn.their_state is h11.IDLE
            and (self.cycle is None or self.cycle.response_complete)
            and not self.transport.is_closing()
        )

    def make_room(self, most: int | None, among: Callable[[BoundedH11Protocol], bool]) -> bool:
        """Keep the connections ``among`` selects at ``most`` (this one counted) by closing
        the one of them that has waited longest for a request; False when all of them are busy
        (the new connection's request will be answered 503 by uvicorn, or refused by the
        caller). A closed connection stays in ``connections`` until the loop reports it lost,
        so each newcomer in the same loop turn closes a different one."""
        if most is None:
            return True
        peers = [c for c in self.connections if isinstance(c, BoundedH11Protocol) and among(c)]
        if sum(1 for c in peers if not c.transport.is_closing()) <= most:
            return True
        idle = [c for c in peers if c is not self and c.waiting()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since)
        Evictions.count += 1
        oldest._cancel_head_timer()
        oldest.transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        state = self.conn.their_state
        if state is h11.SEND_BODY and not self._in_body:  # a whole head: now its body
            self._in_body = True
            self._arm_head_timer(self.body_timeout_s)
        elif state is not h11.IDLE and state is not h11.SEND_BODY:  # all in: a request runs
            self._in_body = False
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._in_body = False
            self._idle_since = self.loop.time()
            self._arm_head_timer()  # the next request's head: bounded too

    def _arm_head_timer(self, seconds: float | None = None) -> None:
        self._cancel_head_timer()
        wait = self.head_timeout_s if seconds is None else seconds
        self._head_timer = self.loop.call_later(wait, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        late = self.conn.their_state in (h11.IDLE, h11.SEND_BODY)
        if late and not self.transport.is_closing():
            HeadTimeouts.count += 1
            self.transport.close()
