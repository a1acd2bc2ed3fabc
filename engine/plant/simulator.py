"""The pump simulator: a scenario + a seed in, one Telemetry message per tick out.

Pure and deterministic: no wall clock, no I/O, every random draw from one seeded generator, so the
same scenario and seed give byte-identical telemetry. Time advances only by ``step()``.

Per tick: apply due operator manoeuvres (command ramps), move the drive speed and the valve plug
(stiction if stuck), update slow process disturbances (tank and header pressure, ambient), apply
process faults (wear, clogging), solve the operating point with a 1 s fluid lag, derive power,
current, vibration and the bearing's thermal lag, then measure: noise, flow-meter damping,
instrument faults, resolution. Noise is drawn a few ticks ahead (one numpy call per ``_BLOCK``
ticks), because per-tick generator calls would dominate the run time, while a long block per
asset would dominate a fleet's memory. The generator's stream does not depend on the block size,
so the telemetry is the same byte for byte whatever ``_BLOCK`` is (a test pins a digest).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from engine.plant.pump import BAR_PER_M, DESIGN, PumpDesign
from engine.plant.scenario import FaultSpec, Manoeuvre, Scenario
from engine.plant.signals import SIGNAL_ORDER, SIGNALS
from engine.pydantic_compat import trusted
from engine.schemas import ActiveFault, Telemetry, Truth

_BLOCK = 32
"""Ticks of noise drawn per generator call: 32 × 24 floats ≈ 25 KB per asset (4096 took 4 MB)."""
_SENSOR_IDX = {name: i for i, name in enumerate(SIGNAL_ORDER)}
_NOISE_SD = [SIGNALS[n].noise_sd for n in SIGNAL_ORDER]
_RELATIVE = [SIGNALS[n].relative_noise for n in SIGNAL_ORDER]
_DECIMALS = [SIGNALS[n].decimals for n in SIGNAL_ORDER]
_FLOOR = [
    SIGNALS[n].floor if n in ("flow", "vibration", "motor_current", "power", "speed") else None
    for n in SIGNAL_ORDER
]
_N_SIG = len(SIGNAL_ORDER)
# Random columns: one per signal (measurement noise), one per signal (noise bursts), then the
# four slow process disturbances.
_COL_BURST = _N_SIG
_COL_OU = 2 * _N_SIG
_N_COLS = 2 * _N_SIG + 4
_DRIFT_FULL = [SIGNALS[n].drift_full for n in SIGNAL_ORDER]
_NO_TRUTH = Truth()
_M = TypeVar("_M", bound=BaseModel)
_Active = list["_FaultRun"] | tuple["_FaultRun", ...]
_N = TypeVar("_N", float, "npt.NDArray[np.float64]")


def _trusted(cls: type[_M], **values: object) -> _M:
    """A model from values valid by construction (engine/pydantic_compat.py says why)."""
    return trusted(cls, values)


def true_values(
    q_meter: _N, p_suc: _N, p_dis: _N, bearing: _N, ambient: _N, vib: _N, current: _N,
    elec: _N, n: _N, unit: PumpDesign | _N, cmd: _N,
) -> list[_N]:  # fmt: skip
    """The true value of every signal, in ``SIGNAL_ORDER``, from the plant's state: floats for
    one pump, arrays over pumps for a fleet (``unit`` then the rated speeds)."""
    rated = unit.rated_speed_rpm if isinstance(unit, PumpDesign) else unit
    return [q_meter, p_suc, p_dis, bearing, ambient, vib, current, elec, n * rated, cmd * 100.0]


class _FaultRun:
    """One scripted fault while the scenario plays (precomputed bounds, cached truth entry)."""

    __slots__ = (
        "end",
        "frozen",
        "idx",
        "observed",
        "onset",
        "peak",
        "ramp",
        "sensor",
        "spec",
        "truth",
        "type",
    )

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self.type = spec.type
        self.onset = spec.onset_s
        self.end = spec.end_s
        self.peak = spec.severity
        self.ramp = spec.ramp_s
        self.sensor = spec.sensor
        self.idx = _SENSOR_IDX[spec.sensor] if spec.sensor else -1
        self.frozen: float | None = None
        self.observed = spec.type != "valve_stuck"
        self.truth: ActiveFault | None = None

    def severity(self, t: float) -> float:
        if self.ramp <= 0.0:
            return self.peak
        frac = (t - self.onset) / self.ramp
        return self.peak if frac >= 1.0 else self.peak * frac

    def truth_entry(self, t: float, observed: bool | None = None) -> ActiveFault:
        """The fault's truth at ``t``; ``observed``: as it was then (default: now)."""
        obs = self.observed if observed is None else observed
        sev = round(self.severity(t), 4)
        cached = self.truth
        if cached is None or cached.severity != sev or cached.observable != obs:
            cached = self.truth = _trusted(
                ActiveFault,
                fault=self.type,
                severity=sev,
                sensor=self.sensor,
                onset_ts=self.onset,
                sudden=self.spec.sudden,
                observable=obs,
            )
        return cached


