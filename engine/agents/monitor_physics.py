"""Physics residuals: how far each measurement sits from what the pump's datasheet says it should
read, given the others.

A manoeuvre (valve move, speed change, stop/start) moves every signal *together*, along the pump
and system curves; a fault breaks one of the relations. So instead of watching raw levels, which
swing with every operator action, the monitor watches six model residuals that stay flat through
manoeuvres and each involve only a few instruments (which is also what lets the diagnosis tell
a drifting transmitter from a process fault):

================  ============================================  ===============================
channel           relation (nominal datasheet)                   instruments involved
================  ============================================  ===============================
res.head          Δp/ρg vs pump curve H0·n² − a·Q²               discharge/suction P, flow, speed
res.flow          flow vs loop operating point at (n, valve cmd)  flow, speed, valve cmd, suction P
res.power         power vs shaft-power curve at (Q, n)           power, flow, speed
res.current       current vs √(I_mag² + I_torque(P, n)²)         current, power, speed
res.bearing_temp  bearing T vs 10-min lag of ambient + rise(n)   bearing T, ambient T, speed
res.vibration     vibration vs running-speed model at (Q, n)     vibration, flow, speed
================  ============================================  ===============================

Each residual carries a unit-specific offset (a real pump is not its datasheet); the monitor
learns it as the residual's baseline. Functions take floats (the monitor, one tick at a time) or
numpy arrays (the diagnosis, over its history window).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.plant.pump import BAR_PER_M, DESIGN, PumpDesign

RESIDUALS: tuple[str, ...] = (
    "res.head",
    "res.flow",
    "res.power",
    "res.current",
    "res.bearing_temp",
    "res.vibration",
)
METER_TAU_S = 1.0
"""Flow-meter damping (transmitter setting, from the instrument list)."""
RUNNING_SPEED_FRACTION = 0.3
"""Below 30 % of rated speed the pump counts as stopped: the model relations are suspended."""


def _sqrt_pos(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return np.sqrt(np.maximum(x, 0.0))
    return math.sqrt(x) if x > 0.0 else 0.0


def residuals(
    s: Mapping[str, Any], q_pred: Any, temp_model: Any, d: PumpDesign = DESIGN
) -> tuple[Any, ...]:
    """The six residuals (order of ``RESIDUALS``) from one sample or arrays of samples.

    ``s`` holds the signals *aligned* to the flow meter (see ``PumpObserver``), ``q_pred`` the
    flow the loop should deliver and ``temp_model`` the healthy bearing temperature."""
    q = s["flow"]
    n = s["speed"] / d.rated_speed_rpm
    power = s["power"]
    head = (s["discharge_pressure"] - s["suction_pressure"]) / BAR_PER_M - d.head_m(q, n)
    flow = (q - q_pred) * (100.0 / d.rated_flow_m3h)
    pw = (power - d.elec_kw(d.shaft_kw(q, n))) * (100.0 / d.rated_elec_kw)
    current = s["motor_current"] - d.current_a(power, n)
    temp = s["bearing_temp"] - temp_model
    vib = (s["vibration"] / d.vibration_mm_s(q, n) - 1.0) * 100.0
    return head, flow, pw, current, temp, vib


def loop_flow(p_suc: Any, q: Any, n: Any, valve_pct: Any, d: PumpDesign = DESIGN) -> Any:
    """Steady flow the pump and the piping should settle at for this speed and valve command,
    with the supply pressure inferred from the suction gauge (P_tank = P_suc + k_s·Q²)."""
    p_tank = p_suc + d.k_suction * q * q
    drive = p_tank - d.dest_pressure_bar + BAR_PER_M * d.shutoff_head_m * n * n
    k = d.k_suction + BAR_PER_M * d.a + d.k_line + d.k_valve(valve_pct / 100.0)
    return _sqrt_pos(drive / k)


ALIGNED = ("suction_pressure", "discharge_pressure", "vibration", "motor_current", "power", "speed")
"""Signals that react at once and are delayed to match the flow meter's 1 s damping before they
are compared with it (otherwise every valve stroke or speed ramp leaves a transient residual)."""


class ThermalModel:
    """The bearing temperature a healthy bearing would show: ambient + speed-dependent rise,
    through the bearing's first-order thermal lag (10 min). Starts at equilibrium."""

    __slots__ = ("alpha", "design", "healthy_wear", "rated", "rise", "value")

    def __init__(self, dt: float = 1.0, design: PumpDesign = DESIGN) -> None:
        self.design = design
        self.alpha = dt / (design.thermal_tau_s + dt)
        self.value: float | None = None
        # ``design.bearing_equilibrium_c(ambient, n)`` inline (the diagnosis' per-sample hot
        # path), same operations in the same order; a test holds the two equal.
        self.rated = design.rated_speed_rpm
        self.rise = design.bearing_rise_c
        self.healthy_wear = design.wear_rise_c * 0.0

    def update(self, ambient: float, speed_rpm: float) -> float:
        n = speed_rpm / self.rated
        if n < 0.0:
            n = 0.0
        eq = ambient + self.rise * n**1.5 + self.healthy_wear * n
        if self.value is None:
            self.value = eq
        else:
            self.value += (eq - self.value) * self.alpha
        return self.value


