"""Random scenario suites, so the evaluation never rests on three hand-picked cases.

``generate_suite(n, seed)`` is deterministic in (n, seed). Each scenario is a 3–5 h shift on a
different unit (its own seed) with random operator manoeuvres (valve moves, speed trims, demand
changes, stop/start) and, in about 80 % of scenarios, one fault (15 % of those get a second,
overlapping fault of another type); the rest are fault-free. Fault types rotate so each of the six
gets an equal share.

Choices a reader should know (they shape what the figures mean):

- Fault onsets fall after the first 45 min (the monitor learns its baseline in the first 10 min of
  running) and gradual ramps reach their peak at least 10 min before the end.
- Peak severities: bearing wear and clogging 0.4–1.0 when gradual, 0.3–0.8 when sudden; sensor
  drift 0.4–1.0 (gradual) or a 0.3–0.8 step; noise bursts 0.3–1.0; stuck sensors 0.5–1.0 (a
  rating); a stuck valve's stiction band 60–100 %-points (effectively frozen).
- A stuck valve is invisible until its command moves, so the generator schedules a valve move of at
  least 20 %-points 20–120 s after every ``valve_stuck`` onset (the note says so).
- Stops are short (5–20 min) and kept away from fault onsets (2 min before to 15 min after).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.plant.pump import DESIGN, PumpDesign
from engine.plant.scenario import Datasheet, FaultSpec, InitialState, Manoeuvre, Scenario
from engine.plant.signals import SENSORS
from engine.schemas import FAULTS

NORMAL_SHARE = 0.2
OVERLAP_SHARE = 0.15
DATASHEET_SPREAD = 0.15
"""Perturbed-pump suites: head, rated flow, efficiency and the bearing's thermal time constant
and rise each drawn within ±15 % of the nominal datasheet (another pump model per scenario)."""


def _r(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _fault(rng: np.random.Generator, kind: str, onset: float, duration: float) -> FaultSpec:
    left = duration - onset - 600.0
    sensor = None
    dur = None
    if kind == "bearing_wear":
        if rng.random() < 0.85:
            ramp, sev = min(_r(rng, 3600, 6 * 3600), left), _r(rng, 0.4, 1.0)
        else:
            ramp, sev = _r(rng, 30, 120), _r(rng, 0.3, 0.7)
    elif kind == "clogging":
        if rng.random() < 0.5:
            ramp, sev = _r(rng, 5, 60), _r(rng, 0.3, 0.8)
        else:
            ramp, sev = min(_r(rng, 1800, 4 * 3600), left), _r(rng, 0.4, 1.0)
    elif kind == "valve_stuck":
        ramp, sev = 0.0, _r(rng, 0.6, 1.0)
        if rng.random() < 0.5:
            dur = _r(rng, 1800, 5400)
    elif kind == "sensor_drift":
        sensor = str(rng.choice(SENSORS))
        if rng.random() < 0.85:
            ramp, sev = min(_r(rng, 1200, 3 * 3600), left), _r(rng, 0.4, 1.0)
        else:
            ramp, sev = 0.0, _r(rng, 0.3, 0.8)
    elif kind == "sensor_stuck":
        sensor = str(rng.choice(SENSORS))
        ramp, sev, dur = 0.0, _r(rng, 0.5, 1.0), _r(rng, 600, 3600)
    else:  # noise_burst
        sensor = str(rng.choice(SENSORS))
        ramp, sev, dur = 0.0, _r(rng, 0.3, 1.0), _r(rng, 180, 1200)
    return FaultSpec(
        type=kind,
        onset_s=round(onset),
        ramp_s=round(max(0.0, ramp)),
        severity=round(sev, 3),
        duration_s=None if dur is None else round(dur),
        sensor=sensor,
    )


def _manoeuvres(
    rng: np.random.Generator, duration: float, faults: list[FaultSpec], flow_scale: float = 1.0
) -> list[Manoeuvre]:
    out: list[Manoeuvre] = []
    t = _r(rng, 720, 2700)
    quiet = [(f.onset_s - 120.0, f.onset_s + 900.0) for f in faults]
    while t < duration - 300:
        roll = rng.random()
        ramp = round(_r(rng, 10, 60))
        if roll < 0.4:
            out.append(
                Manoeuvre(
                    at_s=round(t), kind="valve", target_pct=round(_r(rng, 40, 100)), ramp_s=ramp
                )
            )
        elif roll < 0.65:
            out.append(
                Manoeuvre(
                    at_s=round(t), kind="speed", target_pct=round(_r(rng, 75, 100)), ramp_s=ramp
                )
            )
        elif roll < 0.9:
            out.append(
                Manoeuvre(
                    at_s=round(t),
                    kind="demand",
                    flow_m3h=round(_r(rng, 50, 110) * flow_scale),
                    ramp_s=ramp,
                )
            )
        else:
            stop_len = _r(rng, 300, 1200)
            span = (t, t + stop_len)
            clash = any(a < span[1] and span[0] < b for a, b in quiet)
            if not clash and span[1] < duration - 600:
                out.append(Manoeuvre(at_s=round(t), kind="stop", note="planned stop"))
                out.append(Manoeuvre(at_s=round(span[1]), kind="start", note="restart"))
                t = span[1]
        t += float(rng.exponential(2700.0)) + 120.0
    return out


def _unstick_move(rng: np.random.Generator, fault: FaultSpec, valve_now: float) -> Manoeuvre:
    """A valve move big enough to show that the plug does not follow (>= 20 %-points)."""
    at = fault.onset_s + _r(rng, 20, 120)
    step = _r(rng, 20, 35)
    target = valve_now - step if valve_now - step >= 40.0 else min(100.0, valve_now + step)
    return Manoeuvre(
        at_s=round(at),
        kind="valve",
        target_pct=round(target),
        ramp_s=round(_r(rng, 10, 30)),
        note="scheduled so the stuck valve becomes observable",
    )


def _valve_at(
    initial: dict[str, Any], moves: list[Manoeuvre], t: float, sheet: PumpDesign = DESIGN
) -> float:
    """The valve command at time t, following the same rules as the simulator."""
    valve, speed = initial["valve_pct"], initial["speed_pct"]
    for m in sorted(moves, key=lambda m: m.at_s):
        if m.at_s > t:
            break
        if m.kind == "valve" and m.target_pct is not None:
            valve = m.target_pct
        elif m.kind == "speed" and m.target_pct is not None:
            speed = m.target_pct
        elif m.kind == "demand" and m.flow_m3h is not None:
            valve = 100.0 * sheet.valve_for_flow(
                m.flow_m3h, speed / 100.0, DESIGN.tank_pressure_bar, DESIGN.dest_pressure_bar
            )
    return float(valve)


def _datasheet(rng: np.random.Generator) -> Datasheet:
    def f() -> float:
        return round(1.0 + DATASHEET_SPREAD * float(rng.uniform(-1.0, 1.0)), 3)

    return Datasheet(head=f(), flow=f(), efficiency=f(), thermal_tau=f(), bearing_rise=f())


def generate_suite(n: int, seed: int, *, perturbed: bool = False) -> list[Scenario]:
    """``n`` random scenarios, deterministic in (n, seed, perturbed). ``perturbed``: each
    scenario runs another pump model (``DATASHEET_SPREAD``); the scenarios are otherwise the
    ones of the nominal suite with the same seed (own generator for the datasheets), with the
    demand changes scaled to the pump's rated flow."""
    if n < 1:
        raise ValueError("a suite needs at least one scenario")
    rng = np.random.default_rng([seed, 0x5517E])
    sheets = np.random.default_rng([seed, 0xDA7A5EE7]) if perturbed else None
    n_normal = round(n * NORMAL_SHARE)
    kinds: list[str | None] = [None] * n_normal
    kinds += [FAULTS[i % len(FAULTS)] for i in range(n - n_normal)]
    order = rng.permutation(n)
    kinds = [kinds[i] for i in order]
    suite = []
    for i, kind in enumerate(kinds):
        duration = float(round(_r(rng, 3 * 3600, 5 * 3600) / 60.0) * 60)
        faults: list[FaultSpec] = []
        if kind is not None:
            onset = _r(rng, 2700, duration - 3600)
            faults.append(_fault(rng, kind, onset, duration))
            if rng.random() < OVERLAP_SHARE:
                other = str(rng.choice([k for k in FAULTS if k != kind]))
                lo = onset + 1200
                if lo < duration - 2400:
                    faults.append(_fault(rng, other, _r(rng, lo, duration - 2400), duration))
        initial = {
            "running": True,
            "speed_pct": round(_r(rng, 85, 100)),
            "valve_pct": round(_r(rng, 60, 95)),
        }
        sheet = _datasheet(sheets) if sheets is not None else None
        design = sheet.apply(DESIGN) if sheet is not None else DESIGN
        moves = _manoeuvres(rng, duration, faults, sheet.flow if sheet is not None else 1.0)
        for f in faults:
            if f.type == "valve_stuck":
                valve = _valve_at(initial, moves, f.onset_s, design)
                moves.append(_unstick_move(rng, f, valve))
        moves.sort(key=lambda m: m.at_s)
        label = "_and_".join(f.type for f in faults) or "normal"
        tag = "p" if perturbed else ""
        suite.append(
            Scenario(
                name=f"suite{seed}{tag}-{i:03d}-{label}"[:64],
                description=f"Generated (suite of {n}, seed {seed}, #{i}).",
                duration_s=duration,
                seed=int(rng.integers(0, 2**31 - 1)),
                ambient_c=round(_r(rng, 15, 32), 1),
                datasheet=sheet,
                initial=InitialState(**initial),
                manoeuvres=moves,
                faults=faults,
            )
        )
    return suite