class _Ramp:
    """A command moving linearly from its current value to a target."""

    __slots__ = ("end", "start", "t0", "v0")

    def __init__(self, t0: float, v0: float, end: float, seconds: float) -> None:
        self.t0, self.v0, self.end, self.start = t0, v0, end, max(seconds, 1e-9)

    def at(self, t: float) -> float:
        frac = (t - self.t0) / self.start
        return self.end if frac >= 1.0 else self.v0 + (self.end - self.v0) * frac


class _OU:
    """Ornstein-Uhlenbeck disturbance: mean 0, stationary sd, correlation time tau."""

    __slots__ = ("phi", "scale", "x")

    def __init__(self, sd: float, tau_s: float, dt: float) -> None:
        self.phi = math.exp(-dt / tau_s)
        self.scale = sd * math.sqrt(1.0 - self.phi**2)
        self.x = 0.0

    def step(self, z: float) -> float:
        self.x = self.x * self.phi + self.scale * z
        return self.x


class Simulator:
    """Plays one scenario on one pump. ``step()`` returns the next Telemetry or None at the end."""

    def __init__(self, scenario: Scenario, seed: int | None = None, rate_hz: float = 1.0) -> None:
        if not (0.01 <= rate_hz <= 100.0):
            raise ValueError(f"rate_hz must be within 0.01..100, got {rate_hz}")
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else int(seed)
        self.rate_hz = float(rate_hz)
        self.dt = 1.0 / self.rate_hz
        self.asset = scenario.asset
        self.n_ticks = max(1, math.ceil(scenario.duration_s * self.rate_hz - 1e-9))
        self.seq = 0
        self._id_prefix = f"{scenario.name}-s{self.seed}-{self.asset}-"

        root = np.random.SeedSequence([self.seed, 0x70756D70])  # "pump"
        unit_seq, noise_seq = root.spawn(2)
        sheet = scenario.datasheet
        self.datasheet = sheet.apply(DESIGN) if sheet is not None else DESIGN
        """The pump model's datasheet (what the operator's documents say)."""
        self.unit: PumpDesign = self.datasheet.perturbed(np.random.default_rng(unit_seq))
        self._rng = np.random.default_rng(noise_seq)
        self._block: list[list[float]] = []
        self._row = _BLOCK

        u, dt = self.unit, self.dt
        self._tank = _OU(0.03, 1800.0, dt)
        self._header = _OU(0.03, 600.0, dt)
        self._turb = _OU(0.003, 5.0, dt)
        self._amb = _OU(0.3, 3600.0, dt)
        self._alpha_fluid = dt / (u.fluid_tau_s + dt)
        self._alpha_meter = dt / (1.0 + dt)
        self._alpha_thermal = dt / (u.thermal_tau_s + dt)
        self._speed_rate = dt / u.vfd_ramp_s
        self._valve_rate = u.valve_slew_pct_s * dt / 100.0

        init = scenario.initial
        self.running = init.running
        self._speed_sp = _Ramp(0.0, init.speed_pct / 100.0, init.speed_pct / 100.0, 0.0)
        self._valve_cmd = _Ramp(0.0, init.valve_pct / 100.0, init.valve_pct / 100.0, 0.0)
        self.n = init.speed_pct / 100.0 if init.running else 0.0
        self.valve_pos = init.valve_pct / 100.0
        self.q = u.operating_flow(
            self.n, self.valve_pos, 0.0, u.tank_pressure_bar, u.dest_pressure_bar
        )
        self._q_meter = self.q
        ambient0 = self._ambient(0.0)
        self.bearing_c = u.bearing_equilibrium_c(ambient0, self.n)
        self.wear = 0.0
        self.clog = 0.0

        self._manoeuvres: list[Manoeuvre] = sorted(scenario.manoeuvres, key=lambda m: m.at_s)
        self._next_manoeuvre = 0
        self._next_at = self._manoeuvres[0].at_s if self._manoeuvres else math.inf
        self._faults = [_FaultRun(f) for f in scenario.faults]
        self._truth_key: tuple[ActiveFault, ...] = ()
        self._truth_msg: Truth = _NO_TRUTH

    # ------------------------------------------------------------------ public API

    @property
    def done(self) -> bool:
        return self.seq >= self.n_ticks

    @property
    def sim_time(self) -> float:
        """Simulated time of the next tick (seconds since the scenario started)."""
        return self.seq * self.dt

    def run(self) -> Iterator[Telemetry]:
        while (msg := self.step()) is not None:
            yield msg

    def set_speed_setpoint(self, pct: float, ramp_s: float = 10.0) -> None:
        """Operator hook (live service): ramp the speed setpoint to ``pct`` % of rated."""
        t = self.sim_time
        target = min(1.1, max(0.4, pct / 100.0))
        self._speed_sp = _Ramp(t, self._speed_sp.at(t), target, ramp_s)

    def set_valve_command(self, pct: float, ramp_s: float = 10.0) -> None:
        """Operator hook (live service): ramp the valve command to ``pct`` % open."""
        t = self.sim_time
        target = min(1.0, max(0.05, pct / 100.0))
        self._valve_cmd = _Ramp(t, self._valve_cmd.at(t), target, ramp_s)

    def start_pump(self) -> None:
        self.running = True

    def stop_pump(self) -> None:
        self.running = False

    # ------------------------------------------------------------------ one tick

    def step(self) -> Telemetry | None:
        if self.seq >= self.n_ticks:
            return None
        t = self.seq * self.dt
        if self._next_at <= t:
            self._apply_manoeuvres(t)
        z = self._draw()
        u = self.unit

        # Actuators: the drive ramps at its limit towards the setpoint, the plug at its slew rate
        # unless stiction holds it.
        n_target = self._speed_sp.at(t) if self.running else 0.0
        self.n += max(-self._speed_rate, min(self._speed_rate, n_target - self.n))
        active = [f for f in self._faults if f.onset <= t < f.end] if self._faults else ()
        cmd = self._valve_cmd.at(t)
        band = wear = clog = 0.0
        for f in active:
            if f.type == "valve_stuck":
                band = max(band, f.peak)
                if abs(cmd - self.valve_pos) > 0.02:
                    f.observed = True
            elif f.type == "bearing_wear":
                wear = max(wear, f.severity(t))
            elif f.type == "clogging":
                clog = max(clog, f.severity(t))
        self.wear, self.clog = wear, clog
        gap = cmd - self.valve_pos
        if band == 0.0 or abs(gap) > band:
            self.valve_pos += max(-self._valve_rate, min(self._valve_rate, gap))

        # Slow disturbances.
        tank, header, tb, amb = self._tank, self._header, self._turb, self._amb
        tank.x = tank.x * tank.phi + tank.scale * z[_COL_OU]
        header.x = header.x * header.phi + header.scale * z[_COL_OU + 1]
        tb.x = tb.x * tb.phi + tb.scale * z[_COL_OU + 2]
        amb.x = amb.x * amb.phi + amb.scale * z[_COL_OU + 3]
        p_tank = u.tank_pressure_bar + tank.x
        p_dest = u.dest_pressure_bar + header.x
        turb = tb.x
        ambient = self._ambient(t) + amb.x

        # Hydraulics: steady operating point, approached with the fluid's inertia.
        n = self.n
        q_ss = u.operating_flow(n, self.valve_pos, u.k_clog(clog), p_tank, p_dest) * (1 + turb)
        self.q += (q_ss - self.q) * self._alpha_fluid
        q = max(0.0, self.q)
        p_suc = p_tank - u.k_suction * q * q
        p_dis = p_suc + BAR_PER_M * u.head_m(q, n)
        shaft = u.shaft_kw(q, n, wear)
        elec = u.elec_kw(shaft)
        current = u.current_a(elec, n)
        vib = u.vibration_mm_s(q, n, wear)
        self.bearing_c += (u.bearing_equilibrium_c(ambient, n, wear) - self.bearing_c) * (
            self._alpha_thermal
        )
        self._q_meter += (q - self._q_meter) * self._alpha_meter

        true = true_values(
            self._q_meter, p_suc, p_dis, self.bearing_c, ambient, vib, current, elec, n, u, cmd
        )
        values = self._measure(t, true, z, active)
        msg = _trusted(
            Telemetry,
            msg_id=self._id_prefix + str(self.seq),
            asset=self.asset,
            seq=self.seq,
            ts=t,
            signals=dict(zip(SIGNAL_ORDER, values, strict=True)),
            scenario=self.scenario.name,
            truth=self._truth(t, active),
            wall_time=None,
        )
        self.seq += 1
        return msg

    # ------------------------------------------------------------------ internals

    def _draw(self) -> list[float]:
        if self._row >= _BLOCK:
            self._block = self._rng.standard_normal((_BLOCK, _N_COLS)).tolist()
            self._row = 0
        row = self._block[self._row]
        self._row += 1
        return row

    @property
    def efficiency(self) -> float:
        """Overall pump efficiency at the current operating point (internal state, not a
        signal: no plant measures it directly)."""
        return self.unit.efficiency(max(0.0, self.q), self.n, self.wear)

    def _ambient(self, t: float) -> float:
        """Daily cycle (t = 0 is 08:00; warmest at 15:00) around the scenario's mean."""
        hour = 8.0 + t / 3600.0
        return self.scenario.ambient_c + 4.0 * math.sin(2.0 * math.pi * (hour - 9.0) / 24.0)

    def _apply_manoeuvres(self, t: float) -> None:
        ms = self._manoeuvres
        while self._next_manoeuvre < len(ms) and ms[self._next_manoeuvre].at_s <= t:
            m = ms[self._next_manoeuvre]
            self._next_manoeuvre += 1
            if m.kind == "valve":
                assert m.target_pct is not None
                self.set_valve_command(m.target_pct, m.ramp_s)
            elif m.kind == "speed":
                assert m.target_pct is not None
                self.set_speed_setpoint(m.target_pct, m.ramp_s)
            elif m.kind == "demand":
                assert m.flow_m3h is not None
                # The operator sets the valve for the new demand from the datasheet curves (the
                # real unit then lands a few per cent off, as in life).
                x = self.datasheet.valve_for_flow(
                    m.flow_m3h,
                    self._speed_sp.at(t),
                    DESIGN.tank_pressure_bar,
                    DESIGN.dest_pressure_bar,
                )
                self.set_valve_command(x * 100.0, m.ramp_s)
            elif m.kind == "start":
                self.start_pump()
            elif m.kind == "stop":
                self.stop_pump()
        self._next_at = (
            ms[self._next_manoeuvre].at_s if self._next_manoeuvre < len(ms) else math.inf
        )

    def _measure(self, t: float, true: list[float], z: list[float], active: _Active) -> list[float]:
        out = [
            v + ((v * sd if rel else sd) * zi if sd else 0.0)
            for v, sd, rel, zi in zip(true, _NOISE_SD, _RELATIVE, z, strict=False)
        ]
        if self._faults:
            self._instrument_faults(t, true, z, out, active)
        result = [
            round(v if lo is None or v >= lo else lo, dec)
            for v, lo, dec in zip(out, _FLOOR, _DECIMALS, strict=True)
        ]
        if not math.isfinite(sum(result)):
            raise FloatingPointError(f"simulator produced a non-finite reading at t={t}: {result}")
        return result

    def _instrument_faults(
        self,
        t: float,
        true: list[float],
        z: list[float],
        out: list[float],
        active: _Active,
    ) -> None:
        for f in self._faults:
            if f.frozen is not None and not (f.onset <= t < f.end):
                f.frozen = None
        for f in active:
            i = f.idx
            if i < 0:
                continue
            if f.type == "sensor_drift":
                out[i] += f.severity(t) * _DRIFT_FULL[i]
            elif f.type == "noise_burst":
                sd = _NOISE_SD[i] * (true[i] if _RELATIVE[i] else 1.0)
                out[i] += 19.0 * f.severity(t) * sd * z[_COL_BURST + i]
            elif f.type == "sensor_stuck":
                if f.frozen is None:
                    f.frozen = out[i]
                out[i] = f.frozen

    def _truth(self, t: float, active: _Active, observed: Sequence[bool] | None = None) -> Truth:
        """The truth at ``t`` of the ``active`` faults (``observed``: each one's flag then, for
        a truth built after the fact; default: now)."""
        if not active:
            return _NO_TRUTH
        if observed is None:
            entries = tuple(f.truth_entry(t) for f in active)
        else:
            entries = tuple(f.truth_entry(t, o) for f, o in zip(active, observed, strict=True))
        key = self._truth_key
        if len(entries) != len(key) or any(a is not b for a, b in zip(entries, key, strict=True)):
            top = max(entries, key=lambda a: a.severity)
            self._truth_key = entries
            self._truth_msg = _trusted(
                Truth, fault=top.fault, severity=top.severity, active=list(entries)
            )
        return self._truth_msg
