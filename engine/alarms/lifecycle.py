"""The alarm state machine (ISA-18.2 / IEC 62682, OPC UA Part 9): pure, no I/O, no clock.

An alarm is one alert episode. Its condition is **active** or **returned to normal** (RTN), and
independently **acknowledged** or not: ISA-18.2's states A (normal), B (active, unacknowledged),
C (active, acknowledged), D (RTN, unacknowledged). On top of those:

- **Latching** (state E): an alarm whose priority is (or becomes) critical latches. When it
  returns to normal it is unacknowledged again, even if it was acknowledged while active, and
  stays there until an operator acknowledges it at RTN (that acknowledgement is the reset).
- **Priority** follows the monitor's escalating severity and never drops. An escalation while
  acknowledged makes the alarm unacknowledged again (re-annunciated). It also ends a shelve or
  a chattering suppression: what the operator shelved was the alarm at its old priority.
- **Shelving** (F, OPC UA's ShelvedStateMachine): timed, for 1..``max_shelve_minutes``, ending
  by itself (``expire_shelve``); or one-shot, until the alarm returns to normal. Timed <-> one-shot
  is allowed, timed -> timed is not (unshelve first), as in OPC UA. A new episode of a source
  whose timed shelve is still running starts shelved for what is left of it: a shelve is meant
  for the tag, and a chattering tag is a new episode every minute.
- **Out of service** (H) is per asset (maintenance) with a reason; its alarms are recorded and
  counted but not annunciated. Back in service, an alarm still active annunciates.
- **Chattering**: the ``chatter_raises``-th raise of one source within ``chatter_window_s`` of
  plant time (3 in 60 s) is flagged, and with ``suppress_chattering`` suppressed (G): recorded
  and counted, not annunciated, until it escalates or returns to normal.

An alarm keeps how it was presented at its raise (``raised_as``: annunciated, or withheld as out
of service, shelved or suppressed), which the KPIs' rates count on. Alarms that were not
annunciated when they returned to normal (out of service, suppressed) need no acknowledgement.
Every transition appends ``AlarmEvent`` lines to ``history``; an illegal one raises
``IllegalTransition`` with a sentence for the operator and changes nothing.

Times: ``now`` is the operator's wall clock (UTC), injected by the caller; ``onset_ts`` and the
raise times used for chattering are the plant's clock (``AlertEvent.ts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from engine.http_schemas import (
    MAX_SHELVE_MINUTES,
    PRIORITIES,
    Alarm,
    AlarmAction,
    AlarmEvent,
    AlarmState,
    Priority,
)
from engine.schemas import AlertEvent

AGENT = "agent-monitor"
"""Signs the transitions the monitor's alerts cause (raise, escalation, return to normal)."""
SYSTEM = "system"
"""Signs the transitions the service makes by itself (shelve expiry, inherited shelve)."""


@dataclass(frozen=True)
class Policy:
    max_shelve_minutes: int = MAX_SHELVE_MINUTES
    latch_priority: Priority = "critical"
    chatter_raises: int = 3
    chatter_window_s: float = 60.0
    suppress_chattering: bool = True


DEFAULT_POLICY = Policy()


class AlarmError(Exception):
    """Base of the lifecycle's refusals; the message is fit for an operator."""


class IllegalTransition(AlarmError):
    """The alarm's state does not allow the action."""


class AlarmNotFound(AlarmError, LookupError):
    pass


@dataclass(frozen=True)
class Context:
    """What the store knows around an alarm it sees for the first time."""

    plant_offset: float = 0.0
    """Added to the alert's plant times to put this run on the stitched plant timeline."""
    out_of_service_reason: str | None = None
    """The asset is out of service, for this reason."""
    source_shelf: Alarm | None = None
    """The latest alarm of the same source, if its timed shelve is still running."""
    recent_raises: Sequence[float] = ()
    """Stitched plant times of earlier raises of the same source (any order, any age)."""


@dataclass(frozen=True)
class Suppression:
    """Why an alarm must not open a ticket (contract C6)."""

    reason: Literal["shelved", "out_of_service", "chattering"]
    detail: str


def rank(priority: str) -> int:
    return PRIORITIES.index(priority)


def alert_revision(alert: AlertEvent) -> int:
    """The alert's revision (contract C1); before C1, a raise is 0 and its clear 1."""
    rev = getattr(alert, "revision", None)
    if isinstance(rev, int):
        return rev
    return 0 if alert.status == "active" else 1


def source_of(asset: str, signals: Sequence[str]) -> str:
    return f"{asset}/{signals[0]}" if signals else asset


