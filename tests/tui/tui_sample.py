"""Deterministic plant data for the TUI's snapshot and widget tests.

Built here, from a seeded generator, rather than by running the simulator and agents: a snapshot
must change only when the *screen* changes, not when another area retunes its physics. Every
message is a real schema model and enters the app through the same ``PlantFeed.ingest`` the bus
uses.
"""

from __future__ import annotations

import functools
import math
import random
from datetime import UTC, datetime, timedelta

from engine.http_schemas import Alarm, AlarmKpis, AssetStatus, ScenarioStatus
from engine.plant.signals import SIGNALS
from engine.schemas import (
    ActiveFault,
    AlertEvent,
    AuditEntry,
    DiagnosisReport,
    Telemetry,
    Ticket,
    Truth,
)
from tui.alarms import AlarmBook
from tui.feed import PlantFeed

NOW = datetime(2025, 11, 19, 6, 30, 0, tzinfo=UTC)
FIXED_CLOCK = NOW.timestamp()

HOSTILE_TITLE = "[@click=app.quit]x"
HOSTILE_BODY = (
    "evidence: \x1b[2J\x1b[31mcleared?\x07 [bold]not bold[/bold] [@click=app.bell]ring[/]"
)


def fixed_clock() -> float:
    return FIXED_CLOCK


