"""Agent B — diagnosis: alerts (and the telemetry history around them) in, root causes out.

Per asset it keeps the last hour of samples and the model residuals (``diagnosis_features``),
learns the asset's healthy reference from its first minutes of steady running (like the monitor,
independently), and for every new alert:

0. reports a *provisional* cause at once, from the history up to the alert, so the ticket agent
   can open the work order within milliseconds of the alarm (about 9 in 10 are already right:
   a worn bearing, whose temperature lags its vibration by minutes, is the usual exception);
1. waits at least ``min_wait_s`` of simulated time after the alert, so the history *after* the
   onset is there (a stuck reading has to stay stuck, a valve move has to settle);
2. computes the features and evaluates every YAML rule (``rules/*.yaml``); a cause scores the
   noisy-or of its matching rules' confidences (plus any feedback tuning offset);
3. decides as soon as the best cause is confident (``decide_confidence``) and clear of the
   runner-up (``decide_margin``), re-checking every ``recheck_s``; otherwise it waits for more
   evidence up to ``max_wait_s`` (a slowly worn bearing needs its temperature to follow the
   vibration) and then reports the best it has, or ``unknown``.

So the final diagnosis arrives 1–15 simulated minutes after its alert (typically about one). An
alert that clears before that is diagnosed at once with the history it had. ``flush()`` decides
everything still pending (end of a replay). Never reads ``truth``; no I/O beyond loading the
rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.agents.diagnosis_features import History, Reference, compute_features
from engine.agents.diagnosis_rules import Rule, load_rules, render
from engine.agents.monitor import MonitorConfig
from engine.agents.monitor_physics import RESIDUALS, PumpObserver, is_running
from engine.agents.tuning import rule_offset
from engine.plant.pump import DESIGN
from engine.plant.signals import SIGNAL_ORDER, is_pump
from engine.schemas import (
    CATEGORY_OF_CAUSE,
    AlertEvent,
    DiagnosisReport,
    Hypothesis,
    Telemetry,
    Tuning,
)


@dataclass(frozen=True)
class DiagnosisConfig:
    """When the agent decides (simulated seconds)."""

    min_wait_s: float = 60.0
    max_wait_s: float = 900.0
    recheck_s: float = 30.0
    decide_confidence: float = 0.8
    decide_margin: float = 0.15
    history_s: float = 3600.0
    warmup_s: float = 600.0
    settle_s: float = 30.0


SENSOR_CAUSES = {
    "sensor_drift": "drift.sensor",
    "sensor_stuck": "stuck.sensor",
    "noise_burst": "noise.sensor",
}
_RANK = ("low", "medium", "high", "critical")


@dataclass
class _Pending:
    alert: AlertEvent
    due: float
    deadline: float
    cleared: bool = False


class _Asset:
    def __init__(self, asset: str, cfg: DiagnosisConfig) -> None:
        self.asset = asset
        self.cfg = cfg
        self.pump = False
        self.first_ts: float | None = None
        self.hist: History | None = None  # set up at the second sample (it fixes the period)
        self.observer: PumpObserver | None = None
        self.steady_for = 0
        self.last_speed = 0.0
        self.warm: list[list[float]] = []
        self.ref: Reference | None = None
        self.pending: dict[str, _Pending] = {}
        self.active: dict[str, AlertEvent] = {}  # alert_id -> alert (raised, not cleared)
        self.last_ts = 0.0
        self.last_row = [0.0] * len(SIGNAL_ORDER)
        self.last_row_keys = frozenset(SIGNAL_ORDER)

    def _setup(self, dt: float) -> None:
        cfg = self.cfg
        self.hist = History(cfg.history_s, dt)
        self.observer = PumpObserver(dt)
        self.max_ramp = MonitorConfig().steady_ramp_pct_s / 100.0 * DESIGN.rated_speed_rpm * dt
        self.settle_n = round(cfg.settle_s / dt)
        self.warm_n = max(10, round(cfg.warmup_s / dt))

    def push(self, t: Telemetry) -> None:
        s = t.signals
        self.last_ts = t.ts
        if self.hist is None:
            if self.first_ts is None:
                self.first_ts = t.ts
                self.pump = is_pump(s)
                return
            dt = t.ts - self.first_ts
            self._setup(dt if 0.0 < dt <= 3600.0 else 1.0)
        if not self.pump:
            return
        if tuple(s) == SIGNAL_ORDER:
            vals = s
            row = list(s.values())
        else:  # incomplete sample: hold the last values
            vals = dict(zip(SIGNAL_ORDER, self.last_row, strict=True)) | {
                k: v for k, v in s.items() if k in self.last_row_keys
            }
            row = [vals[k] for k in SIGNAL_ORDER]
        self.last_row = row
        res = self.observer.update(vals)  # type: ignore[union-attr]
        speed = vals["speed"]
        steady = is_running(speed) and abs(speed - self.last_speed) <= self.max_ramp
        self.last_speed = speed
        self.steady_for = self.steady_for + 1 if steady else 0
        valid = 1.0 if self.steady_for > self.settle_n else 0.0
        row += res
        row.append(self.observer.q_pred)  # type: ignore[union-attr]
        row.append(valid)
        self.hist.push(t.ts, row)  # type: ignore[union-attr]
        if self.ref is None and valid:
            self.warm.append(row)
            if len(self.warm) >= self.warm_n:
                self.ref = Reference(np.array(self.warm))
                self.warm = []


class DiagnosisAgent:
    """Alerts + telemetry in, DiagnosisReports out (one per alert)."""

    def __init__(
        self,
        rules: list[Rule] | None = None,
        *,
        tuning: Tuning | None = None,
        config: DiagnosisConfig | None = None,
        monitor_config: MonitorConfig | None = None,
    ) -> None:
        self.rules: list[Rule] = rules if rules is not None else load_rules()
        self.tuning = tuning
        self.config = config or DiagnosisConfig()
        self.floors = dict((monitor_config or MonitorConfig()).floors)
        self._assets: dict[str, _Asset] = {}

    def apply_tuning(self, tuning: Tuning | None) -> None:
        self.tuning = tuning

    # ------------------------------------------------------------------ input

    def feed(self, msg: Telemetry | AlertEvent) -> list[DiagnosisReport]:
        if isinstance(msg, Telemetry):
            st = self._assets.get(msg.asset)
            if st is None:
                st = self._assets[msg.asset] = _Asset(msg.asset, self.config)
            st.push(msg)
            if not st.pending:
                return []
            return self._due(st, msg.ts)
        if isinstance(msg, AlertEvent):
            return self._alert(msg)
        return []

    def flush(self) -> list[DiagnosisReport]:
        """Decide every pending alert now (end of a replay or shutdown)."""
        out = []
        for st in self._assets.values():
            for aid in list(st.pending):
                out.append(self._decide(st, st.pending.pop(aid), st.last_ts, final=True))
        return [r for r in out if r is not None]

    def forget(self, asset: str) -> list[DiagnosisReport]:
        """Drop an asset's state (a service evicts long-silent assets to bound its memory),
        deciding its pending alerts first: nothing waiting is silently dropped."""
        st = self._assets.pop(asset, None)
        if st is None:
            return []
        out = [self._decide(st, p, st.last_ts, final=True) for p in st.pending.values()]
        return [r for r in out if r is not None]

    def _alert(self, a: AlertEvent) -> list[DiagnosisReport]:
        st = self._assets.get(a.asset)
        if st is None:
            st = self._assets[a.asset] = _Asset(a.asset, self.config)
        if a.status == "active":
            if a.alert_id in st.pending or a.alert_id in st.active:
                return []  # redelivered
            st.active[a.alert_id] = a
            p = _Pending(a, a.ts + self.config.min_wait_s, a.ts + self.config.max_wait_s)
            st.pending[a.alert_id] = p
            provisional = self._decide(st, p, max(a.ts, st.last_ts), final=True)
            if provisional is None:
                return []
            return [
                provisional.model_copy(
                    update={"stage": "provisional", "diagnosis_id": f"{a.alert_id}-D0"}
                )
            ]
        st.active.pop(a.alert_id, None)
        p = st.pending.pop(a.alert_id, None)
        if p is None:
            return []
        rep = self._decide(st, p, max(a.ts, st.last_ts), final=True)
        return [rep] if rep is not None else []

    def _due(self, st: _Asset, now: float) -> list[DiagnosisReport]:
        out = []
        for aid, p in list(st.pending.items()):
            if now < p.due:
                continue
            rep = self._decide(st, p, now, final=now >= p.deadline)
            if rep is None:
                p.due = now + self.config.recheck_s
            else:
                del st.pending[aid]
                out.append(rep)
        return out

    # ------------------------------------------------------------------ deciding

    def _decide(self, st: _Asset, p: _Pending, now: float, final: bool) -> DiagnosisReport | None:
        a = p.alert
        older = [o for o in st.active.values() if o.alert_id != a.alert_id and o.ts < a.ts]
        masked = {s for o in older for s in o.signals if s in RESIDUALS}
        feats = compute_features(
            st.hist or History(60.0),
            st.ref,
            onset_ts=a.onset_ts,
            now_ts=now,
            alert_signals=list(a.signals),
            alert_score=a.score,
            alert_directions={e.signal: e.direction for e in a.evidence},
            masked=masked,
            floors=self.floors,
            asset=a.asset,
        )
        scores, matched = self._score(feats)
        ranked = sorted(scores, key=lambda c: -scores[c])
        top = ranked[0] if ranked else None
        best = scores[top] if top else 0.0
        second = scores[ranked[1]] if len(ranked) > 1 else 0.0
        decisive = (
            top is not None
            and best >= self.config.decide_confidence
            and best - second >= self.config.decide_margin
        )
        if not decisive and not final:
            return None
        return self._report(st, a, now, feats, scores, matched, ranked, masked)

    def _score(self, feats: dict[str, Any]) -> tuple[dict[str, float], dict[str, list[Rule]]]:
        matched: dict[str, list[Rule]] = {}
        for rule in self.rules:
            if rule.holds(feats):
                matched.setdefault(rule.cause, []).append(rule)
        scores = {}
        for cause, rules in matched.items():
            miss = 1.0
            for r in rules:
                c = min(1.0, max(0.0, r.confidence + rule_offset(self.tuning, r.id)))
                miss *= 1.0 - c
            scores[cause] = round(min(0.99, 1.0 - miss), 4)
        return scores, matched

    def _report(
        self,
        st: _Asset,
        a: AlertEvent,
        now: float,
        feats: dict[str, Any],
        scores: dict[str, float],
        matched: dict[str, list[Rule]],
        ranked: list[str],
        masked: set[str],
    ) -> DiagnosisReport:
        if ranked:
            cause = ranked[0]
            rules = sorted(matched[cause], key=lambda r: -r.confidence)
            confidence = scores[cause]
            sensor = feats.get(SENSOR_CAUSES.get(cause, ""))
            summary = f"{_cause_text(cause, sensor)} on {a.asset}: {rules[0].title}"
            actions = list(dict.fromkeys(x for r in rules for x in r.actions))
            evidence = [render(r.explain, feats) for r in rules if r.explain]
            category = rules[0].category or CATEGORY_OF_CAUSE[cause]
        else:
            cause, rules, confidence, sensor = "unknown", [], 0.2, None
            summary = (
                f"Unexplained anomaly on {a.asset} ({', '.join(a.signals[:4])}): no rule matched"
            )
            actions = ["Review the alert's evidence and trends; add a rule if the pattern recurs"]
            evidence = []
            category = "unknown"
        evidence += [
            f"{e.signal}: {e.direction} ({e.detector}), {e.value:.3g} vs baseline "
            f"{e.baseline_mean:.3g}, score {e.score:.2f}"
            for e in a.evidence[:4]
        ]
        if masked:
            evidence.append(
                "judged beyond the earlier active alert(s) on: " + ", ".join(sorted(masked))
            )
        alternatives = [
            Hypothesis(
                root_cause=c,
                confidence=scores[c],  # type: ignore[arg-type]
                rules=[r.id for r in matched[c]],
            )
            for c in ranked[1:]
        ]
        signals = [sensor] if isinstance(sensor, str) and sensor != "?" else []
        signals += [s for s in a.signals if s not in signals]
        return DiagnosisReport(
            diagnosis_id=f"{a.alert_id}-D1",
            alert_id=a.alert_id,
            asset=a.asset,
            ts=now,
            onset_ts=a.onset_ts,
            root_cause=cause,  # type: ignore[arg-type]
            confidence=round(confidence, 3),
            category=category,  # type: ignore[arg-type]
            severity=_severity(cause, feats, a.severity),  # type: ignore[arg-type]
            summary=summary[:500],
            alternatives=alternatives,
            actions=[x[:500] for x in actions[:10]],
            evidence=[x[:500] for x in evidence[:12]],
            matched_rules=[r.id for c in ranked for r in matched[c]],
            signals=signals[:32],
        )


def _cause_text(cause: str, sensor: Any) -> str:
    text = cause.replace("_", " ").capitalize()
    if cause in SENSOR_CAUSES and isinstance(sensor, str) and sensor != "?":
        return f"{text} ({sensor} transmitter)"
    return text


def _severity(cause: str, f: dict[str, Any], alert_severity: str) -> str:
    """Operator priority from the physics, not from the detector's score."""

    def num(key: str) -> float:
        v = f.get(key)
        return float(v) if isinstance(v, int | float) and not math.isnan(v) else float("nan")

    if cause == "bearing_wear":
        vib, temp = num("vibration"), num("bearing_temp")
        if vib >= 4.5 or temp >= 85.0:
            return "critical"  # ISO 10816-3 zone D / bearing alarm temperature
        return "high" if vib >= 2.8 or temp >= 75.0 else "medium"
    if cause == "clogging":
        loss = -num("res.flow.delta")
        if math.isnan(loss):
            return "medium"
        return (
            "critical" if loss >= 40 else "high" if loss >= 20 else "medium" if loss >= 8 else "low"
        )
    if cause == "valve_stuck":
        return "high"
    if cause in ("sensor_drift", "sensor_stuck"):
        return "medium"
    if cause == "noise_burst":
        return "low"
    return alert_severity if alert_severity in _RANK else "medium"


__all__ = ["DiagnosisAgent", "DiagnosisConfig"]