def state_of(a: Alarm) -> AlarmState:
    if a.out_of_service:
        return "out_of_service"
    if a.shelved is not None:
        return "shelved"
    if a.suppressed and a.active:
        return "suppressed"
    if a.active:
        return "acknowledged" if a.acknowledged else "unacknowledged"
    if not a.acknowledged:
        return "latched" if a.latched else "returned_unacknowledged"
    return "normal"


def is_annunciated(a: Alarm) -> bool:
    """Shown to the operator as an alarm (not shelved, suppressed or out of service)."""
    return not (a.out_of_service or a.shelved is not None or a.suppressed)


def is_chattering(earlier: Sequence[float], t: float, policy: Policy = DEFAULT_POLICY) -> bool:
    """A raise at plant time ``t`` chatters when, with the earlier raises of its source in the
    window before it, it makes ``chatter_raises``. Shared with the KPIs."""
    lo = t - policy.chatter_window_s
    return sum(1 for x in earlier if lo <= x <= t) + 1 >= policy.chatter_raises


# ---- helpers ---------------------------------------------------------------------------------


def _event(
    now: datetime, who: str, action: AlarmAction, detail: str = "", note: str | None = None
) -> AlarmEvent:
    return AlarmEvent(at=now, who=who, action=action, note=note, detail=detail[:500])


def _settle(a: Alarm, now: datetime, events: Sequence[AlarmEvent], **update: object) -> Alarm:
    """The alarm with ``update`` applied, the events appended and its one-word state derived."""
    new = a.model_copy(update={**update, "updated_at": now, "history": [*a.history, *events]})
    return new.model_copy(update={"state": state_of(new)})


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%SZ") if t else "?"


def _shelf_text(a: Alarm) -> str:
    if a.shelved == "until_clear":
        return f"shelved until it clears (by {a.shelved_by})"
    return f"shelved until {_when(a.shelved_until)} (by {a.shelved_by})"


# ---- alerts (the monitor) --------------------------------------------------------------------


def open_alarm(
    alert: AlertEvent, ctx: Context, now: datetime, policy: Policy = DEFAULT_POLICY
) -> Alarm:
    """The alarm for an alert id seen for the first time (normally its raise; a clear when the
    raise was missed, e.g. the service was down)."""
    raised_ts = alert.ts if alert.status == "active" else alert.onset_ts
    plant_raised = max(0.0, ctx.plant_offset + raised_ts)
    priority = alert.severity
    signals = list(dict.fromkeys(alert.signals))
    source = source_of(alert.asset, signals)
    events = [
        _event(
            now,
            AGENT,
            "raised",
            f"{priority} on {', '.join(signals)} ({alert.detector}, score {alert.score:g})"
            + ("; seen only at its clear" if alert.status == "cleared" else ""),
        )
    ]
    update: dict[str, object] = {}
    if ctx.out_of_service_reason is not None:
        update |= {"out_of_service": True, "out_of_service_reason": ctx.out_of_service_reason}
        events.append(
            _event(
                now,
                SYSTEM,
                "out_of_service",
                f"asset is out of service: {ctx.out_of_service_reason}",
            )
        )
    shelf = ctx.source_shelf
    if (
        shelf is not None
        and shelf.shelved == "timed"
        and shelf.shelved_until is not None
        and shelf.shelved_until > now
        and rank(priority) <= rank(shelf.priority)
    ):
        update |= {
            "shelved": "timed",
            "shelved_until": shelf.shelved_until,
            "shelved_by": shelf.shelved_by,
        }
        events.append(
            _event(
                now,
                SYSTEM,
                "shelved",
                f"{source} is shelved until {_when(shelf.shelved_until)} by {shelf.shelved_by} "
                f"(alarm {shelf.alarm_id})",
            )
        )
    chattering = is_chattering(ctx.recent_raises, plant_raised, policy)
    if chattering:
        update |= {"chattering": True, "suppressed": policy.suppress_chattering}
        n = sum(
            1
            for x in ctx.recent_raises
            if plant_raised - policy.chatter_window_s <= x <= plant_raised
        )
        events.append(
            _event(
                now,
                SYSTEM,
                "chattering",
                f"{n + 1} raises of {source} within {policy.chatter_window_s:g} s of plant time"
                + ("; suppressed" if policy.suppress_chattering else ""),
            )
        )
    alarm = Alarm(
        alarm_id=alert.alert_id,
        asset=alert.asset,
        source=source,
        signals=signals,
        detector=alert.detector,
        revision=0 if alert.status == "cleared" else alert_revision(alert),
        priority=priority,
        state="unacknowledged",
        active=True,
        acknowledged=False,
        latched=rank(priority) >= rank(policy.latch_priority),
        raised_at=now,
        updated_at=now,
        onset_ts=alert.onset_ts,
        raised_ts=raised_ts,
        plant_raised=plant_raised,
    )
    withheld = [k for k in ("out_of_service", "shelved", "suppressed") if update.get(k)]
    alarm = _settle(alarm, now, events, **update, raised_as=(withheld or ["annunciated"])[0])
    if alert.status == "cleared":
        cleared = apply_alert(alarm, alert, now, policy)
        assert cleared is not None
        alarm = cleared
    return alarm


