"""The ticket lifecycle, without SQL: the state machine of a work order and the episode policy
that decides what a diagnosis does to the tickets.

Typed commands go in (:class:`Approve`, :class:`Edit`, :class:`Close`, :class:`MirrorSynced`, and
a :class:`~engine.schemas.DiagnosisReport` with what the store knows about its episode); a
:class:`Decision` comes out: the :class:`Outcome`, the new state of every ticket it touches
(:class:`Saved`) and the audit lines (:class:`Entry`). The store (``engine/tickets/store.py``)
loads the inputs and writes the decision, with the diagnosis id, the outbox rows and the mirror
job, in one transaction. Nothing here reads a clock or a database, so every rule can be read
and tested on its own.

Rules kept here:

- ``open -> approved -> closed``; edit while not closed; a close needs a reason.
- Every change of a ticket, a history line included, moves its ``revision`` on by exactly one
  (the store refuses a save that does not).
- One open ticket per asset and root cause: a new alert of a tracked cause is a new
  *occurrence* of its ticket.
- Provisional, then final: the final report of an alert refines the ticket (same cause),
  revises its cause (another cause), or merges the episode into the ticket that already tracks
  that cause. The first final settles the cause: a later report of the same alert never changes
  it again, and a provisional report of an alert that has a ticket changes nothing (a repeat, or
  a late arrival). A report of type ``update`` (the alert escalated) changes the severity and
  the priority only, never the cause.
- Severity rises by itself and falls only by a reviewer's edit. Text a reviewer wrote by hand
  (title, body, labels) is never overwritten; derived text follows the fields (the body's
  priority line follows the severity, also after a reviewer's severity edit).
- A closed ticket is never reopened: a late diagnosis of its episode is attached to it.

Why one module of ~500 lines: the review commands and the episode policy write the same
``Decision``, ``Saved`` and ``Entry`` under one revision rule (``_bumped``), and this is the one
module of ``engine/tickets`` the import contract holds pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from engine.agents.ticket import (
    AGENT,
    escalate,
    fold_diagnosis,
    labels_for,
    new_ticket,
    render_body,
    revise_cause,
)
from engine.schemas import (
    CLOSE_REASONS,
    SEVERITIES,
    DiagnosisReport,
    ExternalRef,
    Severity,
    Ticket,
    error_line,
)
from engine.tickets.errors import IllegalTransition, InvalidRequest

EDITABLE = ("title", "body", "labels", "severity")
HAND_WRITTEN = frozenset({"title", "body", "labels"})
"""Fields that stay as a reviewer wrote them when later diagnoses arrive."""
MIRROR = "mirror"
"""The ``who`` of the mirror's history lines."""


class Outcome(StrEnum):
    """What a command or a diagnosis did."""

    CREATED = "created"
    """A new ticket (a new episode of a cause the asset has no open ticket for)."""
    UPDATED = "updated"
    """A new alert folded into the open ticket of the same asset and cause (an occurrence)."""
    REFINED = "refined"
    """A further report of an alert the ticket holds, same cause: evidence and confidence."""
    REVISED = "revised"
    """The final report named another cause: the ticket's cause follows it."""
    MERGED = "merged"
    """The final report named a cause another open ticket tracks: folded into that one."""
    ESCALATED = "escalated"
    """An ``update`` report raised the severity (and the priority)."""
    KEPT = "kept"
    """A report tried to change a settled cause: recorded in the history, the cause kept."""
    ATTACHED = "attached"
    """The episode's ticket is closed: the report is recorded on it; it is not reopened."""
    NOTED = "noted"
    """Recorded, nothing to change (a provisional repeat, an update that raised nothing)."""
    SUPPRESSED = "suppressed"
    """Its alarm is shelved or out of service (contract C6): recorded, no ticket."""
    DUPLICATE = "duplicate"
    """This diagnosis id was recorded before: nothing at all happened."""
    APPROVED = "approved"
    EDITED = "edited"
    CLOSED = "closed"
    UNCHANGED = "unchanged"
    """An edit whose values were already the ticket's."""
    SYNCED = "synced"
    """The external copy (issue, Case) was written or failed; its reference is stored."""

    @property
    def changed(self) -> bool:
        """Some ticket changed (and is announced on the bus)."""
        return self not in (Outcome.NOTED, Outcome.DUPLICATE, Outcome.UNCHANGED, Outcome.SUPPRESSED)

    @property
    def first_for_alert(self) -> bool:
        """The first ticket stored for this alert (what alert -> ticket latency measures)."""
        return self in (Outcome.CREATED, Outcome.UPDATED)


