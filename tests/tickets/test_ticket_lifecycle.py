"""The lifecycle on its own: typed commands in, decisions out, no database and no clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tickets_data import report, ticket

from engine.tickets.errors import IllegalTransition, InvalidRequest
from engine.tickets.lifecycle import (
    Action,
    Approve,
    Close,
    Edit,
    Episode,
    Outcome,
    Stored,
    decide,
    record,
)

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def no_new_id() -> str:
    raise AssertionError("no ticket should be created")


def test_commands_move_the_state_and_the_revision_by_one() -> None:
    cur = Stored(ticket(revision=4))
    approved = decide(Approve("ana", "ok"), cur, NOW)
    assert approved.outcome is Outcome.APPROVED
    (saved,) = approved.saves
    assert (saved.ticket.state, saved.ticket.revision, saved.ticket.updated_at) == (
        "approved",
        5,
        NOW,
    )
    assert approved.entries[0].action is Action.APPROVED and approved.entries[0].who == "ana"
    closed = decide(Close("ben", "resolved", "done"), Stored(saved.ticket), NOW)
    assert (
        closed.saves[0].ticket.close_reason == "resolved" and closed.saves[0].ticket.revision == 6
    )
    with pytest.raises(IllegalTransition, match="already closed"):
        decide(Close("ben", "resolved"), Stored(closed.saves[0].ticket), NOW)
    with pytest.raises(InvalidRequest, match="close reason 'fixed'"):
        decide(Close("ben", "fixed"), cur, NOW)


def test_an_edit_that_changes_nothing_is_unchanged_and_saves_nothing() -> None:
    cur = Stored(ticket(title="Same"))
    d = decide(Edit("ana", title="Same"), cur, NOW)
    assert d.outcome is Outcome.UNCHANGED and d.saves == () and not d.outcome.changed


def test_a_new_episode_asks_for_an_id_only_when_it_creates_a_ticket() -> None:
    ids = iter(["T-0042"])
    created = record(report(), episode=None, tracked=None, new_id=lambda: next(ids), now=NOW)
    assert created.outcome is Outcome.CREATED and created.ticket_id == "T-0042"
    assert created.saves[0].created and created.entries[0].action is Action.CREATED
    tracked = Stored(created.saves[0].ticket, report=created.saves[0].report)
    folded = record(report(), episode=None, tracked=tracked, new_id=no_new_id, now=NOW)
    assert folded.outcome is Outcome.UPDATED and folded.saves[0].ticket.occurrences == 2


def test_the_episode_policy_for_late_and_forged_reports() -> None:
    cur = Stored(ticket(alert_ids=["A-1"], root_cause="bearing_wear", state="approved"))
    late = report(alert_id="A-1", stage="provisional", root_cause="clogging")
    d = record(late, episode=Episode(cur, settled=False), tracked=None, new_id=no_new_id, now=NOW)
    assert d.outcome is Outcome.NOTED and d.saves == ()
    other = report(alert_id="A-1", root_cause="clogging")
    d = record(other, episode=Episode(cur, settled=True), tracked=None, new_id=no_new_id, now=NOW)
    assert d.outcome is Outcome.KEPT
    assert d.saves[0].ticket.root_cause == "bearing_wear"
    assert d.saves[0].ticket.state == "approved" and not d.saves[0].mirror
    d = record(other, episode=Episode(cur, settled=False), tracked=None, new_id=no_new_id, now=NOW)
    assert d.outcome is Outcome.REVISED and d.saves[0].ticket.state == "open"
    assert "approval withdrawn" in d.entries[0].detail


def test_suppression_counts_only_before_the_alert_has_a_ticket() -> None:
    r = report(alert_id="A-1", stage="update", severity="critical")
    d = record(r, episode=None, tracked=None, new_id=no_new_id, now=NOW, suppressed="shelved")
    assert (d.outcome, d.reason, d.saves) == (Outcome.SUPPRESSED, "shelved", ())
    cur = Stored(ticket(alert_ids=["A-1"], severity="low"))
    d = record(
        r, episode=Episode(cur, False), tracked=None, new_id=no_new_id, now=NOW, suppressed="x"
    )
    assert d.outcome is Outcome.ESCALATED and d.saves[0].ticket.severity == "critical"


def test_a_ticket_given_with_the_tail_of_its_alerts_is_told_which_it_holds() -> None:
    """The store hands the lifecycle the last alert ids only (``engine/tickets/id_lists.py``)
    and says whether the ticket holds the report's alert: an old alert is not added again, a new
    one is, and the alerts shown in the body are the last five either way."""
    tail = [f"A-{i}" for i in range(100, 300)]
    t = ticket(alert_ids=tail, diagnosis_ids=[f"D-{i}" for i in range(100, 300)])
    old = report(alert_id="A-1", root_cause="bearing_wear")
    held = Stored(t, holds_alert=True)
    d = record(old, episode=Episode(held, settled=True), tracked=None, new_id=no_new_id, now=NOW)
    assert d.outcome is Outcome.REFINED and d.saves[0].ticket.alert_ids == tail
    assert d.saves[0].ticket.diagnosis_ids[-1] == old.diagnosis_id
    new = report(alert_id="A-900")
    d = record(new, episode=None, tracked=Stored(t, holds_alert=False), new_id=no_new_id, now=NOW)
    assert d.outcome is Outcome.UPDATED and d.saves[0].ticket.alert_ids == [*tail, "A-900"]
    assert "A-296, A-297, A-298, A-299, A-900" in d.saves[0].ticket.body
