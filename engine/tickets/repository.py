"""The ticket repository: the SQL that loads and writes tickets, their history, diagnosis ids,
outbox rows and mirror jobs, inside one transaction of the store (``engine/tickets/store.py``).

It asks the lifecycle (``engine/tickets/lifecycle.py``) what a command or a diagnosis does and
writes the :class:`~engine.tickets.lifecycle.Decision`: the tickets' new state (the tail of
their id lists; the ids they gained become ``ticket_ids`` rows: ``engine/tickets/id_lists.py``),
the history lines, the diagnosis id (keyed with the asset), the mirror job. It decides nothing
itself, except refusing a change that does not move a ticket's revision on by one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.schemas import (
    AuditEntry,
    DiagnosisReport,
    ExternalRef,
    Ticket,
    WireModel,
    topic_for,
    utc_now,
)
from engine.tickets import id_lists, lifecycle
from engine.tickets.database import Conn
from engine.tickets.errors import TicketNotFound
from engine.tickets.lifecycle import Decision, Episode, Outcome, Stored

LISTS = tuple(id_lists.LISTS)
Gate = Callable[[Conn, DiagnosisReport], "str | None"]
"""The C6 check: why a report's alarm must not open a ticket, or None."""

BUS_LIST_LIMIT = id_lists.DOC_LIST_LIMIT
"""A snapshot on the bus carries at most this many (most recent) audit entries, diagnosis ids and
alert ids, so a ticket that lives for months never outgrows the bus's payload limit; the store
and the API keep all of them (the ids in ``ticket_ids`` rows, the document only their tail)."""
MIRROR_KEY = "mirror"
"""Setting naming the configured external system; no mirror jobs are queued without it."""


@dataclass(frozen=True)
class Recorded:
    """Result of :meth:`TicketStore.record_diagnosis`. Unpacks as ``(ticket, created)``. The
    ticket carries its last BUS_LIST_LIMIT history entries, diagnosis ids and alert ids (``get``
    returns all of them).
    ``also``: other tickets the same transaction changed (the provisional ticket a merge
    closed, a ticket that got a history line)."""

    ticket: Ticket | None
    """None only for a suppressed diagnosis (or a repeat of one): no ticket."""
    created: bool
    outcome: Outcome
    also: tuple[Ticket, ...] = ()
    reason: str | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.ticket, self.created))

    @property
    def changed(self) -> bool:
        return self.outcome.changed

    @property
    def first_for_alert(self) -> bool:
        return self.outcome.first_for_alert


