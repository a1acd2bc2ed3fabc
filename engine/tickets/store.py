"""The ticket store: the single source of truth for work orders, on SQLite (embedded, the
default) or PostgreSQL (``CONTROLROOM_DB=postgresql://…``, shared by services on several hosts).

A repository and an outbox: it loads what the lifecycle (``engine/tickets/lifecycle.py``) needs,
lets it decide, and writes the decision together with everything that must follow it, in one
transaction, so a crash can delay a consequence but never lose it:

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

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.paths import var_dir
from engine.schemas import (
    AuditEntry,
    DiagnosisReport,
    ExternalRef,
    Ticket,
    WireModel,
    topic_for,
    utc_now,
)
from engine.tickets import lifecycle
from engine.tickets.database import Conn, Database
from engine.tickets.errors import (
    Fault,
    IllegalTransition,
    InvalidRequest,
    StoreError,
    StoreUnavailable,
    TicketError,
    TicketNotFound,
)
from engine.tickets.lifecycle import Decision, Episode, Outcome, Stored
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
BUS_LIST_LIMIT = 200
"""A snapshot on the bus carries at most this many (most recent) audit entries, diagnosis ids and
alert ids, so a ticket that lives for months never outgrows the bus's payload limit; the store
and the API keep all of them."""
PARKED = 1e18
"""``due_at`` of a mirror job that waits for the ticket's next change (e.g. after a 422)."""
MIRROR_KEY = "mirror"
"""Setting naming the configured external system; no mirror jobs are queued without it."""


@dataclass(frozen=True)
class Recorded:
    """Result of :meth:`TicketStore.record_diagnosis`. Unpacks as ``(ticket, created)``. The
    ticket carries its last BUS_LIST_LIMIT history entries (``get`` returns all of them).
    ``also``: other tickets the same transaction changed (the provisional ticket a merge
    closed, a ticket that got a history line)."""

    ticket: Ticket
    created: bool
    outcome: Outcome
    also: tuple[Ticket, ...] = ()

    def __iter__(self) -> Iterator[Any]:
        return iter((self.ticket, self.created))

    @property
    def changed(self) -> bool:
        return self.outcome.changed

    @property
    def first_for_alert(self) -> bool:
        return self.outcome.first_for_alert


@dataclass(frozen=True)
class MirrorJob:
    ticket_id: str
    revision: int
    attempts: int
    create_attempted: bool
    last_error: str | None


def default_db_path() -> Path:
    return var_dir() / "controlroom.db"


def normalize_id(ticket_id: str) -> str:
    """``"12"`` -> ``"T-0012"``: operators may type the number alone."""
    text = ticket_id.strip()
    if text.isdigit():
        return f"T-{int(text):04d}"
    return text.upper() if text[:2].lower() == "t-" else text


class TicketStore:
    """Thread-safe and multi-process-safe: one connection for writes (writers queue on the
    database's own lock) and one for reads, so a read (``/health``, the review API) never waits
    behind a writer stuck on a busy database. Every public method is its own transaction;
    ``transaction()`` groups several (the review service adds its feedback and tuning to a
    review action's)."""

    def __init__(self, target: str | Path | None = None, *, busy_timeout_s: float = 10.0) -> None:
        self.target: str | Path = target if target is not None else default_db_path()
        self.db = Database(self.target, busy_timeout_s=busy_timeout_s)
        self.path: Path | None = None if self.db.postgres else self.db.path
        with self.db.transaction() as conn:
            create_or_migrate(self.db, conn)
        self._reader = Database(self.target, busy_timeout_s=busy_timeout_s)

    @property
    def location(self) -> str:
        """Where the store is, without a password (for logs and ``/health``)."""
        return self.db.where

    def close_db(self) -> None:
        self.db.close()
        self._reader.close()

    def reopen(self) -> None:
        """Fresh connections (after a server restart, or a corrupt file moved aside)."""
        self.db.reopen()
        self._reader.reopen()
        with self.db.transaction() as conn:
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
        where: list[str] = []
        params: list[Any] = []
        if state == "active":
            where.append("state <> 'closed'")
        elif state:
            where.append("state = ?")
            params.append(state)
        if asset:
            where.append("asset = ?")
            params.append(asset)
        sql = "SELECT ticket_id FROM tickets"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY num DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
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
        self, report: DiagnosisReport, *, origin: str | None = None, now: datetime | None = None
    ) -> Recorded:
        with self.transaction() as tx:
            rec = tx.record_diagnosis(report, now=now)
            if origin and rec.changed:
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


