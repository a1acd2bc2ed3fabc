"""Aggregate scored runs into the figures the report and ``--json`` carry, and check the targets."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from engine.evaluation.scoring import EventScore, RunScore, percentile
from engine.schemas import FAULTS

TARGETS = {
    "precision": (">=", 0.95),
    "recall": (">=", 0.95),
    "false_alarms_per_day": ("<=", 1.0),
    "diagnosis_accuracy": (">=", 0.90),
    "sudden_latency_median_s": ("<=", 30.0),
    "gradual_severity_median": ("<", 0.30),
}
"""The acceptance targets (issue 2), checked on every evaluation."""


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Latency(_M):
    median: float | None = None
    p95: float | None = None


class FaultMetrics(_M):
    """One fault's figures over every run (the definitions: ``engine.evaluation.scoring``)."""

    events: int = 0
    """Scripted occurrences of this fault: one per (fault, sensor, onset) on an asset."""
    observable: int = 0
    """Events that could be seen at all (not a stuck valve whose command never moved):
    recall's denominator."""
    detected: int = 0
    """Observable events an alert was assigned to, or covered by one already active."""
    detected_by_overlap: int = 0
    """Of ``detected``, those covered by an earlier fault's still-active alert: counted for
    recall, but with no alert of their own they have no latency and no severity at detection."""
    recall: float | None = None
    """``detected / observable`` (None without observable events)."""
    sudden: int = 0
    """Observable events whose fault reaches its peak within two minutes (latency counts)."""
    latency_s: Latency = Field(default_factory=Latency)
    """From onset (a stuck valve: from its first command move), detected events."""
    latency_from_onset_s: Latency = Field(default_factory=Latency)
    """The same from the scripted onset in every case: differs from ``latency_s`` only for a
    stuck valve, which cannot show before its command moves."""
    gradual: int = 0
    """Observable events that are not sudden: judged by severity at detection, not latency."""
    severity_at_detection: Latency = Field(default_factory=Latency)
    """Truth severity when the alert was raised (gradual faults)."""
    diagnosed: int = 0
    """Detected events with a final diagnosis to judge; an alert that never got one counts
    as "(none)", a wrong answer, so in practice every detected event."""
    diagnosis_correct: int = 0
    """Of ``diagnosed``, those whose final diagnosis named this fault (top-1)."""
    diagnosis_accuracy: float | None = None
    """``diagnosis_correct / diagnosed``."""
    provisional_accuracy: float | None = None
    """Top-1 of the provisional diagnosis made at the alert (the one a ticket opens with)."""
    alerts_per_event: float | None = None
    """Alerts assigned per detected event with a latency: 1 is one alert per fault; more is
    an alarm raised again while its fault lasted."""


class TargetCheck(_M):
    metric: str
    op: str
    target: float
    value: float | None
    ok: bool


class MissedEvent(_M):
    run: str
    fault: str
    sensor: str | None
    onset_s: float
    peak: float
    why: str


class EvalMetrics(_M):
    label: str = ""
    scenarios: int
    simulated_hours: float
    fault_free_days: float
    events: int
    alerts: int
    true_alerts: int
    false_alarms: int
    precision: float | None
    recall: float | None
    false_alarms_per_day: float | None
    diagnosis_accuracy: float | None
    provisional_accuracy: float | None
    sudden_latency_median_s: float | None
    sudden_latency_p95_s: float | None
    gradual_severity_median: float | None
    per_fault: dict[str, FaultMetrics]
    confusion: dict[str, dict[str, int]]
    """truth fault (or "none" for false alarms) -> predicted root cause -> count."""
    targets: list[TargetCheck]
    missed: list[MissedEvent] = Field(default_factory=list)
    misdiagnosed: list[MissedEvent] = Field(default_factory=list)
    false_alarm_list: list[MissedEvent] = Field(default_factory=list)

    @property
    def all_targets_met(self) -> bool:
        return all(t.ok for t in self.targets)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(v, nd)


