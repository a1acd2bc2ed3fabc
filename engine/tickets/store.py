"""The ticket store: the single source of truth for work orders, on SQLite (embedded, the
default) or PostgreSQL (``CONTROLROOM_DB=postgresql://…``, shared by services on several hosts).

Each method is one transaction in which the repository (``engine/tickets/repository.py``)
loads what the lifecycle (``engine/tickets/lifecycle.py``) needs, lets it decide, and writes the
decision together with everything that must follow it, so a crash can delay a consequence but
never lose it:

- the diagnosis id (the idempotency key, with the asset): a redelivered or replayed diagnosis
  finds it and changes nothing;
- the history lines;
- ``mirror_queue``: the external copy (GitHub issue, Salesforce Case) is behind, while a mirror
  is configured; drained by the ticket service's mirror worker (``engine/tickets/mirror.py``);
- ``bus_outbox``: the ticket snapshots and feedback to publish, tagged with the service that
  owns them; each service drains its own rows after a commit and again at start-up.

Tables and migration: ``engine/tickets/schema.py``; the two SQL dialects:
``engine/tickets/database.py``. Write transactions are serialised across processes, so the ticket
and review services (and replicas of them) can share one store.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.schemas import DiagnosisReport, ExternalRef, Ticket
from engine.tickets import lifecycle
from engine.tickets.database import Conn, TwoConnections, where
from engine.tickets.errors import (
    Fault,
    IllegalTransition,
    InvalidRequest,
    StoreError,
    StoreUnavailable,
    TicketError,
    TicketNotFound,
)
from engine.tickets.repository import (
    BUS_LIST_LIMIT,
    MIRROR_KEY,
    Gate,
    Recorded,
    Tx,
    normalize_id,
)
from engine.tickets.schema import create_or_migrate

__all__ = [
    "BUS_LIST_LIMIT",
    "EDITABLE",
    "Fault",
    "IllegalTransition",
    "InvalidRequest",
    "MirrorJob",
    "Recorded",
    "StoreError",
    "StoreUnavailable",
    "TicketError",
    "TicketNotFound",
    "TicketStore",
    "Tx",
    "normalize_id",
]

EDITABLE = lifecycle.EDITABLE
PARKED = 1e18
"""``due_at`` of a mirror job that waits for the ticket's next change (e.g. after a 422)."""


@dataclass(frozen=True)
class MirrorJob:
    ticket_id: str
    revision: int
    attempts: int
    create_attempted: bool
    last_error: str | None