class Tx:
    """The repository inside one transaction (see :meth:`TicketStore.transaction`)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self._mirror: bool | None = None

    # ---- reads -------------------------------------------------------------------------------

    def _row(self, ticket_id: str) -> tuple[Any, ...]:
        row = self.conn.one(
            "SELECT ticket_id, human_edited, report, doc FROM tickets WHERE ticket_id = ?",
            (normalize_id(ticket_id),),
        )
        if row is None:
            raise TicketNotFound(f"no ticket {ticket_id!r}")
        return row

    def _history(self, ticket_id: str, limit: int | None) -> list[AuditEntry]:
        sql = "SELECT at, who, action, detail FROM audit WHERE ticket_id = ? ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self.conn.all(sql, (ticket_id,))
        return [
            AuditEntry(at=datetime.fromisoformat(r[0]), who=r[1], action=r[2], detail=r[3])
            for r in reversed(rows)
        ]

    def get(self, ticket_id: str, *, history: bool | int = True) -> Ticket:
        """The ticket with its audit trail: all of it, the last ``history`` entries (an int),
        or none (False: changes are computed without it, so a ticket with thousands of entries
        costs no more to update than a new one)."""
        row = self._row(ticket_id)
        ticket = Ticket.model_validate_json(row[3])
        if history is not False:
            limit = None if history is True else int(history)
            ticket.history = self._history(row[0], limit)
        return ticket

    def stored(self, ticket_id: str) -> Stored:
        row = self._row(ticket_id)
        return Stored(
            ticket=Ticket.model_validate_json(row[3]),
            edited=frozenset(json.loads(row[1])),
            report=DiagnosisReport.model_validate_json(row[2]) if row[2] else None,
        )

    def get_setting(self, key: str) -> Any | None:
        value = self.conn.scalar("SELECT value FROM settings WHERE key = ?", (key,))
        return None if value is None else json.loads(value)

    # ---- writes ------------------------------------------------------------------------------

    def put_setting(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

    def enqueue(self, message: WireModel, origin: str) -> None:
        """Queue a message for ``origin`` to publish after commit."""
        if isinstance(message, Ticket):
            message = message.model_copy(
                update={
                    name: getattr(message, name)[-BUS_LIST_LIMIT:]
                    for name in ("history", "diagnosis_ids", "alert_ids")
                }
            )
        if getattr(message, "wall_time", 0) is None:
            message = message.model_copy(update={"wall_time": time.time()})
        self.conn.execute(
            "INSERT INTO bus_outbox(origin, topic, payload, created) VALUES (?, ?, ?, ?)",
            (origin, topic_for(message), message.to_json(), time.time()),
        )

    def queue_mirror(self, ticket_id: str, revision: int) -> None:
        """Queue a sync of the external copy, if a mirror is configured."""
        if self._mirror is None:
            self._mirror = self.get_setting(MIRROR_KEY) is not None
        if self._mirror:
            self.conn.execute(
                "INSERT INTO mirror_queue(ticket_id, revision, due_at) VALUES (?, ?, ?) "
                "ON CONFLICT(ticket_id) DO UPDATE SET revision = excluded.revision, "
                "due_at = excluded.due_at",
                (ticket_id, revision, time.time()),
            )

    def apply(self, decision: Decision, now: datetime) -> None:
        """Write what the lifecycle decided. Refuses a change that does not move the ticket's
        revision on by one (a bug: consumers would drop the change as a repeat)."""
        for saved in decision.saves:
            t = saved.ticket
            if not saved.created:
                before = Ticket.model_validate_json(self._row(t.ticket_id)[3]).revision
                if t.revision != before + 1:
                    raise RuntimeError(
                        f"{t.ticket_id}: a change must bump the revision {before} -> "
                        f"{before + 1}, not {t.revision}"
                    )
            self.conn.execute(
                "UPDATE tickets SET state = ?, root_cause = ?, human_edited = ?, report = ?, "
                "doc = ? WHERE ticket_id = ?",
                (
                    t.state,
                    t.root_cause,
                    json.dumps(sorted(saved.edited)),
                    saved.report.to_json() if saved.report is not None else None,
                    t.model_copy(update={"history": []}).to_json(),
                    t.ticket_id,
                ),
            )
            if saved.mirror:
                self.queue_mirror(t.ticket_id, t.revision)
        for e in decision.entries:
            self.conn.execute(
                "INSERT INTO audit(ticket_id, at, who, action, detail) VALUES (?, ?, ?, ?, ?)",
                (e.ticket_id, now.isoformat(), e.who[:128], e.action.value, e.detail[:500]),
            )

    def _new_ticket_id(self, report: DiagnosisReport) -> str:
        placeholder = f"pending-{uuid.uuid4().hex}"
        num = self.conn.scalar(
            "INSERT INTO tickets(ticket_id, asset, root_cause, state, doc) "
            "VALUES (?, ?, ?, 'open', '{}') RETURNING num",
            (placeholder, report.asset, report.root_cause),
        )
        ticket_id = f"T-{int(num):04d}"
        self.conn.execute("UPDATE tickets SET ticket_id = ? WHERE num = ?", (ticket_id, num))
        return ticket_id

    def record_diagnosis(self, report: DiagnosisReport, now: datetime | None = None) -> Recorded:
        now = now or utc_now()
        key = (report.asset, report.diagnosis_id)
        seen = self.conn.scalar(
            "SELECT ticket_id FROM diagnoses WHERE asset = ? AND diagnosis_id = ?", key
        )
        if seen is not None:
            return Recorded(self.get(seen, history=BUS_LIST_LIMIT), False, Outcome.DUPLICATE)
        episode = None
        alert = (report.asset, report.alert_id)
        row = self.conn.one(
            "SELECT ticket_id FROM diagnoses WHERE asset = ? AND alert_id = ? "
            "ORDER BY seq DESC LIMIT 1",
            alert,
        )
        if row is not None:
            finals = self.conn.scalar(
                "SELECT COUNT(*) FROM diagnoses WHERE asset = ? AND alert_id = ? "
                "AND stage = 'final'",
                alert,
            )
            episode = Episode(self.stored(row[0]), settled=int(finals) > 0)
        tracked_id = self.conn.scalar(
            "SELECT ticket_id FROM tickets WHERE asset = ? AND root_cause = ? "
            "AND state <> 'closed'",
            (report.asset, report.root_cause),
        )
        decision = lifecycle.record(
            report,
            episode=episode,
            tracked=self.stored(tracked_id) if tracked_id is not None else None,
            new_id=lambda: self._new_ticket_id(report),
            now=now,
        )
        self.apply(decision, now)
        self.conn.execute(
            "INSERT INTO diagnoses(asset, diagnosis_id, ticket_id, alert_id, stage, root_cause, "
            "outcome, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                report.asset,
                report.diagnosis_id,
                decision.ticket_id,
                report.alert_id,
                report.stage,
                report.root_cause,
                decision.outcome.value,
                time.time(),
            ),
        )
        also = tuple(
            self.get(s.ticket.ticket_id, history=BUS_LIST_LIMIT)
            for s in decision.saves
            if s.ticket.ticket_id != decision.ticket_id
        )
        return Recorded(
            self.get(decision.ticket_id, history=BUS_LIST_LIMIT),
            decision.outcome is Outcome.CREATED,
            decision.outcome,
            also,
        )

    def _decide(self, ticket_id: str, command: lifecycle.Command) -> tuple[Ticket, Decision]:
        now = utc_now()
        decision = lifecycle.decide(command, self.stored(ticket_id), now)
        self.apply(decision, now)
        return self.get(decision.ticket_id), decision

    def approve(self, ticket_id: str, who: str, note: str | None = None) -> Ticket:
        return self._decide(ticket_id, lifecycle.Approve(who, note))[0]

    def edit(self, ticket_id: str, who: str, **fields: Any) -> tuple[Ticket, dict[str, str]]:
        """Apply the given fields; returns the ticket and the fields that actually changed
        (name -> new value as text). Unchanged values are not an error and record nothing."""
        ticket, decision = self._decide(ticket_id, lifecycle.Edit.of(who, fields))
        return ticket, dict(decision.changes)

    def close(self, ticket_id: str, who: str, reason: str, note: str | None = None) -> Ticket:
        return self._decide(ticket_id, lifecycle.Close(who, reason, note))[0]

    def set_external(
        self, ticket_id: str, ref: ExternalRef, detail: str | None, origin: str | None
    ) -> Ticket:
        """Store the external copy's id/url/error (no new sync: the mirror's own bookkeeping is
        not a content change) and queue the snapshot for ``origin``."""
        ticket = self._decide(ticket_id, lifecycle.MirrorSynced(ref, detail))[0]
        if origin:
            self.enqueue(ticket, origin)
        return ticket
