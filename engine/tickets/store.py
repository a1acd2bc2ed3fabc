"""The ticket store: SQLite in WAL mode, the single source of truth for work orders.

Why SQLite: one file that survives restarts, transactions that make "store the ticket and the
diagnosis id that caused it" atomic, and WAL so the ticket service (writes from the bus) and the
review service (writes from HTTP) can share it across processes with a busy timeout.

Everything that must happen *because* a ticket changed is written in the same transaction as the
change, so a crash can delay it but never lose it:

- ``diagnoses``: every diagnosis id ever recorded (the idempotency key): a redelivered or replayed
  diagnosis finds its id and changes nothing.
- ``audit``: who did what, when, to which ticket.
- ``mirror_queue``: tickets whose external copy (GitHub issue) is behind; drained by the ticket
  service's mirror worker (``engine/tickets/mirror.py``).
- ``bus_outbox``: messages (ticket snapshots, feedback) still to publish, tagged with the service
  that owns them; each service drains its own rows after a commit and again at start-up.
- ``settings``: small JSON documents such as the feedback loop's tuning.

One open ticket per asset and root cause is enforced by a partial unique index, not only by code.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.agents.ticket import AGENT, fold_diagnosis, labels_for, new_ticket, revise_cause
from engine.paths import var_dir
from engine.schemas import (
    CLOSE_REASONS,
    SEVERITIES,
    AuditEntry,
    DiagnosisReport,
    ExternalRef,
    Ticket,
    WireModel,
    topic_for,
    utc_now,
)

SCHEMA_VERSION = 1
BUS_LIST_LIMIT = 200
"""A snapshot on the bus carries at most this many (most recent) audit entries, diagnosis ids and
alert ids, so a ticket that lives for months never outgrows the bus's payload limit; the store
and the API keep all of them."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    num          INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id    TEXT NOT NULL UNIQUE,
    asset        TEXT NOT NULL,
    root_cause   TEXT NOT NULL,
    state        TEXT NOT NULL,
    human_edited TEXT NOT NULL DEFAULT '[]',
    doc          TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_ticket_per_cause
    ON tickets(asset, root_cause) WHERE state != 'closed';