def apply_alert(
    a: Alarm, alert: AlertEvent, now: datetime, policy: Policy = DEFAULT_POLICY
) -> Alarm | None:
    """A later publication of the alarm's alert: an escalation, a repeat, or its clear. None:
    nothing to do (an older or repeated revision, or anything after the clear)."""
    if not a.active:
        return None
    rev = alert_revision(alert)
    if alert.status == "active" and rev <= a.revision:
        return None
    events: list[AlarmEvent] = []
    update: dict[str, object] = {"revision": max(rev, a.revision)}
    signals = list(dict.fromkeys([*a.signals, *alert.signals]))[:64]
    if signals != a.signals:
        update["signals"] = signals
    acknowledged, latched = a.acknowledged, a.latched
    shelved: str | None = a.shelved
    suppressed = a.suppressed
    if rank(alert.severity) > rank(a.priority):
        detail = f"{a.priority} -> {alert.severity}"
        if acknowledged:
            acknowledged = False
            update["reannunciations"] = a.reannunciations + 1
            detail += "; re-annunciated (was acknowledged)"
        if rank(alert.severity) >= rank(policy.latch_priority) and not latched:
            latched = True
            detail += "; latching"
        events.append(_event(now, AGENT, "escalated", detail))
        if shelved is not None:
            detail = f"escalated to {alert.severity}: {_shelf_text(a)} ends"
            events.append(_event(now, SYSTEM, "unshelved", detail))
            shelved = None
        if suppressed:
            suppressed = False
            detail = f"escalated to {alert.severity}: no longer suppressed as chattering"
            events.append(_event(now, SYSTEM, "chattering", detail))
        update["priority"] = alert.severity
    if alert.status == "cleared":
        cleared_ts = alert.cleared_ts if alert.cleared_ts is not None else alert.ts
        plant_cleared = a.plant_raised + max(0.0, cleared_ts - a.raised_ts)
        update |= {
            "active": False,
            "cleared_at": now,
            "cleared_ts": cleared_ts,
            "plant_cleared": plant_cleared,
        }
        detail = ""
        if a.out_of_service or suppressed:
            why = "out of service" if a.out_of_service else "suppressed as chattering"
            if not acknowledged:
                detail = f"was not annunciated ({why}): needs no acknowledgement"
            acknowledged = True
        elif latched:
            if acknowledged:
                detail = "latched: acknowledge again to reset"
            else:
                detail = "latched: acknowledge to reset"
            acknowledged = False
        events.append(_event(now, AGENT, "returned_to_normal", detail))
        if shelved == "until_clear":
            events.append(
                _event(now, SYSTEM, "unshelved", "returned to normal (shelved until clear)")
            )
            shelved = None
    update |= {"acknowledged": acknowledged, "latched": latched, "suppressed": suppressed}
    if shelved is None and a.shelved is not None:
        update |= {"shelved": None, "shelved_until": None, "shelved_by": None}
    return _settle(a, now, events, **update)


# ---- operators -------------------------------------------------------------------------------


def acknowledge(a: Alarm, who: str, now: datetime, note: str | None = None) -> Alarm:
    if a.acknowledged:
        by = f" by {a.acknowledged_by} at {_when(a.acknowledged_at)}" if a.acknowledged_by else ""
        raise IllegalTransition(f"alarm {a.alarm_id} is already acknowledged{by}")
    if a.active:
        detail = "while active"
    elif a.latched:
        detail = "after return to normal: latch reset"
    else:
        detail = "after return to normal"
    return _settle(
        a,
        now,
        [_event(now, who, "acknowledged", detail, note)],
        acknowledged=True,
        acknowledged_by=who,
        acknowledged_at=now,
        latched=a.latched and a.active,
    )