class PumpObserver:
    """Per-pump model state for the residuals: the meter-aligned signals, the loop flow through
    the fluid's inertia and the meter's damping, and the bearing's thermal lag (10 min).

    ``update(signals)`` returns the six residuals for this sample. It is the monitor's hot path,
    so it computes the same relations as ``residuals`` / ``loop_flow`` inline on floats (a test
    holds the two equal)."""

    __slots__ = ("_c", "a_fluid", "a_meter", "aligned", "design", "q_fluid", "q_pred", "thermal")

    def __init__(self, dt: float = 1.0, design: PumpDesign = DESIGN) -> None:
        d = self.design = design
        self.a_fluid = dt / (design.fluid_tau_s + dt)
        self.a_meter = dt / (METER_TAU_S + dt)
        self.aligned: list[float] | None = None
        self.q_fluid = 0.0
        self.q_pred = 0.0
        self.thermal = ThermalModel(dt, design)
        f0 = d.shutoff_power_frac
        self._c = (
            1.0 / d.rated_speed_rpm,  # 0
            d.k_suction,  # 1
            BAR_PER_M * d.shutoff_head_m - 0.0,  # 2: bar per n² of shut-off head
            d.dest_pressure_bar,  # 3
            d.k_suction + BAR_PER_M * d.a + d.k_line,  # 4
            d.k_valve_open,  # 5
            2.0 * math.log(d.valve_rangeability),  # 6
            d.shutoff_head_m,  # 7
            d.a,  # 8
            100.0 / d.rated_flow_m3h,  # 9
            d.rated_shaft_kw * f0 / (d.motor_efficiency * d.vfd_efficiency),  # 10
            d.rated_shaft_kw
            * (1.0 - f0)
            / d.rated_flow_m3h
            / (d.motor_efficiency * d.vfd_efficiency),  # 11
            100.0 / d.rated_elec_kw,  # 12
            d.magnetizing_current_a**2,  # 13
            d.vfd_efficiency * 1000.0 / (math.sqrt(3.0) * d.motor_voltage_v),  # 14
            d.vib_background_mm_s**2,  # 15
            d.vib_base_mm_s,  # 16
            d.vib_offbep,  # 17
            1.0 / d.rated_flow_m3h,  # 18
        )

    def update(self, s: Mapping[str, float]) -> tuple[float, ...]:
        c = self._c
        q = s["flow"]
        n = s["speed"] * c[0]
        # Loop flow for this speed and valve command (``loop_flow``), through the fluid's inertia
        # and the meter's damping.
        drive = s["suction_pressure"] + c[1] * q * q - c[3] + c[2] * n * n
        k = c[4] + c[5] * math.exp(-c[6] * (s["valve_cmd"] * 0.01 - 1.0))
        q_ss = math.sqrt(drive / k) if drive > 0.0 else 0.0
        al = self.aligned
        if al is None:
            al = self.aligned = [s[k_] for k_ in ALIGNED]
            self.q_fluid = self.q_pred = q_ss
        else:
            a = self.a_meter
            for i, k_ in enumerate(ALIGNED):
                al[i] += (s[k_] - al[i]) * a
            self.q_fluid += (q_ss - self.q_fluid) * self.a_fluid
            self.q_pred += (self.q_fluid - self.q_pred) * a
        p_suc, p_dis, vib, current, power, speed = al
        t_model = self.thermal.update(s["ambient_temp"], s["speed"])
        # The six relations of ``residuals``, on the aligned signals.
        n = speed * c[0]
        head = (p_dis - p_suc) / BAR_PER_M - (c[7] * n * n - c[8] * q * q)
        flow = (q - self.q_pred) * c[9]
        model_kw = c[10] * n * n * n + c[11] * n * n * q
        pw = (power - model_kw) * c[12]
        if n > 0.02:
            torque_a = power * c[14] / (n if n > 0.05 else 0.05)
            cur = current - math.sqrt(c[13] + torque_a * torque_a)
        else:
            cur = current
        temp = s["bearing_temp"] - t_model
        off = q * c[18] - n
        running = c[16] * (n * n + c[17] * off * off)
        vib_r = (vib / math.sqrt(c[15] + running * running) - 1.0) * 100.0
        return head, flow, pw, cur, temp, vib_r


def is_running(speed_rpm: float, d: PumpDesign = DESIGN) -> bool:
    return speed_rpm > RUNNING_SPEED_FRACTION * d.rated_speed_rpm