class Action(StrEnum):
    """The action column of a history line."""

    CREATED = "created"
    OCCURRENCE = "occurrence"
    DIAGNOSIS = "diagnosis"
    CAUSE_REVISED = "cause_revised"
    CAUSE_KEPT = "cause_kept"
    SEVERITY_ESCALATED = "severity_escalated"
    DIAGNOSIS_ELSEWHERE = "diagnosis_elsewhere"
    DIAGNOSIS_AFTER_CLOSE = "diagnosis_after_close"
    APPROVED = "approved"
    EDITED = "edited"
    CLOSED = "closed"
    EXTERNAL = "external"


@dataclass(frozen=True)
class Stored:
    """A ticket as the store holds it: its fields, which of them a reviewer wrote by hand, and
    the latest report naming its cause (what its body is rendered from)."""

    ticket: Ticket
    edited: frozenset[str] = frozenset()
    report: DiagnosisReport | None = None
    holds_alert: bool | None = None
    """Whether the ticket holds the alert of the report being decided, when its ``alert_ids``
    are only a tail (the store's: ``engine/tickets/id_lists.py``); None: look in them."""


@dataclass(frozen=True)
class Episode:
    """The ticket that already holds the alert a report is about."""

    stored: Stored
    settled: bool
    """A final report of this alert is already on record: its cause is settled."""


@dataclass(frozen=True)
class Saved:
    """The new state of one ticket; ``created``: insert it, else replace the stored one."""

    ticket: Ticket
    edited: frozenset[str]
    report: DiagnosisReport | None
    mirror: bool = True
    """Queue a sync of the external copy (False for the mirror's own bookkeeping)."""
    created: bool = False


@dataclass(frozen=True)
class Entry:
    ticket_id: str
    who: str
    action: Action
    detail: str


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    ticket_id: str
    """The ticket the command is about (for a diagnosis: the one it is recorded against)."""
    saves: tuple[Saved, ...] = ()
    entries: tuple[Entry, ...] = ()
    changes: Mapping[str, str] = field(default_factory=dict)
    """For an edit: field -> new value as text."""
    reason: str | None = None
    """For a suppressed diagnosis: why (the alarm's shelve, the asset out of service)."""


# ---- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewCommand:
    """A reviewer's action: ``who`` gave it, and its history line names them."""

    who: str


@dataclass(frozen=True)
class Approve(ReviewCommand):
    note: str | None = None


@dataclass(frozen=True)
class Edit(ReviewCommand):
    title: str | None = None
    body: str | None = None
    labels: list[str] | None = None
    severity: str | None = None

    @classmethod
    def of(cls, who: str, fields: Mapping[str, Any]) -> Edit:
        unknown = set(fields) - set(EDITABLE)
        if unknown:
            raise InvalidRequest(f"cannot edit {', '.join(sorted(unknown))}; editable: {EDITABLE}")
        return cls(who=who, **{k: v for k, v in fields.items() if v is not None})

    def given(self) -> dict[str, Any]:
        return {name: value for name in EDITABLE if (value := getattr(self, name)) is not None}


@dataclass(frozen=True)
class Close(ReviewCommand):
    reason: str
    note: str | None = None


@dataclass(frozen=True)
class MirrorSynced:
    """The mirror wrote (or failed to write) the external copy: store its reference."""

    ref: ExternalRef
    detail: str | None = None


Command = Approve | Edit | Close | MirrorSynced


def decide(command: Command, current: Stored, now: datetime) -> Decision:
    """What a review action or a mirror result does to ``current``."""
    if isinstance(command, Approve):
        return _approve(command, current, now)
    if isinstance(command, Edit):
        return _edit(command, current, now)
    if isinstance(command, Close):
        return _close(command, current, now)
    return _synced(command, current)


