"""Publishes what the store queued for the bus, at least once, surviving crashes.

A ticket change and the messages announcing it (ticket snapshot, feedback) are committed
together (``TicketStore``'s ``bus_outbox``); this publisher sends the rows of one origin and
deletes a row only when the broker has acknowledged it (QoS 1 PUBACK). A process killed at any
point re-sends, after restart, whatever was not acknowledged — a repeat at worst, never a loss.
Repeats are harmless by design: ticket snapshots carry a ``revision``, feedback a
``feedback_id``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.bus.client import delivered
from engine.schemas import PlantMessage, WireError, decode
from engine.tickets.errors import Fault, StoreError
from engine.tickets.store import TicketStore

log = logging.getLogger("controlroom.tickets")


class OutboxPublisher:
    """Drains ``origin``'s rows of the store's bus outbox through ``bus`` on its own thread.

    ``before_publish(message)`` runs before each message is sent (e.g. write the tuning file a
    feedback message announces: consumers must find it when the message arrives); ``on_sent``
    is called with each message once the broker acknowledged it (for the JSONL run log)."""

    def __init__(
        self,
        store: TicketStore,
        bus: Any,
        origin: str,
        *,
        before_publish: Callable[[PlantMessage], None] | None = None,
        on_sent: Callable[[PlantMessage], None] | None = None,
        idle_s: float = 0.5,
    ) -> None:
        self.store = store
        self.bus = bus
        self.origin = origin
        self._before = before_publish
        self._on_sent = on_sent
        self._idle_s = idle_s
        self._inflight: dict[int, tuple[Any, PlantMessage]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.bad_rows = 0

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"outbox-{self.origin}", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what is queued and wait (up to ``timeout``) for the broker's acks."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self.drain_once()
        deadline = time.monotonic() + timeout
        while self._inflight and time.monotonic() < deadline:
            time.sleep(0.02)  # PUBACKs arrive on paho's thread; nothing to wait on but the flag
            self._collect()

    @property
    def pending(self) -> int:
        return len(self._inflight)

    def drain_once(self) -> int:
        """Publish queued rows not yet in flight; collect acknowledgements. Returns how many
        were published."""
        with self._lock:
            published = 0
            for seq, topic, payload in self.store.pending_outbox(self.origin, limit=500):
                if seq in self._inflight:
                    continue
                try:
                    message = decode(topic, payload)
                except WireError as exc:  # written by us, so this is a bug; never block the rest
                    log.error("outbox row %d on %s is invalid (%s); dropped", seq, topic, exc)
                    self.bad_rows += 1
                    self.store.ack_outbox([seq])
                    continue
                if self._before is not None:
                    self._before(message)
                try:
                    info = self.bus.publish(message, qos=1)
                except WireError as exc:  # refused by the bus (e.g. oversize): dead-lettered there
                    log.error(
                        "outbox row %d on %s refused by the bus (%s); dropped", seq, topic, exc
                    )
                    self.bad_rows += 1
                    self.store.ack_outbox([seq])
                    continue
                self._inflight[seq] = (info, message)
                published += 1
            self._collect()
            return published

    def _collect(self) -> None:
        done = [(seq, msg) for seq, (info, msg) in list(self._inflight.items()) if delivered(info)]
        if not done:
            return
        self.store.ack_outbox([seq for seq, _ in done])
        for seq, msg in done:
            self._inflight.pop(seq, None)
            self.sent += 1
            if self._on_sent is not None:
                try:
                    self._on_sent(msg)
                except Exception:
                    log.exception("outbox on_sent hook failed")

    def _loop(self) -> None:
        fault: Fault | None = None
        while not self._stop.is_set():
            try:
                self.drain_once()
                fault = None
            except StoreError as exc:  # the service's /health reports it; say it once here
                if exc.fault != fault:
                    log.warning("outbox %s: store unavailable (%s); will retry", self.origin, exc)
                fault = exc.fault
            except Exception:  # a hook failure: try again shortly
                log.exception("outbox %s: drain failed", self.origin)
            self._wake.wait(0.02 if self._inflight else self._idle_s)
            self._wake.clear()