def aggregate(runs: list[RunScore], label: str = "", scenarios: int | None = None) -> EvalMetrics:
    events = [e for r in runs for e in r.events]
    alerts = [a for r in runs for a in r.alerts]
    observable = [e for e in events if e.observable]
    detected = [e for e in observable if e.detected]
    hits = [a for a in alerts if a.hit]
    fa = [a for a in alerts if not a.hit]
    ff_days = sum(r.fault_free_s for r in runs) / 86400.0
    per_fault: dict[str, FaultMetrics] = {}
    confusion: dict[str, dict[str, int]] = {}
    for fault in FAULTS:
        evs = [e for e in events if e.fault == fault]
        obs = [e for e in evs if e.observable]
        det = [e for e in obs if e.detected]
        timed = [e for e in det if not e.by_overlap]
        lat = [e.latency for e in timed if e.latency is not None]
        lat0 = [e.latency_from_onset for e in timed if e.latency_from_onset is not None]
        grad = [e for e in timed if not e.sudden and e.severity_at_detection is not None]
        sev = [e.severity_at_detection for e in grad if e.severity_at_detection is not None]
        diag = [e for e in det if e.diagnosis is not None]
        correct = sum(1 for e in diag if e.diagnosis == e.fault)
        prov = [e for e in det if e.provisional is not None]
        per_fault[fault] = FaultMetrics(
            events=len(evs),
            observable=len(obs),
            detected=len(det),
            detected_by_overlap=sum(1 for e in det if e.by_overlap),
            recall=_ratio(len(det), len(obs)),
            sudden=sum(1 for e in obs if e.sudden),
            latency_s=Latency(median=_r(percentile(lat, 50), 1), p95=_r(percentile(lat, 95), 1)),
            latency_from_onset_s=Latency(
                median=_r(percentile(lat0, 50), 1), p95=_r(percentile(lat0, 95), 1)
            ),
            gradual=sum(1 for e in obs if not e.sudden),
            severity_at_detection=Latency(
                median=_r(percentile(sev, 50)),
                p95=_r(percentile(sev, 95)),
            ),
            diagnosed=len(diag),
            diagnosis_correct=correct,
            diagnosis_accuracy=_ratio(correct, len(diag)),
            provisional_accuracy=_ratio(sum(e.provisional == e.fault for e in prov), len(prov)),
            alerts_per_event=_ratio(sum(e.alerts for e in timed), len(timed)),
        )
        row = Counter(e.diagnosis or "(none)" for e in det)
        if row:
            confusion[fault] = dict(sorted(row.items()))
    fa_row = Counter(a.diagnosis or "(none)" for a in fa)
    if fa_row:
        confusion["none"] = dict(sorted(fa_row.items()))

    sudden_lat = [
        e.latency for e in detected if e.sudden and not e.by_overlap and e.latency is not None
    ]
    grad_sev = [
        e.severity_at_detection
        for e in detected
        if not e.sudden and not e.by_overlap and e.severity_at_detection is not None
    ]
    diagnosed = [e for e in detected if e.diagnosis is not None]
    n_correct = sum(1 for e in diagnosed if e.diagnosis == e.fault)
    figures = {
        "precision": _ratio(len(hits), len(alerts)) if alerts else (1.0 if events else None),
        "recall": _ratio(len(detected), len(observable)),
        "false_alarms_per_day": round(len(fa) / ff_days, 3) if ff_days > 0 else None,
        "diagnosis_accuracy": _ratio(n_correct, len(diagnosed)),
        "sudden_latency_median_s": _r(percentile(sudden_lat, 50), 1),
        "gradual_severity_median": _r(percentile(grad_sev, 50), 3),
    }
    checks = []
    for metric, (op, target) in TARGETS.items():
        value = figures[metric]
        if value is None:
            ok = metric in ("sudden_latency_median_s", "gradual_severity_median")  # no such faults
        elif op == ">=":
            ok = value >= target
        elif op == "<=":
            ok = value <= target
        else:
            ok = value < target
        checks.append(TargetCheck(metric=metric, op=op, target=target, value=value, ok=ok))

    def _ev(e: EventScore, why: str) -> MissedEvent:
        return MissedEvent(
            run=_run_of(runs, e),
            fault=e.fault,
            sensor=e.sensor,
            onset_s=e.onset,
            peak=e.peak,
            why=why,
        )

    missed = [
        _ev(e, "never observable" if not e.observable else "not detected")
        for e in events
        if not e.detected
    ]
    wrong = [_ev(e, f"diagnosed {e.diagnosis}") for e in diagnosed if e.diagnosis != e.fault]
    fal = [
        MissedEvent(
            run=_run_of_alert(runs, a),
            fault="none",
            sensor=None,
            onset_s=a.raised,
            peak=0.0,
            why=f"{', '.join(a.signals[:3])} ({a.detector}); diagnosed {a.diagnosis or '(none)'}",
        )
        for a in fa
    ]
    return EvalMetrics(
        label=label,
        scenarios=scenarios if scenarios is not None else len({r.run for r in runs}),
        simulated_hours=round(sum(r.duration_s for r in runs) / 3600.0, 2),
        fault_free_days=round(ff_days, 3),
        events=len(events),
        alerts=len(alerts),
        true_alerts=len(hits),
        false_alarms=len(fa),
        sudden_latency_p95_s=_r(percentile(sudden_lat, 95), 1),
        provisional_accuracy=_ratio(
            sum(e.provisional == e.fault for e in detected if e.provisional is not None),
            sum(1 for e in detected if e.provisional is not None),
        ),
        per_fault=per_fault,
        confusion=confusion,
        targets=checks,
        missed=missed,
        misdiagnosed=wrong,
        false_alarm_list=fal,
        **figures,
    )


def _run_of(runs: list[RunScore], e: object) -> str:
    for r in runs:
        if any(x is e for x in r.events):
            return r.run
    return ""


def _run_of_alert(runs: list[RunScore], a: object) -> str:
    for r in runs:
        if any(x is a for x in r.alerts):
            return r.run
    return ""