CREATE TABLE IF NOT EXISTS diagnoses (
    diagnosis_id TEXT PRIMARY KEY,
    ticket_id    TEXT NOT NULL,
    alert_id     TEXT NOT NULL,
    root_cause   TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    stored_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS diagnoses_by_alert ON diagnoses(alert_id);
CREATE TABLE IF NOT EXISTS audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id TEXT NOT NULL,
    at        TEXT NOT NULL,
    who       TEXT NOT NULL,
    action    TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_ticket ON audit(ticket_id, id);
CREATE TABLE IF NOT EXISTS mirror_queue (
    ticket_id        TEXT PRIMARY KEY,
    revision         INTEGER NOT NULL,
    due_at           REAL NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    create_attempted INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT
);
CREATE TABLE IF NOT EXISTS bus_outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    origin  TEXT NOT NULL,
    topic   TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

EDITABLE = ("title", "body", "labels", "severity")
PARKED = 1e18
"""``due_at`` of a mirror job that waits for the ticket's next change (e.g. after a 422)."""


class TicketError(Exception):
    """Base of the store's refusals; the message is fit for an operator."""


class TicketNotFound(TicketError, LookupError):
    pass


class IllegalTransition(TicketError):
    """The ticket's state does not allow the action (e.g. approving a closed ticket)."""


class StoreUnavailable(TicketError, ValueError):
    """The store file cannot be opened or used (path, permissions, file system)."""


class InvalidRequest(TicketError, ValueError):
    """The request itself is wrong (unknown close reason, nothing to edit, bad severity)."""


@dataclass(frozen=True)
class Recorded:
    """Result of :meth:`TicketStore.record_diagnosis`. Unpacks as ``(ticket, created)``. The
    ticket carries its last BUS_LIST_LIMIT history entries (``get`` returns all of them).

    ``outcome``: "created" (new ticket), "updated" (folded into the open ticket of the same
    asset + root cause), "refined" (a later diagnosis of an alert the ticket already holds, same
    cause: not a new occurrence), "revised" (the same, naming another cause: the ticket's cause
    follows it), "merged" (naming a cause that already has an open ticket: folded into that one,
    and the provisional ticket closed as its duplicate), "attached" (the episode's ticket is
    already closed: the diagnosis is recorded against it, the ticket is not reopened),
    "duplicate" (this diagnosis id was recorded before: nothing changed).

    ``also``: other tickets the same transaction changed (the provisional ticket a merge closed).
    """

    ticket: Ticket
    created: bool
    outcome: str
    also: tuple[Ticket, ...] = ()

    def __iter__(self) -> Iterator[Any]:
        return iter((self.ticket, self.created))

    @property
    def changed(self) -> bool:
        return self.outcome in ("created", "updated", "refined", "revised", "merged")

    @property
    def first_for_alert(self) -> bool:
        """The first ticket stored for this alert (what alert -> ticket latency measures)."""
        return self.outcome in ("created", "updated")


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
    """Thread-safe (one connection behind a lock) and multi-process-safe (WAL + busy timeout +
    ``BEGIN IMMEDIATE``, so two writers queue instead of deadlocking)."""

    def __init__(self, path: str | Path | None = None, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._conn.execute("PRAGMA synchronous = NORMAL")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the ticket store {self.path}: {exc}") from None
        if mode.lower() != "wal":
            raise StoreUnavailable(
                f"{self.path}: SQLite cannot use WAL mode here ({mode}); the ticket and review "
                "services share the store and need it (a network file system?)"
            )
        with self.transaction() as tx:
            version = tx.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise TicketError(
                    f"{self.path}: store schema v{version} is newer than this program "
                    f"(v{SCHEMA_VERSION}); upgrade controlroom"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    tx.conn.execute(statement)
            tx.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close_db(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One write transaction; everything done through ``tx`` commits or rolls back together."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[Tx]:
        """A read transaction: several queries see one consistent state of the file."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield Tx(self._conn)
            finally:
                self._conn.execute("COMMIT")

    # ---- reads -------------------------------------------------------------------------------

    def get(self, ticket_id: str) -> Ticket:
        with self._snapshot() as tx:
            return tx.get(normalize_id(ticket_id))

    def list(
        self, state: str | None = None, asset: str | None = None, limit: int | None = None
    ) -> list[Ticket]:
        """Newest first. ``state`` may also be "active" (open or approved)."""
        where, params = [], []
        if state == "active":
            where.append("state != 'closed'")
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
            ids = [r[0] for r in tx.conn.execute(sql, params)]
            return [tx.get(i) for i in ids]

    def counts(self) -> dict[str, int]:
        """Ticket counts by state plus queue depths, for /health."""
        with self._lock:
            out = {s: 0 for s in ("open", "approved", "closed")}
            for state, n in self._conn.execute("SELECT state, COUNT(*) FROM tickets GROUP BY 1"):
                out[state] = n
            out["diagnoses"] = self._conn.execute("SELECT COUNT(*) FROM diagnoses").fetchone()[0]
            out["mirror_pending"] = self._conn.execute(
                "SELECT COUNT(*) FROM mirror_queue"
            ).fetchone()[0]
            out["outbox_pending"] = self._conn.execute(
                "SELECT COUNT(*) FROM bus_outbox"
            ).fetchone()[0]
        return out

    def get_setting(self, key: str) -> Any | None:
        with self._lock:
            return Tx(self._conn).get_setting(key)

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
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, topic, payload FROM bus_outbox WHERE origin = ? ORDER BY seq LIMIT ?",
                (origin, limit),
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def ack_outbox(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self.transaction() as tx:
            tx.conn.executemany("DELETE FROM bus_outbox WHERE seq = ?", [(s,) for s in seqs])

    # ---- mirror queue ------------------------------------------------------------------------

    def due_mirror_jobs(self, now: float | None = None, limit: int = 20) -> list[MirrorJob]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._conn.execute(
                "SELECT ticket_id, revision, attempts, create_attempted, last_error "
                "FROM mirror_queue WHERE due_at <= ? ORDER BY due_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [MirrorJob(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    def next_mirror_due(self) -> float | None:
        with self._lock:
            row = self._conn.execute("SELECT MIN(due_at) FROM mirror_queue").fetchone()
        return row[0]

    def mirror_succeeded(
        self,
        job: MirrorJob,
        ref: ExternalRef,
        detail: str | None,
        origin: str | None,
        *,
        announce: bool = True,
    ) -> Ticket:
        """Record the external copy as in sync with ``job.revision``; the queue row goes only if
        no change arrived meanwhile. ``announce``: the ref visibly changed (new id/url, error
        cleared), so bump the revision and queue a snapshot for ``origin``; otherwise only the
        sync time is refreshed."""
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
            if not announce:
                return tx.set_external(job.ticket_id, ref, None, None, bump=False)
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
                "create_attempted = MAX(create_attempted, ?) WHERE ticket_id = ?",
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
    """Operations inside one transaction (see :meth:`TicketStore.transaction`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # ---- reads -------------------------------------------------------------------------------

    def _row(self, ticket_id: str) -> sqlite3.Row:
        row = self.conn.execute(
            "SELECT * FROM tickets WHERE ticket_id = ?", (normalize_id(ticket_id),)
        ).fetchone()
        if row is None:
            raise TicketNotFound(f"no ticket {ticket_id!r}")
        return row

    def _history(self, ticket_id: str, limit: int = -1) -> list[AuditEntry]:
        rows = self.conn.execute(
            "SELECT at, who, action, detail FROM audit WHERE ticket_id = ? "
            "ORDER BY id DESC LIMIT ?",
            (ticket_id, limit),
        ).fetchall()
        return [
            AuditEntry(at=datetime.fromisoformat(r[0]), who=r[1], action=r[2], detail=r[3])
            for r in reversed(rows)
        ]

    def get(self, ticket_id: str, *, history: bool | int = True) -> Ticket:
        """The ticket with its audit trail: all of it, the last ``history`` entries (an int),
        or none (False: changes are computed without it, so a ticket with thousands of entries
        costs no more to update than a new one)."""
        row = self._row(ticket_id)
        ticket = Ticket.model_validate_json(row["doc"])
        if history is not False:
            limit = -1 if history is True else int(history)
            ticket.history = self._history(row["ticket_id"], limit)
        return ticket

    def get_setting(self, key: str) -> Any | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

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

    def audit(self, ticket_id: str, who: str, action: str, detail: str, at: datetime) -> None:
        self.conn.execute(
            "INSERT INTO audit(ticket_id, at, who, action, detail) VALUES (?, ?, ?, ?, ?)",
            (ticket_id, at.isoformat(), who[:128], action, detail[:500]),
        )

    def _save(self, ticket: Ticket, *, mirror: bool = True, human_edited: set[str] | None = None):
        doc = ticket.model_copy(update={"history": []}).to_json()
        self.conn.execute(
            "UPDATE tickets SET state = ?, root_cause = ?, doc = ? WHERE ticket_id = ?",
            (ticket.state, ticket.root_cause, doc, ticket.ticket_id),
        )
        if human_edited is not None:
            self.conn.execute(
                "UPDATE tickets SET human_edited = ? WHERE ticket_id = ?",
                (json.dumps(sorted(human_edited)), ticket.ticket_id),
            )
        if mirror:
            self.conn.execute(
                "INSERT INTO mirror_queue(ticket_id, revision, due_at) VALUES (?, ?, ?) "
                "ON CONFLICT(ticket_id) DO UPDATE SET revision = excluded.revision, "
                "due_at = excluded.due_at",
                (ticket.ticket_id, ticket.revision, time.time()),
            )

    def record_diagnosis(self, report: DiagnosisReport, now: datetime | None = None) -> Recorded:
        now = now or utc_now()
        seen = self.conn.execute(
            "SELECT ticket_id FROM diagnoses WHERE diagnosis_id = ?", (report.diagnosis_id,)
        ).fetchone()
        if seen is not None:
            return Recorded(self.get(seen[0], history=BUS_LIST_LIMIT), False, "duplicate")

        def remember(ticket_id: str, outcome: str) -> None:
            self.conn.execute(
                "INSERT INTO diagnoses(diagnosis_id, ticket_id, alert_id, root_cause, outcome, "
                "stored_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    report.diagnosis_id,
                    ticket_id,
                    report.alert_id,
                    report.root_cause,
                    outcome,
                    time.time(),
                ),
            )

        episode = self.conn.execute(
            "SELECT d.ticket_id FROM diagnoses d WHERE d.alert_id = ? ORDER BY d.rowid DESC "
            "LIMIT 1",
            (report.alert_id,),
        ).fetchone()
        if episode is not None:
            rec = self._refine_episode(episode[0], report, now, remember)
            if rec is not None:
                return rec

        open_row = self.conn.execute(
            "SELECT ticket_id, human_edited FROM tickets "
            "WHERE asset = ? AND root_cause = ? AND state != 'closed'",
            (report.asset, report.root_cause),
        ).fetchone()
        if open_row is None:
            cur = self.conn.execute(
                "INSERT INTO tickets(ticket_id, asset, root_cause, state, doc) "
                "VALUES ('pending', ?, ?, 'open', '{}')",
                (report.asset, report.root_cause),
            )
            ticket_id = f"T-{cur.lastrowid:04d}"
            self.conn.execute(
                "UPDATE tickets SET ticket_id = ? WHERE num = ?", (ticket_id, cur.lastrowid)
            )
            ticket = new_ticket(report, ticket_id, now)
            self._save(ticket)
            remember(ticket_id, "created")
            self.audit(
                ticket_id,
                AGENT,
                "created",
                f"from {report.stage} diagnosis {report.diagnosis_id} (alert {report.alert_id}): "
                f"{report.root_cause}, {report.severity}, confidence {report.confidence:.2f}",
                now,
            )
            return Recorded(self.get(ticket_id, history=BUS_LIST_LIMIT), True, "created")

        ticket_id = open_row[0]
        current = self.get(ticket_id, history=False)
        updated, changes = fold_diagnosis(current, report, now, json.loads(open_row[1]))
        self._save(updated)
        remember(ticket_id, "updated")
        self.audit(ticket_id, AGENT, "occurrence", "; ".join(changes), now)
        return Recorded(self.get(ticket_id, history=BUS_LIST_LIMIT), False, "updated")

    def _refine_episode(
        self,
        ticket_id: str,
        report: DiagnosisReport,
        now: datetime,
        remember: Any,
    ) -> Recorded | None:
        """A further diagnosis of an alert that already has a ticket (typically the final
        diagnosis after the provisional one). None: not this ticket's business after all (it
        holds other episodes too and the cause changed), go the usual way."""
        row = self._row(ticket_id)
        current = self.get(ticket_id, history=False)
        edited = json.loads(row["human_edited"])
        if current.state == "closed":
            remember(ticket_id, "attached")
            self.audit(
                ticket_id,
                AGENT,
                "diagnosis_after_close",
                f"{report.stage} diagnosis {report.diagnosis_id} ({report.root_cause}) of the "
                f"same episode (alert {report.alert_id}) arrived after close; not reopened",
                now,
            )
            return Recorded(self.get(ticket_id, history=BUS_LIST_LIMIT), False, "attached")
        if current.root_cause == report.root_cause:
            updated, changes = fold_diagnosis(current, report, now, edited, occurrence=False)
            self._save(updated)
            remember(ticket_id, "refined")
            self.audit(ticket_id, AGENT, "diagnosis", "; ".join(changes), now)
            return Recorded(self.get(ticket_id, history=BUS_LIST_LIMIT), False, "refined")
        solo = current.alert_ids == [report.alert_id]
        other = self.conn.execute(
            "SELECT ticket_id FROM tickets WHERE asset = ? AND root_cause = ? "
            "AND state != 'closed'",
            (report.asset, report.root_cause),
        ).fetchone()
        if other is None and solo:
            updated, changes = revise_cause(current, report, now, edited)
            self._save(updated)
            remember(ticket_id, "revised")
            self.audit(ticket_id, AGENT, "cause_revised", "; ".join(changes), now)
            return Recorded(self.get(ticket_id, history=BUS_LIST_LIMIT), False, "revised")
        if other is None:
            self.audit(
                ticket_id,
                AGENT,
                "diagnosis_elsewhere",
                f"final diagnosis {report.diagnosis_id} of alert {report.alert_id} names "
                f"{report.root_cause}; this ticket holds other episodes too, so it keeps "
                f"{current.root_cause}",
                now,
            )
            return None
        target_id = other[0]
        target = self.get(target_id, history=False)
        target_edited = json.loads(self._row(target_id)["human_edited"])
        merged, changes = fold_diagnosis(target, report, now, target_edited)
        self._save(merged)
        remember(target_id, "merged")
        self.audit(target_id, AGENT, "occurrence", "; ".join(changes), now)
        also: tuple[Ticket, ...] = ()
        if solo and current.state == "open" and not edited:
            closed = current.model_copy(
                update={
                    "state": "closed",
                    "close_reason": "duplicate",
                    "close_note": f"cause revised to {report.root_cause}: see {target_id}",
                    "updated_at": now,
                    "revision": current.revision + 1,
                }
            )
            self._save(closed)
            self.audit(
                ticket_id,
                AGENT,
                "closed",
                f"duplicate: the final diagnosis {report.diagnosis_id} names "
                f"{report.root_cause}, which {target_id} already tracks",
                now,
            )
            also = (self.get(ticket_id, history=BUS_LIST_LIMIT),)
        else:
            self.audit(
                ticket_id,
                AGENT,
                "diagnosis_elsewhere",
                f"final diagnosis {report.diagnosis_id} names {report.root_cause}: recorded on "
                f"{target_id}",
                now,
            )
        return Recorded(self.get(target_id, history=BUS_LIST_LIMIT), False, "merged", also)

    def approve(self, ticket_id: str, who: str, note: str | None = None) -> Ticket:
        ticket = self.get(ticket_id, history=False)
        if ticket.state != "open":
            raise IllegalTransition(
                f"ticket {ticket.ticket_id} is {ticket.state}; only an open ticket can be approved"
            )
        now = utc_now()
        ticket = ticket.model_copy(
            update={"state": "approved", "updated_at": now, "revision": ticket.revision + 1}
        )
        self._save(ticket)
        self.audit(ticket.ticket_id, who, "approved", note or "", now)
        return self.get(ticket.ticket_id)

    def edit(self, ticket_id: str, who: str, **fields: Any) -> tuple[Ticket, dict[str, str]]:
        """Apply the given fields; returns the ticket and the fields that actually changed
        (name -> new value as text). Unchanged values are not an error and record nothing."""
        unknown = set(fields) - set(EDITABLE)
        if unknown:
            raise InvalidRequest(f"cannot edit {', '.join(sorted(unknown))}; editable: {EDITABLE}")
        given = {k: v for k, v in fields.items() if v is not None}
        if not given:
            raise InvalidRequest(
                "nothing to edit: give at least one of title, body, labels, severity"
            )
        if "severity" in given and given["severity"] not in SEVERITIES:
            raise InvalidRequest(
                f"severity {given['severity']!r} is not one of {', '.join(SEVERITIES)}"
            )
        ticket = self.get(ticket_id, history=False)
        if ticket.state == "closed":
            raise IllegalTransition(f"ticket {ticket.ticket_id} is closed; it cannot be edited")
        changes: dict[str, str] = {}
        update: dict[str, Any] = {}
        for name, value in given.items():
            if name == "labels":
                value = list(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))
            if getattr(ticket, name) != value:
                update[name] = value
                changes[name] = ", ".join(value) if name == "labels" else str(value)
        if not update:
            return ticket, {}
        now = utc_now()
        if "severity" in update and "labels" not in update:
            # Derived labels follow a severity change unless the reviewer owns the labels.
            row = self._row(ticket.ticket_id)
            if "labels" not in json.loads(row["human_edited"]):
                update["labels"] = labels_for(
                    ticket.asset, ticket.root_cause, ticket.category, update["severity"]
                )
        update |= {"updated_at": now, "revision": ticket.revision + 1}
        try:
            edited = Ticket.model_validate(ticket.model_copy(update=update).model_dump())
        except ValidationError as exc:
            e = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in e["loc"])
            raise InvalidRequest(f"invalid edit: {where}: {e['msg']}") from None
        human = set(json.loads(self._row(ticket.ticket_id)["human_edited"])) | (
            set(changes) & {"title", "body", "labels"}
        )
        self._save(edited, human_edited=human)
        detail = "; ".join(
            f"{k} = {v[:120]!r}" if k != "body" else f"body ({len(v)} chars)"
            for k, v in changes.items()
        )
        self.audit(ticket.ticket_id, who, "edited", detail, now)
        return self.get(ticket.ticket_id), changes

    def close(self, ticket_id: str, who: str, reason: str, note: str | None = None) -> Ticket:
        if reason not in CLOSE_REASONS:
            raise InvalidRequest(
                f"close reason {reason!r} is not one of {', '.join(CLOSE_REASONS)}"
            )
        ticket = self.get(ticket_id, history=False)
        if ticket.state == "closed":
            raise IllegalTransition(
                f"ticket {ticket.ticket_id} is already closed ({ticket.close_reason})"
            )
        now = utc_now()
        ticket = ticket.model_copy(
            update={
                "state": "closed",
                "close_reason": reason,
                "close_note": note,
                "updated_at": now,
                "revision": ticket.revision + 1,
            }
        )
        self._save(ticket)
        self.audit(ticket.ticket_id, who, "closed", reason + (f": {note}" if note else ""), now)
        return self.get(ticket.ticket_id)

    def set_external(
        self,
        ticket_id: str,
        ref: ExternalRef,
        detail: str | None,
        origin: str | None,
        *,
        bump: bool = True,
    ) -> Ticket:
        """Record the external copy's id/url/error. Bumps the revision (screens show the link)
        but does not queue another sync: the mirror's own bookkeeping is not a content change."""
        ticket = self.get(ticket_id, history=False)
        update: dict[str, Any] = {"external": ref}
        if bump:
            update["revision"] = ticket.revision + 1
        ticket = ticket.model_copy(update=update)
        self._save(ticket, mirror=False)
        if detail:
            self.audit(ticket_id, "mirror", "external", detail, utc_now())
        ticket = self.get(ticket_id)
        if origin:
            self.enqueue(ticket, origin)
        return ticket
