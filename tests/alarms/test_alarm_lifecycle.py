"""The alarm state machine on its own: every transition, and every refusal, by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alarm_data import T0, alert

from engine.alarms import lifecycle as lc
from engine.alarms.lifecycle import Context, IllegalTransition

NOW = T0


def raised(severity: str = "medium", **ctx: object) -> lc.Alarm:
    return lc.open_alarm(alert(severity=severity), Context(**ctx), NOW)  # type: ignore[arg-type]


def actions(a: lc.Alarm) -> list[str]:
    return [e.action for e in a.history]


def test_raise_ack_clear_is_a_to_b_to_c_to_a() -> None:
    a = raised()
    assert (a.state, a.active, a.acknowledged, a.priority) == (
        "unacknowledged",
        True,
        False,
        "medium",
    )
    assert a.source == "pump01/vibration" and a.plant_raised == 1000.0
    a = lc.acknowledge(a, "ana", NOW, note="seen, walking down")
    assert (a.state, a.acknowledged_by) == ("acknowledged", "ana")
    assert a.history[-1].note == "seen, walking down" and a.history[-1].who == "ana"
    a = lc.apply_alert(a, alert(status="cleared", ts=1600.0, revision=1), NOW)
    assert a is not None and a.state == "normal" and a.plant_cleared == 1600.0
    assert actions(a) == ["raised", "acknowledged", "returned_to_normal"]


def test_return_to_normal_unacknowledged_then_ack() -> None:
    a = lc.apply_alert(raised(), alert(status="cleared", revision=1), NOW)
    assert a is not None and a.state == "returned_unacknowledged"
    assert lc.acknowledge(a, "ana", NOW).state == "normal"


def test_ack_twice_is_refused_naming_who() -> None:
    a = lc.acknowledge(raised(), "ana", NOW)
    with pytest.raises(IllegalTransition, match="already acknowledged by ana"):
        lc.acknowledge(a, "ben", NOW)


def test_escalation_reannunciates_and_keeps_the_highest_priority() -> None:
    a = lc.acknowledge(raised("medium"), "ana", NOW)
    b = lc.apply_alert(a, alert(severity="high", revision=1), NOW)
    assert b is not None and (b.priority, b.acknowledged, b.state) == (
        "high",
        False,
        "unacknowledged",
    )
    assert "re-annunciated" in b.history[-1].detail and b.reannunciations == 1
    # an older or repeated revision changes nothing; a lower severity never lowers the priority
    assert lc.apply_alert(b, alert(severity="high", revision=1), NOW) is None
    assert lc.apply_alert(b, alert(severity="low", revision=0), NOW) is None
    c = lc.apply_alert(b, alert(severity="low", revision=2), NOW)
    assert c is not None and c.priority == "high" and c.revision == 2


def test_critical_latches_until_acknowledged_at_return_to_normal() -> None:
    a = lc.apply_alert(raised("high"), alert(severity="critical", revision=1), NOW)
    assert a is not None and a.latched
    a = lc.acknowledge(a, "ana", NOW)
    a = lc.apply_alert(a, alert(status="cleared", severity="critical", revision=2), NOW)
    assert a is not None and (a.state, a.acknowledged, a.latched) == ("latched", False, True)
    a = lc.acknowledge(a, "ana", NOW)
    assert (a.state, a.latched) == ("normal", False)
    assert "latch reset" in a.history[-1].detail
    # a non-critical alarm acknowledged while active is simply normal at its clear
    b = lc.apply_alert(
        lc.acknowledge(raised("high"), "ana", NOW), alert(status="cleared", revision=1), NOW
    )
    assert b is not None and b.state == "normal"


def test_timed_shelve_expires_and_the_alarm_annunciates_again() -> None:
    a = lc.shelve(raised(), "ana", NOW, minutes=30, note="known, valve work")
    assert (a.state, a.shelved, a.shelved_until) == (
        "shelved",
        "timed",
        NOW + timedelta(minutes=30),
    )
    assert lc.expire_shelve(a, NOW + timedelta(minutes=29)) is None
    b = lc.expire_shelve(a, NOW + timedelta(minutes=30))
    assert b is not None and (b.state, b.shelved) == ("unacknowledged", None)
    assert b.history[-1].action == "shelve_expired" and b.history[-1].who == lc.SYSTEM


def test_shelve_until_clear_ends_at_return_to_normal() -> None:
    a = lc.shelve(raised(), "ana", NOW, until_clear=True)
    assert a.shelved == "until_clear" and a.shelved_until is None
    b = lc.apply_alert(a, alert(status="cleared", revision=1), NOW)
    assert b is not None and b.shelved is None and b.state == "returned_unacknowledged"
    assert actions(b)[-2:] == ["returned_to_normal", "unshelved"]


def test_shelve_refusals() -> None:
    a = raised()
    with pytest.raises(lc.AlarmError, match="1 to 480 minutes"):
        lc.shelve(a, "ana", NOW, minutes=481)
    with pytest.raises(lc.AlarmError, match="either minutes or until_clear"):
        lc.shelve(a, "ana", NOW, minutes=5, until_clear=True)
    timed = lc.shelve(a, "ana", NOW, minutes=5)
    with pytest.raises(IllegalTransition, match="unshelve it first"):
        lc.shelve(timed, "ben", NOW, minutes=10)
    # timed <-> one-shot is a legal move (OPC UA)
    assert lc.shelve(timed, "ben", NOW, until_clear=True).shelved == "until_clear"
    with pytest.raises(IllegalTransition, match="is not shelved"):
        lc.unshelve(a, "ana", NOW)
    over = lc.acknowledge(lc.apply_alert(a, alert(status="cleared", revision=1), NOW), "ana", NOW)  # type: ignore[arg-type]
    with pytest.raises(IllegalTransition, match="nothing to shelve"):
        lc.shelve(over, "ana", NOW, minutes=5)
    with pytest.raises(IllegalTransition, match="needs an active alarm"):
        lc.shelve(over, "ana", NOW, until_clear=True)


def test_escalation_ends_a_shelve() -> None:
    a = lc.shelve(raised("medium"), "ana", NOW, minutes=60)
    b = lc.apply_alert(a, alert(severity="high", revision=1), NOW)
    assert b is not None and b.shelved is None and b.state == "unacknowledged"
    assert actions(b)[-2:] == ["escalated", "unshelved"]


def test_a_new_episode_of_a_shelved_source_starts_shelved() -> None:
    shelf = lc.shelve(raised("high"), "ana", NOW, minutes=60)
    later = NOW + timedelta(minutes=10)
    b = lc.open_alarm(alert("pump01-A2", severity="medium"), Context(source_shelf=shelf), later)
    assert (b.state, b.shelved_until, b.shelved_by) == ("shelved", shelf.shelved_until, "ana")
    # not when the new episode is worse than what was shelved, nor after the shelve ran out
    worse = lc.open_alarm(
        alert("pump01-A3", severity="critical"), Context(source_shelf=shelf), later
    )
    assert worse.shelved is None
    gone = lc.open_alarm(alert("pump01-A4"), Context(source_shelf=shelf), NOW + timedelta(hours=2))
    assert gone.shelved is None


def test_out_of_service_alarm_needs_no_ack_and_annunciates_back_in_service() -> None:
    a = raised(out_of_service_reason="bearing change, permit 42")
    assert a.state == "out_of_service" and actions(a) == ["raised", "out_of_service"]
    with pytest.raises(IllegalTransition, match="out of service"):
        lc.shelve(a, "ana", NOW, minutes=5)
    back = lc.set_out_of_service(a, False, "ana", NOW)
    assert back is not None and back.state == "unacknowledged"
    assert lc.set_out_of_service(back, False, "ana", NOW) is None
    cleared = lc.apply_alert(a, alert(status="cleared", revision=1), NOW)
    assert cleared is not None and cleared.acknowledged and cleared.acknowledged_by is None
    assert lc.set_out_of_service(cleared, False, "ana", NOW).state == "normal"  # type: ignore[union-attr]


def test_chattering_third_raise_within_a_minute_is_flagged_and_suppressed() -> None:
    quiet = lc.open_alarm(alert(ts=1000.0), Context(recent_raises=[900.0, 930.0]), NOW)
    assert not quiet.chattering  # only one earlier raise inside the window
    a = lc.open_alarm(alert(ts=1000.0), Context(recent_raises=[950.0, 975.0]), NOW)
    assert a.chattering and a.suppressed and a.state == "suppressed"
    assert "3 raises of pump01/vibration within 60 s" in a.history[-1].detail
    assert lc.suppression(a, None, None, NOW) == lc.Suppression(
        "chattering", "pump01/vibration is chattering (suppressed)"
    )
    # returning to normal while suppressed needs no acknowledgement
    b = lc.apply_alert(a, alert(status="cleared", revision=1), NOW)
    assert b is not None and b.state == "normal"
    relaxed = lc.Policy(suppress_chattering=False)
    c = lc.open_alarm(alert(ts=1000.0), Context(recent_raises=[950.0, 975.0]), NOW, relaxed)
    assert c.chattering and not c.suppressed and c.state == "unacknowledged"


def test_a_clear_seen_without_its_raise_makes_a_returned_alarm() -> None:
    a = lc.open_alarm(
        alert(status="cleared", ts=1300.0, revision=3, onset_ts=1200.0), Context(), NOW
    )
    assert (a.state, a.active, a.raised_ts, a.plant_cleared) == (
        "returned_unacknowledged",
        False,
        1200.0,
        1300.0,
    )
    assert lc.apply_alert(a, alert(revision=4), NOW) is None  # nothing after the clear


def test_suppression_for_the_ticket_path() -> None:
    a = raised()
    assert lc.suppression(a, None, None, NOW) is None
    assert lc.suppression(None, "maintenance", None, NOW).reason == "out_of_service"  # type: ignore[union-attr]
    shelved = lc.shelve(a, "ana", NOW, minutes=10)
    assert lc.suppression(shelved, None, None, NOW).reason == "shelved"  # type: ignore[union-attr]
    assert lc.suppression(shelved, None, None, NOW + timedelta(minutes=10)) is None
    # an alert not recorded yet whose source is shelved
    assert lc.suppression(None, None, shelved, NOW).reason == "shelved"  # type: ignore[union-attr]


def test_plant_offset_puts_a_run_on_the_stitched_timeline() -> None:
    a = lc.open_alarm(alert(ts=100.0), Context(plant_offset=28_800.0), NOW)
    b = lc.apply_alert(a, alert(status="cleared", ts=400.0, revision=1), NOW)
    assert (a.plant_raised, b.plant_cleared) == (28_900.0, 29_200.0)  # type: ignore[union-attr]