def _bumped(ticket: Ticket, now: datetime | None, **update: Any) -> Ticket:
    changes: dict[str, Any] = {"revision": ticket.revision + 1, **update}
    if now is not None:
        changes["updated_at"] = now
    return ticket.model_copy(update=changes)


def _approve(cmd: Approve, cur: Stored, now: datetime) -> Decision:
    t = cur.ticket
    if t.state != "open":
        raise IllegalTransition(
            f"ticket {t.ticket_id} is {t.state}; only an open ticket can be approved"
        )
    saved = Saved(_bumped(t, now, state="approved"), cur.edited, cur.report)
    entry = Entry(t.ticket_id, cmd.who, Action.APPROVED, cmd.note or "")
    return Decision(Outcome.APPROVED, t.ticket_id, (saved,), (entry,))


def _close(cmd: Close, cur: Stored, now: datetime) -> Decision:
    if cmd.reason not in CLOSE_REASONS:
        raise InvalidRequest(
            f"close reason {cmd.reason!r} is not one of {', '.join(CLOSE_REASONS)}"
        )
    t = cur.ticket
    if t.state == "closed":
        raise IllegalTransition(f"ticket {t.ticket_id} is already closed ({t.close_reason})")
    closed = _bumped(t, now, state="closed", close_reason=cmd.reason, close_note=cmd.note)
    detail = cmd.reason + (f": {cmd.note}" if cmd.note else "")
    entry = Entry(t.ticket_id, cmd.who, Action.CLOSED, detail)
    return Decision(Outcome.CLOSED, t.ticket_id, (Saved(closed, cur.edited, cur.report),), (entry,))


def _edit(cmd: Edit, cur: Stored, now: datetime) -> Decision:
    given = cmd.given()
    if not given:
        raise InvalidRequest("nothing to edit: give at least one of title, body, labels, severity")
    if "severity" in given and given["severity"] not in SEVERITIES:
        raise InvalidRequest(
            f"severity {given['severity']!r} is not one of {', '.join(SEVERITIES)}"
        )
    t = cur.ticket
    if t.state == "closed":
        raise IllegalTransition(f"ticket {t.ticket_id} is closed; it cannot be edited")
    changes: dict[str, str] = {}
    update: dict[str, Any] = {}
    for name, value in given.items():
        if name == "labels":
            value = list(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))
        if getattr(t, name) != value:
            update[name] = value
            changes[name] = ", ".join(value) if name == "labels" else str(value)
    if not update:
        return Decision(Outcome.UNCHANGED, t.ticket_id)
    edited = cur.edited | (frozenset(changes) & HAND_WRITTEN)
    try:
        ticket = Ticket.model_validate(_bumped(t, now, **update).model_dump())
    except ValidationError as exc:
        raise InvalidRequest(f"invalid edit: {error_line(exc)}") from None
    if "severity" in update:
        ticket = _derived_text(ticket, edited, cur.report)
    detail = "; ".join(
        f"{k} = {v[:120]!r}" if k != "body" else f"body ({len(v)} chars)"
        for k, v in changes.items()
    )
    entry = Entry(t.ticket_id, cmd.who, Action.EDITED, detail)
    return Decision(
        Outcome.EDITED, t.ticket_id, (Saved(ticket, edited, cur.report),), (entry,), changes
    )


def _derived_text(ticket: Ticket, edited: frozenset[str], report: DiagnosisReport | None) -> Ticket:
    """Labels and body that follow the severity, unless a reviewer owns them. Without a stored
    report (tickets written before v2 of the store) the body cannot be re-rendered and stays."""
    update: dict[str, Any] = {}
    if "labels" not in edited:
        update["labels"] = labels_for(
            ticket.asset, ticket.root_cause, ticket.category, ticket.severity
        )
    if "body" not in edited and report is not None:
        update["body"] = render_body(ticket, report)
    return ticket.model_copy(update=update) if update else ticket


def _synced(cmd: MirrorSynced, cur: Stored) -> Decision:
    t = cur.ticket
    saved = Saved(_bumped(t, None, external=cmd.ref), cur.edited, cur.report, mirror=False)
    entries = (Entry(t.ticket_id, MIRROR, Action.EXTERNAL, cmd.detail),) if cmd.detail else ()
    return Decision(Outcome.SYNCED, t.ticket_id, (saved,), entries)