class TicketStore(TwoConnections):
    """Thread-safe and multi-process-safe (``TwoConnections``: a read never waits behind a
    writer stuck on a busy database). Every public method is its own transaction;
    ``transaction()`` groups several (the review service adds its feedback and tuning to a
    review action's)."""

    def __init__(self, target: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.target: str | Path = target
        super().__init__(self.target, busy_timeout_s=busy_timeout_s)
        self.path: Path | None = None if self.db.postgres else self.db.path

    def _create(self, conn: Conn) -> None:
        create_or_migrate(self.db, conn)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One write transaction; everything done through ``tx`` commits or rolls back together."""
        with self.db.transaction() as conn:
            yield Tx(conn)

    @contextmanager
    def _snapshot(self) -> Iterator[Tx]:
        with self._reader.snapshot() as conn:
            yield Tx(conn)

    # ---- reads -------------------------------------------------------------------------------

    def get(self, ticket_id: str) -> Ticket:
        with self._snapshot() as tx:
            return tx.get(ticket_id)

    def tickets(
        self, state: str | None = None, asset: str | None = None, limit: int | None = None
    ) -> list[Ticket]:
        """Newest first. ``state`` may also be "active" (open or approved)."""
        clause, params = where(
            ("state <> 'closed'", ())
            if state == "active"
            else ("state = ?", (state,))
            if state
            else None,
            ("asset = ?", (asset,)) if asset else None,
        )
        sql = f"SELECT ticket_id FROM tickets{clause} ORDER BY num DESC"
        if limit:  # a parameter: one prepared statement for every limit
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._snapshot() as tx:
            return [tx.get(r[0]) for r in tx.conn.all(sql, params)]

    def counts(self) -> dict[str, int]:
        """Ticket counts by state plus queue depths, for /health."""
        with self._snapshot() as tx:
            c = tx.conn
            out = {s: 0 for s in ("open", "approved", "closed")}
            for state, n in c.all("SELECT state, COUNT(*) FROM tickets GROUP BY state"):
                out[state] = int(n)
            out["diagnoses"] = int(c.scalar("SELECT COUNT(*) FROM diagnoses"))
            out["mirror_pending"] = int(c.scalar("SELECT COUNT(*) FROM mirror_queue"))
            out["outbox_pending"] = int(c.scalar("SELECT COUNT(*) FROM bus_outbox"))
        return out

    def get_setting(self, key: str) -> Any | None:
        with self._snapshot() as tx:
            return tx.get_setting(key)

    def probe(self) -> None:
        """Prove the store can write now (a tiny write transaction); StoreError if not."""
        with self.transaction() as tx:
            tx.put_setting("probe", {"at": time.time()})

    # ---- writes (each its own transaction) ---------------------------------------------------

    def record_diagnosis(
        self,
        report: DiagnosisReport,
        *,
        origin: str | None = None,
        now: datetime | None = None,
        gate: Gate | None = None,
    ) -> Recorded:
        with self.transaction() as tx:
            rec = tx.record_diagnosis(report, now=now, gate=gate)
            if origin and rec.changed and rec.ticket is not None:
                for ticket in (*rec.also, rec.ticket):
                    tx.enqueue(ticket, origin)
            return rec

    def approve(self, ticket_id: str, who: str, note: str | None = None) -> Ticket:
        with self.transaction() as tx:
            return tx.approve(ticket_id, who, note)

    def edit(self, ticket_id: str, who: str, **fields: Any) -> Ticket:
        with self.transaction() as tx:
            return tx.edit(ticket_id, who, **fields)[0]

    def close(self, ticket_id: str, who: str, reason: str, note: str | None = None) -> Ticket:
        with self.transaction() as tx:
            return tx.close(ticket_id, who, reason, note)

    # ---- bus outbox --------------------------------------------------------------------------

    def pending_outbox(self, origin: str, limit: int = 100) -> list[tuple[int, str, str]]:
        """``(seq, topic, payload)`` rows not yet published by ``origin``, oldest first."""
        with self._snapshot() as tx:
            rows = tx.conn.all(
                "SELECT seq, topic, payload FROM bus_outbox WHERE origin = ? ORDER BY seq LIMIT ?",
                (origin, limit),
            )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def ack_outbox(self, seqs: list[int]) -> None:
        if seqs:
            with self.transaction() as tx:
                tx.conn.executemany("DELETE FROM bus_outbox WHERE seq = ?", [(s,) for s in seqs])

    # ---- mirror queue ------------------------------------------------------------------------

    def enable_mirror(self, system: str) -> int:
        """Mark ``system`` as the configured mirror. When it was not already, queue every
        active ticket (changes made while no mirror was configured queued nothing). Returns how
        many were queued."""
        with self.transaction() as tx:
            if tx.get_setting(MIRROR_KEY) == system:
                return 0
            tx.put_setting(MIRROR_KEY, system)
            rows = tx.conn.all("SELECT ticket_id, doc FROM tickets WHERE state <> 'closed'")
            for ticket_id, doc in rows:
                tx.queue_mirror(ticket_id, Ticket.model_validate_json(doc).revision)
            return len(rows)

    def disable_mirror(self) -> None:
        """No mirror is configured: forget the setting and the queue (nothing would drain it)."""
        with self.transaction() as tx:
            tx.conn.execute("DELETE FROM settings WHERE key = ?", (MIRROR_KEY,))
            tx.conn.execute("DELETE FROM mirror_queue")

    def due_mirror_jobs(self, now: float | None = None, limit: int = 20) -> list[MirrorJob]:
        now = time.time() if now is None else now
        with self._snapshot() as tx:
            rows = tx.conn.all(
                "SELECT ticket_id, revision, attempts, create_attempted, last_error "
                "FROM mirror_queue WHERE due_at <= ? ORDER BY due_at LIMIT ?",
                (now, limit),
            )
        return [MirrorJob(r[0], int(r[1]), int(r[2]), bool(r[3]), r[4]) for r in rows]

    def next_mirror_due(self) -> float | None:
        with self._snapshot() as tx:
            due = tx.conn.scalar("SELECT MIN(due_at) FROM mirror_queue")
        return None if due is None else float(due)

    def mirror_succeeded(
        self, job: MirrorJob, ref: ExternalRef, detail: str | None, origin: str | None
    ) -> Ticket:
        """Record the external copy as in sync with ``job.revision`` (the queue row goes only if
        no change arrived meanwhile). Storing the reference is a change like any other: the
        revision moves on and the snapshot is queued for ``origin``."""
        with self.transaction() as tx:
            tx.conn.execute(
                "DELETE FROM mirror_queue WHERE ticket_id = ? AND revision = ?",
                (job.ticket_id, job.revision),
            )
            tx.conn.execute(
                "UPDATE mirror_queue SET attempts = 0, create_attempted = 0, last_error = NULL "
                "WHERE ticket_id = ?",
                (job.ticket_id,),
            )
            return tx.set_external(job.ticket_id, ref, detail, origin)

    def mirror_failed(
        self,
        job: MirrorJob,
        error: str,
        retry_at: float | None,
        *,
        system: str,
        create_attempted: bool = False,
        origin: str | None = None,
    ) -> Ticket | None:
        """Record a failed sync: the error goes on the ticket (and its history, when it is a new
        error); ``retry_at`` None parks the job until the ticket next changes."""
        with self.transaction() as tx:
            tx.conn.execute(
                "UPDATE mirror_queue SET attempts = attempts + 1, due_at = ?, last_error = ?, "
                "create_attempted = CASE WHEN ? = 1 THEN 1 ELSE create_attempted END "
                "WHERE ticket_id = ?",
                (
                    PARKED if retry_at is None else retry_at,
                    error,
                    int(create_attempted),
                    job.ticket_id,
                ),
            )
            old = tx.get(job.ticket_id, history=False).external
            if old is not None and old.error == error:
                return None
            ref = (old or ExternalRef(system=system)).model_copy(update={"error": error})
            return tx.set_external(job.ticket_id, ref, f"{system}: {error}", origin)

    def drop_mirror_job(self, job: MirrorJob) -> None:
        with self.transaction() as tx:
            tx.conn.execute(
                "DELETE FROM mirror_queue WHERE ticket_id = ? AND revision = ?",
                (job.ticket_id, job.revision),
            )