@functools.cache
def telemetry(
    asset: str,
    n: int,
    *,
    wear_from: int = 150,
    seed: int = 7,
    spike_at: int | None = None,
    end_ts: float = 3840.0,
) -> tuple[Telemetry, ...]:
    """``n`` one-second samples ending just before ``end_ts``: every plant signal mid-range
    with seeded noise; from ``wear_from`` on, vibration and bearing temperature climb (what
    bearing wear looks like); at ``spike_at`` vibration spikes for three seconds (a knock).
    Cached: the messages are immutable and several tests replay the same hour."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        wear = max(0.0, (i - wear_from) / max(n - wear_from, 1))
        signals = {}
        for name, spec in SIGNALS.items():
            span = spec.hi - spec.lo
            base = spec.lo + span * (0.45 + 0.05 * math.sin(i / 200 + len(name)))
            value = base + rng.gauss(0, span * 0.01)
            if name == "vibration":
                value += wear * span * 0.45
                if spike_at is not None and spike_at <= i < spike_at + 3:
                    value = spec.hi * 0.9
            if name == "bearing_temp":
                value += wear * span * 0.3
            signals[name] = round(value, 3)
        active = (
            [ActiveFault(fault="bearing_wear", severity=round(min(wear, 1.0), 3))] if wear else []
        )
        truth = Truth(
            fault="bearing_wear" if wear else "none",
            severity=round(min(wear, 1.0), 3),
            active=active,
        )
        out.append(
            Telemetry(
                msg_id=f"{asset}-{i}",
                asset=asset,
                seq=i,
                ts=end_ts - n + i,
                signals=signals,
                scenario="chronic_wear",
                truth=truth,
            )
        )
    return tuple(out)


def alert(
    alert_id: str, asset: str, ts: float, severity: str, signals: list[str], status: str = "active"
) -> AlertEvent:
    return AlertEvent(
        alert_id=alert_id,
        asset=asset,
        status=status,  # type: ignore[arg-type]
        ts=ts,
        onset_ts=ts - 5,
        cleared_ts=ts + 60 if status == "cleared" else None,
        severity=severity,  # type: ignore[arg-type]
        score=7.5,
        signals=signals,
        detector="robust_z",
    )


def diagnosis(
    alert_id: str, asset: str, ts: float, root_cause: str, confidence: float
) -> DiagnosisReport:
    return DiagnosisReport(
        diagnosis_id=f"d-{alert_id}",
        alert_id=alert_id,
        asset=asset,
        ts=ts,
        onset_ts=ts - 5,
        root_cause=root_cause,  # type: ignore[arg-type]
        confidence=confidence,
        category="mechanical",
        severity="high",
        summary="Vibration rising with bearing temperature at constant load.",
        signals=["vibration", "bearing_temp"],
    )


def ticket(
    ticket_id: str,
    *,
    asset: str = "pump01",
    title: str = "Bearing wear on pump01",
    body: str = "Vibration 4.9 mm/s (ISO zone C/D) and bearing 78 °C rising.\nReplace DE bearing.",
    state: str = "open",
    severity: str = "high",
    root_cause: str = "bearing_wear",
    age_minutes: float = 12,
    occurrences: int = 1,
    revision: int = 1,
    close_reason: str | None = None,
) -> Ticket:
    created = NOW - timedelta(minutes=age_minutes)
    history = [AuditEntry(at=created, who="agent-ticket", action="create", detail="from diagnosis")]
    if state in ("approved", "closed"):
        history.append(AuditEntry(at=created + timedelta(minutes=2), who="alice", action="approve"))
    if state == "closed":
        history.append(
            AuditEntry(
                at=created + timedelta(minutes=5),
                who="bob",
                action="close",
                detail=close_reason or "",
            )
        )
    return Ticket(
        ticket_id=ticket_id,
        asset=asset,
        title=title,
        body=body,
        labels=["pump", root_cause],
        severity=severity,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        root_cause=root_cause,  # type: ignore[arg-type]
        category="mechanical",
        confidence=0.82,
        signals=["vibration", "bearing_temp"],
        occurrences=occurrences,
        first_seen_ts=3700.0,
        last_seen_ts=3900.0,
        created_at=created,
        updated_at=created + timedelta(minutes=5 if state == "closed" else 0),
        close_reason=close_reason,  # type: ignore[arg-type]
        revision=revision,
        history=history,
    )


def sample_tickets() -> list[Ticket]:
    return [
        ticket("T-0001", occurrences=3, age_minutes=42),
        ticket(
            "T-0002",
            asset="pump02",
            title=HOSTILE_TITLE,
            body=HOSTILE_BODY,
            severity="medium",
            root_cause="sensor_drift",
            age_minutes=7,
        ),
        ticket("T-0003", state="approved", severity="low", root_cause="clogging", age_minutes=150),
        ticket(
            "T-0004",
            state="closed",
            close_reason="false_positive",
            severity="low",
            root_cause="noise_burst",
            age_minutes=600,
        ),
    ]


def sample_feed(ticks: int = 3600) -> PlantFeed:
    """pump01: an hour whose second half wears (vibration and bearing temperature rise) with a
    vibration spike a quarter in; pump02: a healthy minute; three alarm episodes; four tickets."""
    feed = PlantFeed()
    for t in telemetry("pump01", ticks, wear_from=ticks // 2, spike_at=ticks // 4):
        feed.ingest(t)
    for t in telemetry("pump02", 60, wear_from=10_000, seed=11):
        feed.ingest(t)
    feed.ingest(alert("a-1", "pump01", 1145.0, "medium", ["vibration"], status="cleared"))
    feed.ingest(alert("a-2", "pump02", 3800.0, "low", ["flow"]))
    feed.ingest(alert("a-3", "pump01", 3140.0, "high", ["vibration", "bearing_temp"]))
    feed.ingest(diagnosis("a-3", "pump01", 3170.0, "bearing_wear", 0.82))
    feed.put_tickets(sample_tickets())
    return feed


FLEET_SIZE = 40


def fleet_feed() -> tuple[PlantFeed, list[float]]:
    """``FLEET_SIZE`` pumps for the fleet view: most healthy, a few in alarm at each priority,
    one returned to normal, one silent (stale), one stopped, tickets on some. Returns the feed
    and its wall clock (a one-element list a test can move)."""
    clock = [1000.0]
    feed = PlantFeed(clock=lambda: clock[0])
    silent = "pump07"
    for i in range(FLEET_SIZE):
        asset = f"pump{i + 1:02d}"
        clock[0] = 980.0 if asset == silent else 1000.0
        samples = telemetry(asset, 60, wear_from=30 if i % 9 == 2 else 10_000, seed=i)
        for t in samples:
            if asset == "pump12":  # stopped by the operator
                t = t.model_copy(update={"signals": {**t.signals, "speed": 0.0, "flow": 0.0}})
            feed.ingest(t)
    clock[0] = 1000.0
    for k, (asset, severity) in enumerate(
        [("pump03", "critical"), ("pump21", "high"), ("pump30", "medium"), ("pump39", "low")]
    ):
        feed.ingest(alert(f"f-{k}", asset, 3830.0 - k * 60, severity, ["vibration"]))
    feed.ingest(diagnosis("f-0", "pump03", 3835.0, "bearing_wear", 0.9))
    feed.ingest(alert("f-9", "pump15", 3700.0, "medium", ["flow"], status="cleared"))
    feed.put_tickets(
        [
            ticket("T-0101", asset="pump03", severity="critical"),
            ticket("T-0102", asset="pump21", root_cause="clogging"),
            ticket("T-0103", asset="pump33", state="approved", root_cause="sensor_drift"),
        ]
    )
    return feed, clock


def sample_alarm_book() -> AlarmBook:
    """The store's side of ``sample_feed``'s episodes, made by the real alarm state machine:
    a-3 acknowledged then escalated (re-annunciated), a-1 returned to normal unacknowledged,
    a-2 unacknowledged; plus, raised before the TUI connected, one shelved and one raised on an
    asset out of service."""
    from engine.alarms import lifecycle as lc

    def opened(a: AlertEvent, at: datetime) -> Alarm:
        return lc.open_alarm(a, lc.Context(), at)

    t = NOW - timedelta(minutes=20)
    a1 = opened(alert("a-1", "pump01", 1145.0, "medium", ["vibration"]), t)
    cleared = alert("a-1", "pump01", 1145.0, "medium", ["vibration"], status="cleared")
    a1 = lc.apply_alert(a1, cleared.model_copy(update={"revision": 1}), t) or a1
    a2 = opened(alert("a-2", "pump02", 3800.0, "low", ["flow"]), t)
    a3 = opened(alert("a-3", "pump01", 3140.0, "medium", ["vibration", "bearing_temp"]), t)
    a3 = lc.acknowledge(a3, "alice", t + timedelta(minutes=2), "crew on the way")
    rise = alert("a-3", "pump01", 3300.0, "high", ["vibration", "bearing_temp"])
    a3 = lc.apply_alert(a3, rise.model_copy(update={"revision": 1}), t + timedelta(minutes=5)) or a3
    a4 = opened(alert("a-4", "pump03", 3000.0, "high", ["discharge_pressure"]), t)
    a4 = lc.shelve(a4, "bob", t, minutes=60, note="valve stroking test")
    # raised while its asset was out of service: in the KPIs' load, not in the operator's rate
    out = lc.Context(out_of_service_reason="impeller change")
    a5 = lc.open_alarm(alert("a-5", "pump04", 2900.0, "medium", ["flow"]), out, t)
    book = AlarmBook()
    book.replace([a1, a2, a3, a4, a5])
    book.set_assets(
        [
            AssetStatus(
                asset="pump04", out_of_service=True, reason="impeller change", since=t, by="bob"
            )
        ]
    )
    return book


def sample_kpis() -> AlarmKpis:
    """The KPI panel's figures for ``sample_alarm_book``, by the review service's own code."""
    from engine.alarms.kpis import compute, sample_of

    alarms = sample_alarm_book().open_alarms()
    return compute([sample_of(a) for a in alarms], 0.0, 4 * 3600.0)


def scenario_status(**over: object) -> ScenarioStatus:
    """The simulator's status for the snapshot and key tests (chronic_wear running at ×240)."""
    fields: dict[str, object] = {
        "loaded": True,
        "name": "chronic_wear",
        "scenarios": ["chronic_wear"],
        "assets": ["pump01"],
        "seeds": [2],
        "running": True,
        "done": False,
        "speed": 240.0,
        "rate_hz": 1.0,
        "sim_time": 3839.0,
        "pause_at": None,
        "duration": 28800.0,
        "ticks": 3839,
        "published": 3839,
    }
    return ScenarioStatus.model_validate({**fields, **over})