# ---- the episode policy -------------------------------------------------------------------------


def record(
    report: DiagnosisReport,
    *,
    episode: Episode | None,
    tracked: Stored | None,
    new_id: Callable[[], str],
    now: datetime,
    suppressed: str | None = None,
) -> Decision:
    """Where a diagnosis goes. ``episode``: the ticket that already holds its alert (on the same
    asset), if any; ``tracked``: the open ticket of the report's asset and cause, if any;
    ``new_id``: the id for a new ticket (called only when one is created); ``suppressed``: why
    the report's alarm must not open a ticket (shelved, out of service), if it must not.

    Suppression counts only for an alert that has no ticket yet: a ticket already open for the
    episode goes on following it (shelving silences an alarm, it does not cancel work)."""
    notes: tuple[Saved, ...] = ()
    entries: tuple[Entry, ...] = ()
    if episode is None and suppressed is not None:
        return Decision(Outcome.SUPPRESSED, "", reason=suppressed)
    if episode is not None:
        decided = _within_episode(report, episode, tracked, now)
        if isinstance(decided, Decision):
            return decided
        notes, entries = decided
    if tracked is None:
        ticket = new_ticket(report, new_id(), now)
        detail = (
            f"from {report.stage} diagnosis {report.diagnosis_id} (alert {report.alert_id}): "
            f"{report.root_cause}, {report.severity}, confidence {report.confidence:.2f}"
        )
        return Decision(
            Outcome.CREATED,
            ticket.ticket_id,
            (*notes, Saved(ticket, frozenset(), report, created=True)),
            (*entries, Entry(ticket.ticket_id, AGENT, Action.CREATED, detail)),
        )
    updated, lines = fold_diagnosis(tracked.ticket, report, tracked.edited, tracked.holds_alert)
    updated = _bumped(updated, now)
    tid = updated.ticket_id
    return Decision(
        Outcome.UPDATED,
        tid,
        (*notes, Saved(updated, tracked.edited, _cause_report(report, tracked))),
        (*entries, Entry(tid, AGENT, Action.OCCURRENCE, "; ".join(lines))),
    )


def _cause_report(report: DiagnosisReport, stored: Stored) -> DiagnosisReport | None:
    """The report a body is rendered from: an ``update`` names no new evidence of the cause."""
    return stored.report if report.stage == "update" and stored.report else report


def _within_episode(
    report: DiagnosisReport, episode: Episode, tracked: Stored | None, now: datetime
) -> Decision | tuple[tuple[Saved, ...], tuple[Entry, ...]]:
    """A further report of an alert that already has a ticket. Returns the decision, or the
    history note to write before going the usual way (the ticket holds other episodes too and
    the cause changed: the report opens or joins the ticket of its own cause)."""
    cur = episode.stored
    t = cur.ticket
    tid = t.ticket_id
    said = f"{report.stage} diagnosis {report.diagnosis_id} ({report.root_cause})"
    if t.state == "closed":
        detail = (
            f"{said} of the same episode (alert {report.alert_id}) arrived after close; "
            "not reopened"
        )
        return _noted(Outcome.ATTACHED, cur, Action.DIAGNOSIS_AFTER_CLOSE, detail)
    if report.stage == "update":
        return _escalation(report, cur, now)
    if report.stage == "provisional":
        return Decision(Outcome.NOTED, tid)  # the alert has its ticket: a repeat or a late one
    if t.root_cause == report.root_cause:
        refined, lines = fold_diagnosis(t, report, cur.edited, cur.holds_alert, occurrence=False)
        saved = Saved(_bumped(refined, now), cur.edited, report)
        return Decision(
            Outcome.REFINED, tid, (saved,), (Entry(tid, AGENT, Action.DIAGNOSIS, "; ".join(lines)),)
        )
    if episode.settled:
        detail = (
            f"{said} of alert {report.alert_id} names another cause after an earlier final "
            f"diagnosis settled it; {t.root_cause} kept"
        )
        return _noted(Outcome.KEPT, cur, Action.CAUSE_KEPT, detail)
    solo = t.alert_ids == [report.alert_id]  # exact on a stored tail too (see id_lists)
    if tracked is None and solo:
        revised, lines = revise_cause(t, report, cur.edited)
        if t.state == "approved":
            # The approval was for another cause: the work order now asks for another trade.
            revised = revised.model_copy(update={"state": "open"})
            lines.append("approval withdrawn: the approved cause was revised")
        saved = Saved(_bumped(revised, now), cur.edited, report)
        entry = Entry(tid, AGENT, Action.CAUSE_REVISED, "; ".join(lines))
        return Decision(Outcome.REVISED, tid, (saved,), (entry,))
    if tracked is None:
        detail = (
            f"final diagnosis {report.diagnosis_id} of alert {report.alert_id} names "
            f"{report.root_cause}; this ticket holds other episodes too, so it keeps {t.root_cause}"
        )
        note = Saved(_bumped(t, now), cur.edited, cur.report, mirror=False)
        return (note,), (Entry(tid, AGENT, Action.DIAGNOSIS_ELSEWHERE, detail),)
    return _merge(report, cur, tracked, solo, now)


