"""Keeps the copies (GitHub issues or Salesforce Cases) in step with the store, never blocking it.

Every change to a ticket queues a row in the store's ``mirror_queue`` in the same transaction as
the change (see ``engine/tickets/store.py``). :class:`Mirror` drains due rows one at a time: a
ticket with no external copy is created, a closed one is closed, any other change is an update
that sends the whole current state (so repeating it is harmless and many edits coalesce into one
call). Failures stay in the queue with their next due time and the error is shown on the ticket;
a rate limit or configuration error pauses the whole mirror. Local tickets are never held back by
any of this: the queue is only read here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.schemas import Ticket
from engine.tickets.connectors import ConnectorError, TicketConnector
from engine.tickets.store import MirrorJob, TicketStore

MAX_BACKOFF_S = 900.0


class Mirror:
    """Single-threaded driver of one connector. Every stored result (a new or refreshed
    reference, a new error) is a change of the ticket: its snapshot is queued in the store's bus
    outbox under ``origin`` in the same transaction, and ``notify`` is called so the owner
    publishes it; ``log`` gets one dict per event for the service's JSONL log.

    Constructing one marks its system as the store's configured mirror (tickets changed while
    none was configured are queued then)."""

    def __init__(
        self,
        store: TicketStore,
        connector: TicketConnector,
        *,
        origin: str | None = None,
        notify: Callable[[], None] | None = None,
        log: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.connector = connector
        self.origin = origin
        self._notify = notify or (lambda: None)
        self._log = log or (lambda event: None)
        self._clock = clock
        self.paused_until = 0.0
        self.last_error: str | None = None
        self.counters = {"created": 0, "updated": 0, "closed": 0, "failed": 0, "skipped": 0}
        store.enable_mirror(connector.system)

    def status(self) -> dict[str, Any]:
        now = self._clock()
        return {
            **self.connector.describe(),
            "paused_for_s": round(max(self.paused_until - now, 0.0), 1),
            "last_error": self.last_error,
            **self.counters,
        }

    def next_wakeup(self, idle_s: float = 1.0) -> float:
        """Seconds until there may be work (never more than ``idle_s``: other processes queue
        jobs too)."""
        now = self._clock()
        if self.paused_until > now:
            return min(self.paused_until - now, idle_s)
        due = self.store.next_mirror_due()
        if due is None:
            return idle_s
        return min(max(due - now, 0.0), idle_s)

    def run_once(self, limit: int = 20) -> int:
        """Process the jobs that are due now; returns how many were attempted."""
        done = 0
        for job in self.store.due_mirror_jobs(self._clock(), limit):
            if self.paused_until > self._clock():
                break
            self._sync(job)
            done += 1
        return done

    def _sync(self, job: MirrorJob) -> None:
        ticket = self.store.get(job.ticket_id)
        system = self.connector.system
        ref = ticket.external if ticket.external and ticket.external.system == system else None
        has_copy = ref is not None and ref.id is not None
        op = "create" if not has_copy else ("close" if ticket.state == "closed" else "update")
        if op == "create" and ticket.state == "closed":
            # Closed before it was ever mirrored: nobody needs a closed issue for it.
            self.store.drop_mirror_job(job)
            self.counters["skipped"] += 1
            return
        try:
            if op == "create":
                new_ref = self.connector.create_case(ticket, may_exist=job.create_attempted)
            elif ref is None:  # has_copy said otherwise: a bug, not the remote's fault
                raise AssertionError(f"{ticket.ticket_id}: {op} without an external reference")
            elif op == "close":
                new_ref = self.connector.close(ticket, ref)
            else:
                new_ref = self.connector.update(ticket, ref)
        except ConnectorError as exc:
            self._failed(job, ticket, op, exc)
            return
        detail = None
        item = self.connector.item
        if op == "create":
            detail = f"{system} {item} #{new_ref.id} created: {new_ref.url}"
        elif op == "close":
            detail = f"{system} {item} #{new_ref.id} closed"
        self.store.mirror_succeeded(job, new_ref, detail, self.origin)
        self.counters["created" if op == "create" else op + "d"] += 1
        self.last_error = None
        self._log(
            {
                "event": f"mirror_{op}",
                "ticket_id": job.ticket_id,
                "system": system,
                "external_id": new_ref.id,
                "url": new_ref.url,
            }
        )
        self._notify()

    def _failed(self, job: MirrorJob, ticket: Ticket, op: str, exc: ConnectorError) -> None:
        now = self._clock()
        retry_after = exc.retry_after
        if retry_after is not None and exc.kind in ("network", "server"):
            retry_after = min(retry_after * 2 ** min(job.attempts, 5), MAX_BACKOFF_S)
        retry_at = None if retry_after is None else now + retry_after
        if exc.scope == "global" and retry_at is not None:
            self.paused_until = max(self.paused_until, retry_at)
        self.counters["failed"] += 1
        self.last_error = exc.message
        updated = self.store.mirror_failed(
            job,
            exc.message,
            retry_at,
            system=self.connector.system,
            create_attempted=op == "create" and exc.ambiguous,
            origin=self.origin,
        )
        self._log(
            {
                "event": "mirror_error",
                "ticket_id": ticket.ticket_id,
                "op": op,
                "kind": exc.kind,
                "error": exc.message,
                "retry_in_s": retry_after,
                "scope": exc.scope,
            }
        )
        if updated is not None:
            self._notify()