def normalize_id(ticket_id: str) -> str:
    """``"12"`` -> ``"T-0012"``: operators may type the number alone."""
    text = ticket_id.strip()
    if text.isdigit():
        return f"T-{int(text):04d}"
    return text.upper() if text[:2].lower() == "t-" else text


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
        params: tuple[Any, ...] = (ticket_id,)
        if limit is not None:  # a parameter: one prepared statement for every limit
            sql += " LIMIT ?"
            params += (int(limit),)
        rows = self.conn.all(sql, params)
        return [
            AuditEntry(at=datetime.fromisoformat(r[0]), who=r[1], action=r[2], detail=r[3])
            for r in reversed(rows)
        ]

    def get(self, ticket_id: str, *, history: bool | int = True) -> Ticket:
        """The ticket with its audit trail: all of it, the last ``history`` entries (an int),
        or none (False: changes are computed without it, so a ticket with thousands of entries
        costs no more to update than a new one). Its diagnosis and alert ids likewise: all of
        them with the whole history (the full view), else the last DOC_LIST_LIMIT."""
        row = self._row(ticket_id)
        ticket = Ticket.model_validate_json(row[3])
        if history is not False:
            limit = None if history is True else int(history)
            ticket.history = self._history(row[0], limit)
        if history is True:
            for name, ids in id_lists.whole(self.conn, row[0]).items():
                setattr(ticket, name, ids)
        return ticket

    def stored(self, ticket_id: str, alert_id: str | None = None) -> Stored:
        """The ticket as the lifecycle decides on it (the tail of its id lists); ``alert_id``:
        the alert of the report being decided, whether the ticket holds it is looked up."""
        row = self._row(ticket_id)
        ticket = Ticket.model_validate_json(row[3])
        return Stored(
            ticket=ticket,
            edited=frozenset(json.loads(row[1])),
            report=DiagnosisReport.model_validate_json(row[2]) if row[2] else None,
            holds_alert=None
            if alert_id is None
            else id_lists.holds_alert(self.conn, row[0], ticket.alert_ids, alert_id),
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
            before = (
                None if saved.created else Ticket.model_validate_json(self._row(t.ticket_id)[3])
            )
            if before is not None and t.revision != before.revision + 1:
                raise RuntimeError(
                    f"{t.ticket_id}: a change must bump the revision {before.revision} -> "
                    f"{before.revision + 1}, not {t.revision}"
                )
            self._append_ids(t, before)
            self.conn.execute(
                "UPDATE tickets SET state = ?, root_cause = ?, human_edited = ?, report = ?, "
                "doc = ? WHERE ticket_id = ?",
                (
                    t.state,
                    t.root_cause,
                    json.dumps(sorted(saved.edited)),
                    saved.report.to_json() if saved.report is not None else None,
                    t.model_copy(
                        update={"history": [], **{f: id_lists.tail(getattr(t, f)) for f in LISTS}}
                    ).to_json(),
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

    def _append_ids(self, t: Ticket, before: Ticket | None) -> None:
        """The ids the lifecycle appended to the tail it was given become rows. Refuses any
        other change of a list (a bug: the rows are append-only)."""
        for name in LISTS:
            old, new = getattr(before, name) if before else [], getattr(t, name)
            if new[: len(old)] != old:
                raise RuntimeError(f"{t.ticket_id}: {name} may only grow at its end")
            id_lists.append(self.conn, t.ticket_id, name, new[len(old) :])

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

    def record_diagnosis(
        self, report: DiagnosisReport, now: datetime | None = None, gate: Gate | None = None
    ) -> Recorded:
        """``gate(conn, report)``: why this report's alarm must not open a ticket (contract C6,
        the alarm tables' check, run in this transaction), or None."""
        now = now or utc_now()
        key = (report.asset, report.diagnosis_id)
        seen = self.conn.scalar(
            "SELECT ticket_id FROM diagnoses WHERE asset = ? AND diagnosis_id = ?", key
        )
        if seen is not None:
            ticket = self.get(seen, history=BUS_LIST_LIMIT) if seen else None
            return Recorded(ticket, False, Outcome.DUPLICATE)
        episode = None
        alert = (report.asset, report.alert_id)
        row = self.conn.one(
            "SELECT ticket_id FROM diagnoses WHERE asset = ? AND alert_id = ? "
            "AND ticket_id <> '' ORDER BY seq DESC LIMIT 1",
            alert,
        )
        if row is not None:
            finals = self.conn.scalar(
                "SELECT COUNT(*) FROM diagnoses WHERE asset = ? AND alert_id = ? "
                "AND stage = 'final'",
                alert,
            )
            episode = Episode(self.stored(row[0], report.alert_id), settled=int(finals) > 0)
        tracked_id = self.conn.scalar(
            "SELECT ticket_id FROM tickets WHERE asset = ? AND root_cause = ? "
            "AND state <> 'closed'",
            (report.asset, report.root_cause),
        )
        decision = lifecycle.record(
            report,
            episode=episode,
            tracked=self.stored(tracked_id, report.alert_id) if tracked_id is not None else None,
            new_id=lambda: self._new_ticket_id(report),
            now=now,
            suppressed=gate(self.conn, report) if gate is not None and episode is None else None,
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
        if decision.outcome is Outcome.SUPPRESSED:
            return Recorded(None, False, decision.outcome, reason=decision.reason)
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
