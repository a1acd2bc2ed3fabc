"""Scoring a run against the simulator's ground truth, from the message stream alone.

Input is any sequence of messages — telemetry carrying ``truth``, alerts, diagnoses — in the order
they were produced: an accelerated replay, or a live run's JSONL logs (``controlroom report``).
Nothing here knows how the messages were made.

Definitions (event level; all times are simulated seconds):

- A **fault event** is one scripted fault on one asset: (fault, sensor, onset) as carried in
  ``truth.active``; its window runs from onset to the last tick it is active.
- An alert (its "active" message) is a **hit** when it is raised inside some event's window, or
  within ``GRACE_S`` after the event ended (the recovery transient of a sensor coming back);
  otherwise a **false alarm**. Precision = hits / alerts.
- Each hit is assigned to one event: among the events whose window holds it, the most recent onset
  not yet detected (else the most recent). An event is **detected** when an alert is assigned to
  it; an event with none but inside an already-active hit episode counts as detected *by
  overlap* (reported apart; it has no latency). Recall = detected / events. Events that were never
  observable (a stuck valve whose command never moved) are reported and left out of recall.
- **Latency** = raise time − onset (for a stuck valve: − the first tick its command moved away;
  ``latency_from_onset`` gives the raw figure too). Sudden faults reach their peak within two
  minutes; for gradual ones the **severity at detection** is the truth severity when raised.
- **False alarms per day** = false alarms / fault-free time (ticks with no fault active and not
  within ``GRACE_S`` after one), in days.
- **Diagnosis top-1**: the final diagnosis of the event's alert names the event's fault (the
  provisional one, made at the alert, is scored apart as ``provisional``).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise

from engine.schemas import AlertEvent, DiagnosisReport, PlantMessage, Telemetry

GRACE_S = 300.0


@dataclass
class EventScore:
    asset: str
    fault: str
    sensor: str | None
    onset: float
    end: float
    sudden: bool
    peak: float
    observable_from: float | None
    detected: bool = False
    by_overlap: bool = False
    alert_id: str | None = None
    raised: float | None = None
    latency: float | None = None
    latency_from_onset: float | None = None
    severity_at_detection: float | None = None
    diagnosis: str | None = None
    """Root cause named by the final diagnosis of the event's alert ("(none)" if never made)."""
    provisional: str | None = None
    """Root cause named by the provisional diagnosis made at the alert, if any."""
    alerts: int = 0

    @property
    def observable(self) -> bool:
        return self.observable_from is not None

    @property
    def label(self) -> str:
        return f"{self.fault}({self.sensor})" if self.sensor else self.fault


@dataclass
class AlertScore:
    alert_id: str
    asset: str
    raised: float
    cleared: float | None
    signals: list[str]
    detector: str
    hit: bool = False
    diagnosis: str | None = None
    provisional: str | None = None
    event_end: float | None = None
    """End of the fault event this alert was assigned to (hits only)."""


@dataclass
class RunScore:
    """Everything the aggregate needs from one asset's run (picklable, small)."""

    run: str
    asset: str
    duration_s: float
    fault_free_s: float
    events: list[EventScore] = field(default_factory=list)
    alerts: list[AlertScore] = field(default_factory=list)


class _Track:
    """Truth of one event as it streams by."""

    __slots__ = (
        "fault",
        "first",
        "last",
        "observable_from",
        "peak",
        "sensor",
        "sev",
        "sudden",
        "ts",
    )

    def __init__(self, fault: str, sensor: str | None, sudden: bool) -> None:
        self.fault, self.sensor, self.sudden = fault, sensor, sudden
        self.first = self.last = None  # type: float | None
        self.observable_from: float | None = None
        self.peak = 0.0
        self.ts: list[float] = []
        self.sev: list[float] = []


