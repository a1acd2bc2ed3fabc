"""The HTTP protocol every service serves with: uvicorn's h11 protocol with a bound on how long
a request's head may take.

uvicorn (0.54, h11) closes a connection idle *between* requests after ``timeout_keep_alive``,
but waits for ever for the first request's head, and for any head that has begun to arrive (its
keep-alive timer is cancelled by the first byte and not armed again). So a client that connects
and sends nothing, or a header line a minute, holds a socket and a file descriptor for as long
as it likes; a few thousand of them exhaust the service's descriptors (slowloris) and nobody,
health checks included, gets in. Here a request's head must be complete within
``HEAD_TIMEOUT_S`` of the connection or of the previous answer; otherwise the connection is
closed (and counted in ``HeadTimeouts``).
"""

from __future__ import annotations

import asyncio
from typing import cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_S = 10.0


class HeadTimeouts:
    """Connections closed for a head that did not arrive in time (all services of a process)."""

    count = 0


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is late."""

    head_timeout_s = HEAD_TIMEOUT_S
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(cast(asyncio.Transport, transport))
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a whole head came in: a request runs
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_head_timer()  # the next request's head: bounded too

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            HeadTimeouts.count += 1
            self.transport.close()
