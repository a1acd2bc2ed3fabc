"""Many pumps stepped as one numpy computation, with exactly the telemetry their own
``Simulator`` objects would publish.

A fleet replay of 1,000 pumps spends most of its time in the simulator when every pump is a
Python object stepping its own floats (~17 µs a tick). Here the state of every pump is a row of a
few numpy arrays and a tick is one pass of array arithmetic; what cannot be vectorised without
changing a single bit stays per pump, in Python:

- ``+ - * /``, ``sqrt``, ``min``/``max`` and comparisons are IEEE operations: numpy and Python
  give the same bits, so they run on the arrays, in the scalar code's operation order;
- powers (``n**3``, ``n**1.5``, ``x**0.5``) and the valve's ``rangeability**(x-1)`` go through
  Python's ``pow`` per pump (numpy's vectorised pow differs in the last bit for ~5 % of inputs);
  rounding to the published resolution is Python's ``round`` (numpy's rounds differently);
- scripted manoeuvres, faults, stuck readings and ground truth are the pump's own
  ``Simulator`` methods, called for the pumps that have one due.

The per-pump ``Simulator`` objects are built as usual (unit tolerances, noise generator,
manoeuvres, fault runs); their noise generators are drawn in the same chunks, so the stream is
the same. A test holds a fleet byte-identical to its pumps stepped alone, over every fault type,
manoeuvre and shift length. Time is shared: every pump starts at 0 and steps together; a pump
whose scenario is shorter stops publishing at its end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.plant import simulator as single
from engine.plant.fleet_faults import FleetFaults, TruthSnapshot
from engine.plant.fleet_tick import FleetTick
from engine.plant.pump import BAR_PER_M, SQRT3
from engine.plant.scenario import Scenario
from engine.schemas import Telemetry, Truth

F64 = npt.NDArray[np.float64]
_FLOORS = [(i, lo) for i, lo in enumerate(single._FLOOR) if lo is not None]
_FLOOR_COLS = [i for i, _ in _FLOORS]


def _col(values: Sequence[float]) -> F64:
    return np.array(values, dtype=np.float64)


class _Ramps:
    """Every pump's ``_Ramp`` for one command, as arrays (refreshed when a pump's changes)."""

    def __init__(self, ramps: Sequence[single._Ramp]) -> None:
        self.t0 = _col([r.t0 for r in ramps])
        self.v0 = _col([r.v0 for r in ramps])
        self.end = _col([r.end for r in ramps])
        self.span = _col([r.start for r in ramps])

    def set(self, i: int, r: single._Ramp) -> None:
        self.t0[i], self.v0[i], self.end[i], self.span[i] = r.t0, r.v0, r.end, r.start

    def at(self, t: float) -> F64:
        frac = (t - self.t0) / self.span
        out: F64 = np.where(frac >= 1.0, self.end, self.v0 + (self.end - self.v0) * frac)
        return out


class FleetSimulator:
    """``step()`` returns the next tick's Telemetry of every pump still running its scenario."""

    def __init__(self, scenarios: Sequence[Scenario], rate_hz: float = 1.0) -> None:
        if not scenarios:
            raise ValueError("a fleet needs at least one scenario")
        sims = self.sims = [single.Simulator(s, rate_hz=rate_hz) for s in scenarios]
        self.dt = sims[0].dt
        self.seq = 0
        self.n_ticks = np.array([s.n_ticks for s in sims])
        self._last = int(self.n_ticks.max())
        units = [s.unit for s in sims]

        def per(f: Callable[[single.Simulator, Any], float]) -> F64:
            return _col([f(s, u) for s, u in zip(sims, units, strict=True)])

        # State.
        self.n = per(lambda s, u: s.n)
        self.valve_pos = per(lambda s, u: s.valve_pos)
        self.q = per(lambda s, u: s.q)
        self.q_meter = per(lambda s, u: s._q_meter)
        self.bearing_c = per(lambda s, u: s.bearing_c)
        self.ou = np.zeros((4, len(sims)))
        self.running = np.array([s.running for s in sims])
        self.speed_sp = _Ramps([s._speed_sp for s in sims])
        self.valve_cmd = _Ramps([s._valve_cmd for s in sims])
        self.next_at = per(lambda s, u: s._next_at)
        self._kv_x = self.valve_pos.copy()
        self._kv = _col([u.k_valve(x) for u, x in zip(units, self._kv_x.tolist(), strict=True)])
        # Constants, each computed in Python exactly as the scalar expression's leading terms.
        self.phi = np.array(
            [[o.phi for o in (s._tank, s._header, s._turb, s._amb)] for s in sims]
        ).T
        self.scale = np.array(
            [[o.scale for o in (s._tank, s._header, s._turb, s._amb)] for s in sims]
        ).T
        self.alpha_fluid = per(lambda s, u: s._alpha_fluid)
        self.alpha_meter = per(lambda s, u: s._alpha_meter)
        self.alpha_thermal = per(lambda s, u: s._alpha_thermal)
        self.speed_rate = per(lambda s, u: s._speed_rate)
        self.valve_rate = per(lambda s, u: s._valve_rate)
        self.ambient_c = per(lambda s, u: s.scenario.ambient_c)
        self.tank_p = per(lambda s, u: u.tank_pressure_bar)
        self.dest_p = per(lambda s, u: u.dest_pressure_bar)
        self.c_drive = per(lambda s, u: BAR_PER_M * u.shutoff_head_m)
        self.k0 = per(lambda s, u: u.k_suction + BAR_PER_M * u.a + u.k_line)
        self.k_suction = per(lambda s, u: u.k_suction)
        self.shutoff = per(lambda s, u: u.shutoff_head_m)
        self.a = per(lambda s, u: u.a)
        self.rated_shaft = per(lambda s, u: u.rated_shaft_kw)
        self.f0 = per(lambda s, u: u.shutoff_power_frac)
        self.one_minus_f0 = per(lambda s, u: 1.0 - u.shutoff_power_frac)
        self.rated_flow = per(lambda s, u: u.rated_flow_m3h)
        self.wear_friction = per(lambda s, u: u.wear_friction_kw)
        self.elec_div = per(lambda s, u: u.motor_efficiency * u.vfd_efficiency)
        self.vfd_eff = per(lambda s, u: u.vfd_efficiency)
        self.sv = per(lambda s, u: SQRT3 * u.motor_voltage_v)
        self.mag2 = per(lambda s, u: u.magnetizing_current_a**2)
        self.vib_base = per(lambda s, u: u.vib_base_mm_s)
        self.vib_offbep = per(lambda s, u: u.vib_offbep)
        self.bg2 = per(lambda s, u: u.vib_background_mm_s**2)
        self.wear_vib = per(lambda s, u: u.wear_vib_mm_s)
        self.rise = per(lambda s, u: u.bearing_rise_c)
        self.wear_rise = per(lambda s, u: u.wear_rise_c)
        self.rated_speed = per(lambda s, u: u.rated_speed_rpm)
        self._ids = [(s._id_prefix, s.asset, s.scenario.name) for s in sims]
        self.faults = FleetFaults(sims)
        self._clog_x = np.zeros(len(sims))  # the clogging each pump's k_clog was computed at
        self._k_clog = np.zeros(len(sims))
        self._lows = _col([lo for _, lo in _FLOORS])
        self._noise = np.zeros((len(sims), single._BLOCK, single._N_COLS))
        self._row = single._BLOCK
        self._sd = single._NOISE_SD
        self._rel = single._RELATIVE
        self._live_cache: (
            tuple[npt.NDArray[np.intp], tuple[str, ...], tuple[str, ...], list[str]] | None
        ) = None

    @property
    def done(self) -> bool:
        return self.seq >= self._last

    def _draw(self) -> F64:
        if self._row >= single._BLOCK:
            for i, s in enumerate(self.sims):
                self._noise[i] = s._rng.standard_normal((single._BLOCK, single._N_COLS))
            self._row = 0
        z: F64 = self._noise[:, self._row, :]
        self._row += 1
        return z

    def _manoeuvres(self, t: float) -> None:
        for i in np.flatnonzero(self.next_at <= t).tolist():
            s = self.sims[i]
            s.seq = self.seq
            s._apply_manoeuvres(t)
            self.speed_sp.set(i, s._speed_sp)
            self.valve_cmd.set(i, s._valve_cmd)
            self.running[i] = s.running
            self.next_at[i] = s._next_at

    def operate(self, i: int, move: Callable[[single.Simulator], None]) -> None:
        """An operator move on pump ``i`` (the live service's ``/operator``): made by the pump's
        own ``Simulator`` at the fleet's time, then read back into the arrays, exactly as a
        scripted manoeuvre is."""
        s = self.sims[i]
        s.seq = self.seq
        move(s)
        self.speed_sp.set(i, s._speed_sp)
        self.valve_cmd.set(i, s._valve_cmd)
        self.running[i] = s.running

    def step(self) -> list[Telemetry]:
        """One tick of every pump whose scenario is not over (empty when all are)."""
        return self.step_tick().messages()

    def step_tick(self) -> FleetTick:
        """``step`` as arrays: the Telemetry is built only if the tick's reader asks for it
        (``FleetTick``); the agents' batch paths read the values directly."""
        if self.seq >= self._last:
            return FleetTick(self.seq, self.seq * self.dt, np.empty((0, 0)), (), (), [], list)
        t = self.seq * self.dt
        if self.next_at.min() <= t:
            self._manoeuvres(t)
        z = self._draw()

        # Actuators and scripted process faults (per faulty pump, in the pump's own objects).
        n = self.n = self.n + np.maximum(
            -self.speed_rate,
            np.minimum(self.speed_rate, np.where(self.running, self.speed_sp.at(t), 0.0) - self.n),
        )
        cmd = self.valve_cmd.at(t)
        band, wear, clog = self.faults.update(t, cmd, self.valve_pos)
        gap = cmd - self.valve_pos
        move = (band == 0.0) | (np.abs(gap) > band)
        self.valve_pos = np.where(
            move,
            self.valve_pos + np.maximum(-self.valve_rate, np.minimum(self.valve_rate, gap)),
            self.valve_pos,
        )

        # Slow disturbances.
        ou = self.ou = self.ou * self.phi + self.scale * z[:, single._COL_OU :].T
        p_tank = self.tank_p + ou[0]
        p_dest = self.dest_p + ou[1]
        hour = 8.0 + t / 3600.0
        ambient = (self.ambient_c + 4.0 * math.sin(2.0 * math.pi * (hour - 9.0) / 24.0)) + ou[3]

        # Hydraulics.
        changed = np.flatnonzero(self.valve_pos != self._kv_x)
        for i in changed.tolist():
            x = float(self.valve_pos[i])
            self._kv[i] = self.sims[i].unit.k_valve(x)
            self._kv_x[i] = x
        for i in np.flatnonzero(clog != self._clog_x).tolist():
            c = float(clog[i])
            self._k_clog[i] = self.sims[i].unit.k_clog(c) if c else 0.0
            self._clog_x[i] = c
        k_extra = self._k_clog
        drive = p_tank - p_dest + self.c_drive * n * n
        k = self.k0 + self._kv + k_extra
        q_op = np.sqrt(np.where(drive <= 0.0, 0.0, drive / np.where(drive <= 0.0, 1.0, k)))
        q_ss = q_op * (1 + ou[2])
        self.q = self.q + (q_ss - self.q) * self.alpha_fluid
        q = np.maximum(0.0, self.q)
        p_suc = p_tank - self.k_suction * q * q
        p_dis = p_suc + BAR_PER_M * (self.shutoff * n * n - self.a * q * q)
        n_list = n.tolist()
        n3 = _col(list(map(pow, n_list, repeat(3))))
        hydraulic = self.rated_shaft * (
            self.f0 * n3 + self.one_minus_f0 * n * n * q / self.rated_flow
        )
        shaft = hydraulic + self.wear_friction * wear * n
        elec = shaft / self.elec_div
        torque_a = elec * self.vfd_eff * 1000.0 / (self.sv * np.maximum(n, 0.05))
        root = _col(list(map(pow, (self.mag2 + torque_a * torque_a).tolist(), repeat(0.5))))
        current = np.where(n > 0.02, root, 0.0)
        off = q / self.rated_flow - n
        running = self.vib_base * (n * n + self.vib_offbep * off * off)
        defect = self.wear_vib * wear * n * n
        vib = _col(
            list(map(pow, (self.bg2 + running * running + defect * defect).tolist(), repeat(0.5)))
        )
        nb = np.maximum(n, 0.0)
        n15 = _col(list(map(pow, nb.tolist(), repeat(1.5))))
        eq = ambient + self.rise * n15 + self.wear_rise * wear * nb
        self.bearing_c = self.bearing_c + (eq - self.bearing_c) * self.alpha_thermal
        self.q_meter = self.q_meter + (q - self.q_meter) * self.alpha_meter

        true = np.stack(
            single.true_values(
                self.q_meter, p_suc, p_dis, self.bearing_c, ambient, vib, current, elec, n,
                self.rated_speed, cmd,
            ),
            axis=1,
        )  # fmt: skip
        return self._publish(t, true, z)

    def _publish(self, t: float, true: F64, z: F64) -> FleetTick:
        out = np.empty_like(true)
        for j, (sd, rel) in enumerate(zip(self._sd, self._rel, strict=True)):
            if not sd:
                out[:, j] = true[:, j] + 0.0
            elif rel:
                out[:, j] = true[:, j] + true[:, j] * sd * z[:, j]
            else:
                out[:, j] = true[:, j] + sd * z[:, j]
        faults = self.faults
        for i in faults.instrument:  # stuck readings, drifts, bursts
            row = out[i].tolist()
            act = faults.active[i]
            self.sims[i]._instrument_faults(t, true[i].tolist(), z[i].tolist(), row, act)
            out[i] = row
        out[:, _FLOOR_COLS] = np.where(
            out[:, _FLOOR_COLS] >= self._lows, out[:, _FLOOR_COLS], self._lows
        )
        live, assets, scenarios, prefixes = self._live()
        values = _round(out[live] if len(live) < len(out) else out)
        if not np.isfinite(values.sum(axis=1)).all():
            bad = self.sims[int(live[~np.isfinite(values.sum(axis=1))][0])].asset
            raise FloatingPointError(f"simulator produced a non-finite reading at t={t} on {bad}")
        rows = None if len(live) == len(self.sims) else live.tolist()
        truths = partial(_row_truths, faults.truth_at(t), rows)
        tick = FleetTick(self.seq, t, values, assets, scenarios, prefixes, truths)
        self.seq += 1
        return tick

    def _live(self) -> tuple[npt.NDArray[np.intp], tuple[str, ...], tuple[str, ...], list[str]]:
        """The pumps still publishing, with their asset and scenario names and id prefixes:
        the same objects while the set is unchanged (it only shrinks, so its size says)."""
        count = int(np.count_nonzero(self.seq < self.n_ticks))
        if self._live_cache is None or len(self._live_cache[0]) != count:
            live = np.flatnonzero(self.seq < self.n_ticks)
            rows = [self._ids[i] for i in live.tolist()]
            self._live_cache = (
                live,
                tuple(asset for _, asset, _ in rows),
                tuple(name for _, _, name in rows),
                [prefix for prefix, _, _ in rows],
            )
        return self._live_cache


def _row_truths(snap: TruthSnapshot, rows: list[int] | None) -> list[Truth]:
    """The truths of the pumps publishing (``rows``; None: every pump), built now."""
    truths = snap.resolve()
    return truths if rows is None else [truths[i] for i in rows]


_POW10 = np.array([10.0**d for d in single._DECIMALS])


def _round(x: F64) -> F64:
    """Python's ``round(v, decimals)`` per column, vectorised: the decimal rounding of the exact
    binary value, as the nearest double. ``rint(v·10^d)/10^d`` gives that except where v·10^d
    lies within rounding error of a half (then the exact value decides): those few go through
    Python's ``round``."""
    r = x * _POW10
    out: F64 = np.rint(r) / _POW10
    near = np.abs(np.abs(r - np.floor(r)) - 0.5) < 1e-6
    for i, j in zip(*np.nonzero(near), strict=True):
        out[i, j] = round(float(x[i, j]), single._DECIMALS[j])
    return out