class StreamScorer:
    """Feed messages with ``add``; ``result()`` scores every asset seen."""

    def __init__(self, run: str = "") -> None:
        self.run = run
        self._tracks: dict[str, dict[tuple[str, str | None, float], _Track]] = defaultdict(dict)
        self._ticks: dict[str, list[tuple[float, bool]]] = defaultdict(list)
        self._alerts: dict[str, dict[str, AlertScore]] = defaultdict(dict)
        self._diag: dict[str, str] = {}
        self._prov: dict[str, str] = {}
        self._names: dict[str, str] = {}

    def add(self, msg: PlantMessage) -> None:
        if isinstance(msg, Telemetry):
            self._telemetry(msg)
        elif isinstance(msg, AlertEvent):
            alerts = self._alerts[msg.asset]
            a = alerts.get(msg.alert_id)
            if msg.status == "active" and a is None:
                alerts[msg.alert_id] = AlertScore(
                    msg.alert_id, msg.asset, msg.ts, None, list(msg.signals), msg.detector
                )
            elif msg.status == "cleared" and a is not None:
                a.cleared = msg.cleared_ts if msg.cleared_ts is not None else msg.ts
        elif isinstance(msg, DiagnosisReport):
            if msg.stage == "provisional":
                self._prov.setdefault(msg.alert_id, msg.root_cause)
            elif msg.stage == "final":  # an "update" repeats a cause with a new severity
                self._diag.setdefault(msg.alert_id, msg.root_cause)

    def _telemetry(self, t: Telemetry) -> None:
        if t.scenario:
            self._names.setdefault(t.asset, t.scenario)
        truth = t.truth
        active = truth.active if truth is not None else []
        self._ticks[t.asset].append((t.ts, bool(active)))
        tracks = self._tracks[t.asset]
        for a in active:
            key = (a.fault, a.sensor, a.onset_ts)
            tr = tracks.get(key)
            if tr is None:
                tr = tracks[key] = _Track(a.fault, a.sensor, a.sudden)
                tr.first = t.ts
            tr.last = t.ts
            tr.peak = max(tr.peak, a.severity)
            if a.observable and tr.observable_from is None:
                tr.observable_from = t.ts
            tr.ts.append(t.ts)
            tr.sev.append(a.severity)

    def result(self) -> list[RunScore]:
        out = []
        for asset in sorted(set(self._ticks) | set(self._alerts)):
            out.append(self._score_asset(asset))
        return out

    def _score_asset(self, asset: str) -> RunScore:
        ticks = self._ticks.get(asset, [])
        dt = _median_step([ts for ts, _ in ticks]) if len(ticks) > 1 else 1.0
        duration = (ticks[-1][0] - ticks[0][0] + dt) if ticks else 0.0
        tracks = self._tracks.get(asset, {})
        events = []
        for (fault, sensor, onset), tr in sorted(tracks.items(), key=lambda kv: kv[0][2]):
            events.append(
                EventScore(
                    asset=asset,
                    fault=fault,
                    sensor=sensor,
                    onset=float(onset),
                    end=float(tr.last if tr.last is not None else onset),
                    sudden=tr.sudden,
                    peak=tr.peak,
                    observable_from=tr.observable_from,
                )
            )
        # Fault-free time: ticks with nothing active and not within the grace after an event.
        ends = sorted(e.end for e in events)
        fault_free = 0.0
        for ts, busy in ticks:
            if busy:
                continue
            i = bisect.bisect_right(ends, ts) - 1
            if i >= 0 and ts - ends[i] <= GRACE_S:
                continue
            fault_free += dt
        alerts = sorted(self._alerts.get(asset, {}).values(), key=lambda a: a.raised)
        for a in alerts:
            a.diagnosis = self._diag.get(a.alert_id)
            a.provisional = self._prov.get(a.alert_id)
            cands = [e for e in events if e.onset <= a.raised <= e.end + GRACE_S]
            if not cands:
                continue
            a.hit = True
            fresh = [e for e in cands if not e.detected]
            ev = max(fresh or cands, key=lambda e: e.onset)
            a.event_end = ev.end
            ev.alerts += 1
            if ev.detected:
                continue
            ev.detected = True
            ev.alert_id = a.alert_id
            ev.raised = a.raised
            ev.latency_from_onset = a.raised - ev.onset
            start = ev.observable_from if ev.observable_from is not None else ev.onset
            ev.latency = max(0.0, a.raised - start)
            tr = tracks[(ev.fault, ev.sensor, ev.onset)]
            i = max(0, bisect.bisect_right(tr.ts, a.raised) - 1)
            ev.severity_at_detection = tr.sev[i] if tr.sev else None
            ev.diagnosis = a.diagnosis or "(none)"
            ev.provisional = a.provisional
        for ev in events:  # covered by an episode that was already active
            if ev.detected:
                continue
            for a in alerts:
                # Covered: an alarm raised for a fault that is still going on at this onset, and
                # still active (not one left over from a fault that has ended).
                if (
                    a.hit
                    and a.raised < ev.onset
                    and a.event_end is not None
                    and a.event_end >= ev.onset
                    and (a.cleared is None or a.cleared >= ev.onset)
                ):
                    ev.detected = ev.by_overlap = True
                    ev.alert_id = a.alert_id
                    ev.diagnosis = a.diagnosis or "(none)"
                    break
        return RunScore(
            run=self._names.get(asset, self.run),
            asset=asset,
            duration_s=duration,
            fault_free_s=fault_free,
            events=events,
            alerts=alerts,
        )


def _median_step(ts: list[float]) -> float:
    steps = sorted(b - a for a, b in pairwise(ts) if b > a)
    return steps[len(steps) // 2] if steps else 1.0


def score_stream(messages: Iterable[PlantMessage], run: str = "") -> list[RunScore]:
    """Score one run's messages (one RunScore per asset)."""
    scorer = StreamScorer(run)
    for m in messages:
        scorer.add(m)
    return scorer.result()


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list, else None."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)
