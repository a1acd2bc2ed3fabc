"""What the diagnosis rules can look at: features of an asset's recent history around an alert.

The agent keeps, per asset, a ring of the last 30 min of samples (``diagnosis_history``): the pump
signals, the six model residuals (computed by the same ``PumpObserver`` as the monitor) and the
loop flow the model expects. At decision time it turns that history into named numbers
(``FEATURES`` lists them all; ``docs/plant.md`` explains each):

- ``res.<r>.z`` / ``.delta`` / ``.trend`` / ``.rate``: a residual's shift from this asset's own
  learned reference, in detection floors (z), in engineering units (delta), and its slope over
  the last 10 min in floors per 10 min (trend, for rules) and in engineering units per 10 min
  (rate, for the sentences an engineer reads).
- ``<signal>`` (mean of the last minute), ``<signal>.change`` / ``.change_pct`` (vs the five
  minutes before the alert), ``<signal>.flat`` (seconds of identical readings), ``<signal>.noise``
  (sample-to-sample spread over its baseline, median-based).
- ``valve.moved`` (%-points the command moved around the alert), ``valve.response`` (the flow
  change measured / the change the model expected for that move: ~1 healthy, ~0 stuck).
- ``drift.fit`` / ``drift.size`` / ``drift.sensor``: the single transmitter whose offset best
  explains the residual pattern (cosine of the observed shift with that sensor's signature,
  computed from the datasheet model at the current operating point), ``clog.fit`` the same for a
  clogged strainer (flow residual alone, negative).
- ``stuck.max_s`` / ``stuck.sensor``, ``noise.max`` / ``noise.sensor``: the flattest and the
  noisiest transmitter.

Residual channels of another, older active alert on the same asset are masked (NaN): a second
fault is judged on what changed beyond the first.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.agents.diagnosis_history import COL, History, Reference
from engine.agents.monitor_physics import RESIDUALS, loop_flow, residuals
from engine.plant.pump import DESIGN
from engine.plant.signals import SENSORS, SIGNAL_ORDER, SIGNALS

_NUM_PER_RESIDUAL = ("z", "delta", "trend", "rate", "fired")
_NUM_PER_SIGNAL = ("change", "change_pct", "flat", "noise", "fired")
TEXT_FEATURES = frozenset(
    {"drift.sensor", "drift.candidates", "stuck.sensor", "noise.sensor", "asset"}
)
FEATURES: frozenset[str] = frozenset(
    [f"{r}.{k}" for r in RESIDUALS for k in _NUM_PER_RESIDUAL]
    + list(SIGNAL_ORDER)
    + [f"{s}.{k}" for s in SIGNAL_ORDER for k in _NUM_PER_SIGNAL]
    + [
        "valve.moved",
        "valve.response",
        "speed.moved",
        "drift.fit",
        "drift.size",
        "drift.second",
        "clog.fit",
        "stuck.max_s",
        "noise.max",
        "alert.score",
        "alert.age_s",
        "alert.channels",
        "alert.flat",
        "alert.noisy",
        "running",
    ]
    + list(TEXT_FEATURES)
)

RECENT_S = 60.0
PRE_S = (300.0, 60.0)
TREND_S = 600.0
LOOKBACK_VALVE_S = 300.0


def _nan() -> float:
    return float("nan")


def _flat_run(col: np.ndarray) -> int:
    """Number of trailing samples equal to the last one."""
    if col.size < 2:
        return 0
    diff = np.flatnonzero(col[:-1] != col[-1])
    return int(col.size - 1 - diff[-1]) if diff.size else int(col.size - 1)


def _robust_spread(col: np.ndarray) -> float:
    if col.size < 5:
        return _nan()
    d2 = np.diff(col, n=2)
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))))


def drift_signatures(means: dict[str, float], floors: dict[str, float]) -> dict[str, np.ndarray]:
    """How each residual (in floors) moves when one transmitter reads 10 % of its full drift
    high, at this operating point, from the datasheet model in steady state."""
    n = means["speed"] / DESIGN.rated_speed_rpm

    def steady_residuals(s: dict[str, float]) -> np.ndarray:
        nn = s["speed"] / DESIGN.rated_speed_rpm
        q_pred = loop_flow(s["suction_pressure"], s["flow"], nn, s["valve_cmd"])
        t_model = DESIGN.bearing_equilibrium_c(s["ambient_temp"], nn)
        r = residuals(s, q_pred, t_model)
        return np.array([r[i] / floors[name] for i, name in enumerate(RESIDUALS)])

    if n < 0.3:
        return {}
    base = steady_residuals(means)
    out = {}
    for sensor in SENSORS:
        s = dict(means)
        s[sensor] += 0.1 * SIGNALS[sensor].drift_full
        out[sensor] = steady_residuals(s) - base
    return out


def compute_features(
    hist: History | None,
    ref: Reference | None,
    *,
    onset_ts: float,
    now_ts: float,
    alert_signals: list[str],
    alert_score: float,
    alert_directions: dict[str, str] | None = None,
    masked: set[str],
    floors: dict[str, float],
    asset: str,
) -> dict[str, Any]:
    f: dict[str, Any] = dict.fromkeys(FEATURES, _nan())
    f.update(
        {
            "asset": asset,
            "drift.sensor": "?",
            "drift.candidates": "?",
            "stuck.sensor": "?",
            "noise.sensor": "?",
        }
    )
    f["alert.score"] = alert_score
    f["alert.age_s"] = now_ts - onset_ts
    f["alert.channels"] = float(len(alert_signals))
    # What the monitor itself saw (works for any stream, pump or not).
    dirs = alert_directions or {}
    flat = [sig for sig, d in dirs.items() if d == "flat"]
    noisy = [sig for sig, d in dirs.items() if d == "noisy"]
    f["alert.flat"], f["alert.noisy"] = float(len(flat)), float(len(noisy))
    if flat:
        f["stuck.sensor"] = flat[0]
    if noisy:
        f["noise.sensor"] = noisy[0]
    if hist is None:
        return f
    recent, _ = hist.last(RECENT_S)
    if recent.shape[0] < 5:
        return f
    means = recent.mean(axis=0)
    for name in SIGNAL_ORDER:
        c = COL[name]
        f[name] = float(means[c])
        f[f"{name}.fired"] = float(name in alert_signals)
    f["running"] = float(means[COL["speed"]] > 0.3 * DESIGN.rated_speed_rpm)

    # Raw signals: change around the alert, flat run, noise.
    pre = hist.between(onset_ts - PRE_S[0], onset_ts - PRE_S[1])
    long, _ = hist.last(TREND_S)
    for name in SIGNAL_ORDER:
        c = COL[name]
        if pre.shape[0] >= 5:
            before = float(pre[:, c].mean())
            f[f"{name}.change"] = float(means[c]) - before
            f[f"{name}.change_pct"] = (float(means[c]) - before) / max(abs(before), 1e-6) * 100
        if name not in SENSORS:
            continue
        f[f"{name}.flat"] = _flat_run(long[:, c]) * hist.dt if f["running"] == 1.0 else 0.0
        if ref is not None and ref.d2_spread[c] > 0:
            spread = _robust_spread(recent[:, c])
            scale = ref.d2_spread[c]
            if SIGNALS[name].relative_noise and ref.median[c] > 0:
                scale *= max(abs(float(means[c])), 1e-9) / ref.median[c]
            f[f"{name}.noise"] = spread / scale
    flats = {s: f[f"{s}.flat"] for s in SENSORS if not math.isnan(f[f"{s}.flat"])}
    if flats:
        s = max(flats, key=flats.__getitem__)
        f["stuck.max_s"], f["stuck.sensor"] = flats[s], s
    noises = {s: f[f"{s}.noise"] for s in SENSORS if not math.isnan(f[f"{s}.noise"])}
    if noises:
        s = max(noises, key=noises.__getitem__)
        f["noise.max"], f["noise.sensor"] = noises[s], s

    # Operator inputs around the alert.
    look = hist.between(onset_ts - LOOKBACK_VALVE_S, now_ts + 1)
    if look.shape[0] >= 5:
        v = look[:, COL["valve_cmd"]]
        f["valve.moved"] = float(v.max() - v.min())
        sp = look[:, COL["speed"]]
        f["speed.moved"] = float((sp.max() - sp.min()) / DESIGN.rated_speed_rpm * 100)
        f["valve.response"] = _valve_response(look)

    # Residuals against the reference (masked: explained by an older active alert).
    valid = recent[recent[:, COL["valid"]] > 0.5]
    if ref is None or valid.shape[0] < 10:
        return f
    zvec = []
    for r in RESIDUALS:
        c = COL[r]
        f[f"{r}.fired"] = float(r in alert_signals)
        if r in masked:
            zvec.append(_nan())
            continue
        delta = float(valid[:, c].mean() - ref.median[c])
        f[f"{r}.delta"] = delta
        f[f"{r}.z"] = delta / floors[r]
        zvec.append(f[f"{r}.z"])
        lv = long[long[:, COL["valid"]] > 0.5]
        if lv.shape[0] >= 60:
            t = np.arange(lv.shape[0], dtype=float)
            slope = np.polyfit(t, lv[:, c], 1)[0] / hist.dt
            f[f"{r}.rate"] = float(slope * TREND_S)
            f[f"{r}.trend"] = f[f"{r}.rate"] / floors[r]
    z = np.array(zvec)
    keep = ~np.isnan(z)
    norm = float(np.linalg.norm(z[keep]))
    if norm < 0.3:
        return f
    sigs = drift_signatures({s: float(means[COL[s]]) for s in SIGNAL_ORDER}, floors)
    fits = {}
    for sensor, sig in sigs.items():
        j = sig[keep]
        jn = float(np.linalg.norm(j))
        if jn < 1e-9:
            continue
        fits[sensor] = (abs(float(j @ z[keep])) / (jn * norm), float(j @ z[keep]) / (jn * jn))
    if fits:
        # Sensors whose signatures are parallel (bearing vs ambient temperature) fit equally:
        # ties go to the list order of SENSORS, and all of them are named in drift.candidates.
        ranked = sorted(fits, key=lambda s: (-round(fits[s][0], 4), SENSORS.index(s)))
        best = ranked[0]
        f["drift.fit"] = fits[best][0]
        f["drift.size"] = abs(fits[best][1]) * 0.1
        f["drift.sensor"] = best
        f["drift.second"] = fits[ranked[1]][0] if len(ranked) > 1 else 0.0
        tied = [s for s in ranked if round(fits[s][0], 2) >= round(fits[best][0], 2)]
        f["drift.candidates"] = " or ".join(tied)
    flow_i = RESIDUALS.index("res.flow")
    if keep[flow_i]:
        f["clog.fit"] = max(0.0, -float(z[flow_i]) / norm)
    return f


def _valve_response(look: np.ndarray) -> float:
    """Measured flow change / model-expected flow change across the valve move in ``look``."""
    v = look[:, COL["valve_cmd"]]
    if v.max() - v.min() < 2.0:
        return _nan()
    moving = np.flatnonzero(np.abs(np.diff(v)) > 0)
    first, last = int(moving[0]), int(moving[-1]) + 1
    if first < 3 or look.shape[0] - last < 10:
        return _nan()
    q, qp = look[:, COL["flow"]], look[:, COL["q_pred"]]
    before = slice(max(0, first - 20), first)
    after = slice(min(look.shape[0] - 1, last + 8), look.shape[0])
    expected = float(qp[after].mean() - qp[before].mean())
    if abs(expected) < 3.0:
        return _nan()
    return float(q[after].mean() - q[before].mean()) / expected