def shelve(
    a: Alarm,
    who: str,
    now: datetime,
    *,
    minutes: int | None = None,
    until_clear: bool = False,
    note: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Alarm:
    if (minutes is None) == (not until_clear):
        raise AlarmError("shelve needs either minutes or until_clear (not both)")
    if minutes is not None and not 1 <= minutes <= policy.max_shelve_minutes:
        raise AlarmError(f"shelve for 1 to {policy.max_shelve_minutes} minutes, not {minutes}")
    if a.out_of_service:
        raise IllegalTransition(
            f"alarm {a.alarm_id}: asset {a.asset} is out of service "
            f"({a.out_of_service_reason}); its alarms are not annunciated anyway"
        )
    if a.shelved == "timed" and minutes is not None:
        raise IllegalTransition(
            f"alarm {a.alarm_id} is already {_shelf_text(a)}; unshelve it first to change the time"
        )
    if a.shelved == "until_clear" and until_clear:
        raise IllegalTransition(f"alarm {a.alarm_id} is already {_shelf_text(a)}")
    if not a.active and until_clear:
        raise IllegalTransition(
            f"alarm {a.alarm_id} has returned to normal; 'until clear' needs an active alarm"
        )
    if not a.active and a.acknowledged and a.shelved is None:
        raise IllegalTransition(
            f"alarm {a.alarm_id} has returned to normal and is acknowledged: nothing to shelve"
        )
    if until_clear:
        until, detail = None, "until it clears"
    else:
        assert minutes is not None
        until = now + timedelta(minutes=minutes)
        detail = f"for {minutes} min, until {_when(until)}"
    if a.shelved is not None:
        detail += f" (was {_shelf_text(a)})"
    return _settle(
        a,
        now,
        [_event(now, who, "shelved", detail, note)],
        shelved="until_clear" if until_clear else "timed",
        shelved_until=until,
        shelved_by=who,
    )


def unshelve(a: Alarm, who: str, now: datetime, note: str | None = None) -> Alarm:
    if a.shelved is None:
        raise IllegalTransition(f"alarm {a.alarm_id} is not shelved")
    return _settle(
        a,
        now,
        [_event(now, who, "unshelved", f"was {_shelf_text(a)}", note)],
        shelved=None,
        shelved_until=None,
        shelved_by=None,
    )


def shelve_due(a: Alarm, now: datetime) -> bool:
    return a.shelved == "timed" and a.shelved_until is not None and a.shelved_until <= now


def expire_shelve(a: Alarm, now: datetime) -> Alarm | None:
    """The alarm with its timed shelve ended, if its time has come; else None."""
    if not shelve_due(a, now):
        return None
    detail = f"shelved by {a.shelved_by} until {_when(a.shelved_until)}: time is up"
    return _settle(
        a,
        now,
        [_event(now, SYSTEM, "shelve_expired", detail)],
        shelved=None,
        shelved_until=None,
        shelved_by=None,
    )


def set_out_of_service(
    a: Alarm, on: bool, who: str, now: datetime, reason: str | None = None
) -> Alarm | None:
    """Follow the asset into or out of service. None: the alarm is unaffected (already in that
    state, or over: returned to normal and acknowledged)."""
    if a.out_of_service == on:
        return None
    if on and not a.active and a.acknowledged and a.shelved is None:
        return None
    if on:
        return _settle(
            a,
            now,
            [_event(now, who, "out_of_service", f"asset out of service: {reason}")],
            out_of_service=True,
            out_of_service_reason=reason,
        )
    detail = "asset back in service" + ("; still active: annunciated" if a.active else "")
    return _settle(
        a,
        now,
        [_event(now, who, "returned_to_service", detail)],
        out_of_service=False,
        out_of_service_reason=None,
    )


def suppression(
    alarm: Alarm | None,
    out_of_service_reason: str | None,
    source_shelf: Alarm | None,
    now: datetime,
) -> Suppression | None:
    """Why no ticket may open for this alarm, or None (contract C6). ``alarm`` may be None when
    the alert is not recorded yet: the asset and its source's running shelve still count."""
    if out_of_service_reason is not None:
        return Suppression("out_of_service", f"asset out of service: {out_of_service_reason}")
    if alarm is not None and alarm.out_of_service:
        return Suppression("out_of_service", f"asset out of service: {alarm.out_of_service_reason}")
    if alarm is not None and alarm.shelved is not None and not shelve_due(alarm, now):
        return Suppression("shelved", _shelf_text(alarm))
    if alarm is not None and alarm.suppressed:
        return Suppression("chattering", f"{alarm.source} is chattering (suppressed)")
    if (
        alarm is None
        and source_shelf is not None
        and source_shelf.shelved == "timed"
        and not shelve_due(source_shelf, now)
    ):
        return Suppression("shelved", f"{source_shelf.source} is {_shelf_text(source_shelf)}")
    return None