def _merge(
    report: DiagnosisReport, cur: Stored, tracked: Stored, solo: bool, now: datetime
) -> Decision:
    """The final report names a cause ``tracked`` already follows: fold the episode into it;
    the provisional ticket closes as its duplicate when nothing else (a reviewer's work, other
    episodes) holds it open."""
    target = tracked.ticket.ticket_id
    merged, lines = fold_diagnosis(tracked.ticket, report, tracked.edited, tracked.holds_alert)
    saves = [Saved(_bumped(merged, now), tracked.edited, report)]
    entries = [Entry(target, AGENT, Action.OCCURRENCE, "; ".join(lines))]
    t = cur.ticket
    if solo and t.state == "open" and not cur.edited:
        closed = _bumped(
            t,
            now,
            state="closed",
            close_reason="duplicate",
            close_note=f"cause revised to {report.root_cause}: see {target}",
        )
        detail = (
            f"duplicate: the final diagnosis {report.diagnosis_id} names {report.root_cause}, "
            f"which {target} already tracks"
        )
        saves.append(Saved(closed, cur.edited, cur.report))
        entries.append(Entry(t.ticket_id, AGENT, Action.CLOSED, detail))
    else:
        detail = (
            f"final diagnosis {report.diagnosis_id} names {report.root_cause}: recorded on {target}"
        )
        saves.append(Saved(_bumped(t, now), cur.edited, cur.report, mirror=False))
        entries.append(Entry(t.ticket_id, AGENT, Action.DIAGNOSIS_ELSEWHERE, detail))
    return Decision(Outcome.MERGED, target, tuple(saves), tuple(entries))


def _escalation(report: DiagnosisReport, cur: Stored, now: datetime) -> Decision:
    """An ``update`` report (contract C2): severity and priority only, never the cause."""
    t = cur.ticket
    severity: Severity = escalate(t.severity, report.severity)
    if severity == t.severity:
        return Decision(Outcome.NOTED, t.ticket_id)
    raised = _derived_text(
        _bumped(t, now, severity=severity, last_seen_ts=max(t.last_seen_ts, report.ts)),
        cur.edited,
        cur.report,
    )
    detail = (
        f"severity escalated {t.severity} -> {severity} by update {report.diagnosis_id} "
        f"(alert {report.alert_id})"
    )
    saved = Saved(raised, cur.edited, cur.report)
    entry = Entry(t.ticket_id, AGENT, Action.SEVERITY_ESCALATED, detail)
    return Decision(Outcome.ESCALATED, t.ticket_id, (saved,), (entry,))


def _noted(outcome: Outcome, cur: Stored, action: Action, detail: str) -> Decision:
    """A history line on an otherwise unchanged ticket (the line is a change: revision + 1)."""
    t = cur.ticket
    saved = Saved(_bumped(t, None), cur.edited, cur.report, mirror=False)
    return Decision(outcome, t.ticket_id, (saved,), (Entry(t.ticket_id, AGENT, action, detail),))
