"""A pump's model of normal, learned from its own stream: no datasheet.

A manoeuvre (valve move, speed change, stop/start) moves every signal *together*, along the pump
and system curves; a fault breaks one of the relations. The monitor therefore watches six
residuals, each a relation between a few instruments, learned per pump:

================  =============================================  ==============================
channel           relation (u = speed/n0, q = flow/Q0, anchors:  unit of the residual
                  the warm-up's operating point)
================  =============================================  ==============================
res.head          Δp/Δp0 = a·u² + b·u·q + c·q²  (pump curve)      % of the warm-up head
res.flow          p_dis/p_dis0 = s + (l + v·g(cmd))·q²            % of the warm-up discharge
                  (system curve through the valve: the discharge  pressure
                  pressure this flow needs at this valve command)
res.power         P/P0 = a·u³ + b·u²·q  (power curve)             % of the warm-up power
res.current       (I/I0)² = m + t·(P/P0/u)²  (V/f drive)           % of the warm-up current
res.vibration     V/V0 = a·u² + b·u·q + c·q²                       % of the model's vibration
res.bearing_temp  T_b = a·L(T_amb) + r·L(u^1.5) + c  (L: thermal   °C
                  first-order lag)
================  =============================================  ==============================

Each relation is a Bayesian linear regression whose prior is generic pump physics written
relative to the warm-up's operating point (affinity laws; a radial pump's head falls with flow,
its power rises with it; a throttling valve of equal-percentage type takes about a third of the
dynamic loss) — shapes, not any pump's numbers. What it learns:

- **the warm-up** pins each relation at the pump's own operating point (its mean only: the
  sample noise within a steady warm-up says nothing about the curves' shapes);
- **every operator manoeuvre** (valve or speed command moved, a start) moves the operating point
  for a known reason: the relations learn from the means over ``chunk_s`` until ``settle_s``
  after it (the bearing relation until ``thermal_settle_s``) and their residuals are not judged
  meanwhile. Nothing else is learned: in steady running the model is fixed, so a slowly
  developing fault is not absorbed;
- **a valve move the flow did not follow** (a move of ``VALVE_MOVE`` %-points or more, after
  which the flow changed by less than ``VALVE_RESPONSE`` in the command's direction) is not
  learned: the valve did not do what it was told, and ``res.flow`` shows it.

The model's own uncertainty at today's operating point (its posterior at a point it has not
seen yet, a thermal transient) widens that residual's threshold, so an operating point far from
anything seen does not alarm before the model has learned it.

Why one module of ~850 lines: the six residual relations, their fit on the warm-up and their update
are one model of one pump: they share the anchors and the fitted coefficients, and reading them
side by side is how a reviewer checks the physics. Detection (``monitor_bank``), intake and
episodes live in their own modules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy import count_nonzero

from engine.agents.monitor_bank import F64, Layout, Sizes
from engine.agents.monitor_config import MonitorConfig
from engine.agents.monitor_normal import Observation
from engine.plant.signals import LIMITS, SIGNALS

B = npt.NDArray[np.bool_]

RESIDUALS: tuple[str, ...] = (
    "res.head",
    "res.flow",
    "res.power",
    "res.current",
    "res.vibration",
    "res.bearing_temp",
    "res.valve",
)
"""The level channels: the six relations' residuals, and ``res.valve`` — the valve command
move the flow did not answer (%-points; 0 while the valve follows its command)."""
RESIDUAL_UNITS: dict[str, str] = {
    "res.head": "% of head",
    "res.flow": "% of discharge pressure",
    "res.power": "% of power",
    "res.current": "% of current",
    "res.vibration": "% of model",
    "res.bearing_temp": "°C",
    "res.valve": "%-points of command",
}
FAMILIES: dict[str, frozenset[str]] = {
    "res.head": frozenset({"hydraulic"}),
    "res.flow": frozenset({"hydraulic"}),
    "res.power": frozenset({"mechanical", "electrical"}),
    "res.current": frozenset({"electrical"}),
    "res.vibration": frozenset({"mechanical"}),
    "res.bearing_temp": frozenset({"mechanical"}),
    "res.valve": frozenset({"hydraulic"}),
    "vibration": frozenset({"mechanical"}),
    "bearing_temp": frozenset({"mechanical"}),
}
"""Channels one process fault tends to light together (bearing wear: vibration, then
temperature and power, over hours): a channel turning on joins an active episode of its family
however old, so a slowly worsening fault stays one alarm."""

# Feature layout: relation -> (first feature, number of features)
_BLOCKS = ((0, 3), (3, 3), (6, 2), (8, 2), (10, 3), (13, 3))
NF = 16
NRES = 6
"""Relations (regressions); the level channels are these plus ``res.valve``."""
NLEVEL = 7
_PRIOR_MEAN = np.array(
    [
        *(1.25, 0.0, -0.25),  # head: shut-off ≈ 1.25 × the operating head
        *(0.5, 0.17, 0.33),  # system: half static, the valve a third of the dynamic loss
        *(0.5, 0.5),  # power: about half at shut-off
        *(0.3, 0.7),  # current: magnetising share (power factor ≈ 0.85)
        *(1.0, 0.0, 0.0),  # vibration ∝ speed²
        *(1.0, 1.0, 0.0),  # bearing: ambient + the warm-up's rise × (u^1.5 lagged) + 0
    ]
)
_PRIOR_SD = np.array(
    [
        *(0.3, 0.3, 0.3),
        *(0.2, 0.12, 0.12),
        *(0.25, 0.25),
        *(0.15, 0.15),
        *(0.5, 0.5, 0.5),
        *(0.05, 0.3, 2.0),  # bearing: the rise's sd is relative, the offset's in °C
    ]
)
VALVE_RANGEABILITY = 30.0
"""Equal-percentage valve characteristic assumed for the command (a typical rangeability; the
relation learns how much of the loss the valve takes)."""
THERMAL_TAU_S = 600.0
"""Bearing thermal time constant assumed before any transient is seen (rolling bearings in a
housing: ten minutes or so); its error shows only during thermal transients, which widen the
bearing relation's threshold (``THERMAL_SLACK``)."""
THERMAL_SLACK = 0.25
"""Relative uncertainty of the bearing's lagged rise during a thermal transient."""
METER_TAU_S = 1.0
"""Flow-meter damping (an instrument setting): signals that react at once are delayed by the
same lag before they are compared with the flow."""
RUNNING_FRACTION = 0.3
"""Below this fraction of its usual running speed the pump counts as stopped."""
VALVE_MOVE = 15.0
"""A valve command move of this many %-points or more must show in the flow ..."""
VALVE_RESPONSE = 0.015
"""... by at least this fraction of the warm-up flow, in the command's direction, ..."""
VALVE_CHECK_S = 30.0
"""... within this long after the command stopped moving (fluid, meter and plug lags)."""

LOG_R = math.log(VALVE_RANGEABILITY)

USES: dict[str, tuple[str, ...]] = {
    "res.head": ("suction_pressure", "discharge_pressure", "flow", "speed"),
    "res.flow": ("discharge_pressure", "flow", "valve_cmd"),
    "res.power": ("power", "flow", "speed"),
    "res.current": ("motor_current", "power", "speed"),
    "res.vibration": ("vibration", "flow", "speed"),
    "res.bearing_temp": ("bearing_temp", "ambient_temp", "speed"),
    "res.valve": ("valve_cmd", "flow"),
}
"""The instruments behind each relation: a relation does not learn while one of them, or the
relation itself, is in an alarm (a stuck or drifting transmitter is not learned as normal)."""

# Raw signals the model uses, in the order of its column map.
_SIG = (
    "flow",
    "suction_pressure",
    "discharge_pressure",
    "bearing_temp",
    "ambient_temp",
    "vibration",
    "motor_current",
    "power",
    "speed",
    "valve_cmd",
)
# Record columns (what the warm-up keeps per sample).
_R_PSUC, _R_PDIS, _R_VIB, _R_CUR, _R_POW, _R_SPD = range(6)  # meter-aligned
_R_FLOW, _R_TB, _R_CMD, _R_LTA, _R_LSP = range(6, 11)
NREC = 11

# Per-sample state of a row, one float64 array (A, NDYN): one read and one write per sample on
# the single-asset path, column views on the vectorised one.
D_AL = 0  # 0..5 meter-aligned p_suc, p_dis, vibration, current, power, speed
D_LTA, D_LSP, D_SLOWQ, D_REF, D_LAST, D_SF, D_K = 6, 7, 8, 9, 10, 11, 12
D_CMDREF, D_SPDREF, D_HYD, D_TH, D_CHN, D_STARTED = 13, 14, 15, 16, 17, 18
NDYN = 19


def valve_gain(cmd: float, x0: float) -> float:
    """Equal-percentage characteristic relative to the warm-up's command (1 at ``x0``).
    One scalar function for both paths, evaluated only when the command changes."""
    return math.exp(-0.02 * LOG_R * (cmd - x0))


class PumpModel:
    """The six learned relations for every pump row of a bank.

    ``observe`` advances rows lo:hi by one sample: numpy over the rows for a batch, plain floats
    for a single row — the same operations in the same order (only +, −, ×, ÷ and square roots
    per sample; the valve characteristic's exponential is one shared scalar function), so a
    pump gives the same residuals alone or in a fleet. Learning (warm-up, manoeuvre windows)
    is per row and shared."""

    dyn: F64
    ready: B
    anchor: F64
    rise: F64
    theta: F64
    cov: F64
    prec: F64
    bvec: F64
    sw2: F64
    extra_ref: F64
    gval: F64
    gcmd: F64
    win: F64
    ch_phi: F64
    ch_y: F64
    unresponsive: B
    no_learn: B

    level_detector = "pump-model"

    def __init__(
        self, raw_names: tuple[str, ...], sizes: Sizes, cfg: MonitorConfig, capacity: int
    ) -> None:
        self.raw_names = raw_names
        self.sz = sizes
        self.cfg = cfg
        self.col = np.array([raw_names.index(n) for n in _SIG], dtype=np.int64)
        self.cols = [int(c) for c in self.col]
        self.fast_cols = [self.cols[j] for j in (1, 2, 5, 6, 7, 8)]
        dt = sizes.dt
        self.a_meter = dt / (METER_TAU_S + dt)
        self.a_th = dt / (THERMAL_TAU_S + dt)
        self.a_slow = dt / (cfg.chunk_s + dt)
        self.settle_steady = max(2, round(30.0 / dt))
        self.settle_n = max(2, round(cfg.settle_s / dt))
        self.check_n = max(2, round(VALVE_CHECK_S / dt))
        self.th_n = max(2, round(cfg.thermal_settle_s / dt))
        self.chunk_n = max(2, round(cfg.chunk_s / dt))
        self.ramp = cfg.steady_ramp_pct_s / 100.0 * dt
        self.group = np.zeros((NF, NRES))
        for r, (f0, n) in enumerate(_BLOCKS):
            self.group[f0 : f0 + n, r] = 1.0
        self.block_mask = self.group @ self.group.T > 0  # (NF, NF) block-diagonal pattern
        # hysteresis channel (level, raw) -> relations it stops learning
        H = NLEVEL + len(raw_names)
        self.blocks = np.zeros((H, NRES), dtype=bool)
        for r, name in enumerate(RESIDUALS[:NRES]):
            self.blocks[r, r] = True
            for sig in USES[name]:
                if sig in raw_names:
                    self.blocks[NLEVEL + raw_names.index(sig), r] = True
        self.cap = 0
        self._alloc(capacity)
        self.pending: dict[int, list[tuple[F64, F64, bool, bool]]] = {}
        self.const: list[tuple[float, ...] | None] = [None] * capacity

    def layout(self) -> Layout:
        names = self.raw_names
        limits = tuple((names.index(n), v) for n, v in LIMITS.items() if n in names)
        fam = [FAMILIES.get(n, frozenset()) for n in RESIDUALS]
        fam += [frozenset()] * len(names)
        fam += [FAMILIES.get(names[i], frozenset()) for i, _ in limits]
        return Layout(
            raw_names=names,
            level_names=RESIDUALS,
            adaptive=(False,) * NLEVEL,
            sensor=tuple(n in SIGNALS and SIGNALS[n].is_sensor for n in names),
            relative_noise=tuple(n in SIGNALS and SIGNALS[n].relative_noise for n in names),
            limits=limits,
            families=tuple(fam),
        )

    # ------------------------------------------------------------------ storage

    def _alloc(self, cap: int) -> None:
        old = self.cap

        def grow(name: str, shape: tuple[int, ...], fill: float | int | bool, dtype: type) -> None:
            new: npt.NDArray[Any] = np.full((cap, *shape), fill, dtype=dtype)
            if old:
                new[:old] = getattr(self, name)
            setattr(self, name, new)

        grow("dyn", (NDYN,), 0.0, np.float64)
        grow("ready", (), False, bool)
        grow("anchor", (8,), 1.0, np.float64)  # n0, Q0, x0, dp0, pd0, P0, I0, V0
        grow("rise", (), 1.0, np.float64)  # bearing rise above ambient at the warm-up speed
        grow("theta", (NF,), 0.0, np.float64)
        grow("cov", (NF, NF), 0.0, np.float64)
        grow("prec", (NF, NF), 0.0, np.float64)
        grow("bvec", (NF,), 0.0, np.float64)
        grow("sw2", (NRES,), 1.0, np.float64)
        grow("extra_ref", (NRES,), 0.0, np.float64)
        grow("gval", (), 1.0, np.float64)  # valve_gain at gcmd
        grow("gcmd", (), np.nan, np.float64)
        grow("win", (3,), 0.0, np.float64)  # flow, command, speed when a window opened
        grow("ch_phi", (NF,), 0.0, np.float64)
        grow("ch_y", (NRES,), 0.0, np.float64)
        grow("unresponsive", (), False, bool)
        grow("no_learn", (NRES,), False, bool)  # alarmed during the open window
        self.cap = cap

    def grow(self, cap: int) -> None:
        if cap > self.cap:
            self._alloc(cap)
            self.const += [None] * (cap - len(self.const))

    def reset_row(self, i: int) -> None:
        self.dyn[i] = 0.0
        self.dyn[i, D_HYD] = -1.0
        self.dyn[i, D_TH] = -1.0
        for name in ("theta", "cov", "prec", "bvec", "extra_ref", "win", "ch_phi", "ch_y"):
            getattr(self, name)[i] = 0.0
        self.anchor[i] = 1.0
        self.sw2[i] = 1.0
        self.rise[i] = 1.0
        self.gval[i] = 1.0
        self.gcmd[i] = np.nan
        self.ready[i] = False
        self.unresponsive[i] = False
        self.no_learn[i] = False
        self.pending.pop(i, None)
        self.const[i] = None

    def _refresh(self, i: int) -> None:
        """The row's per-sample constants as plain floats (single-asset path)."""
        ct = self.cov[i, 13:16, 13:16].ravel().tolist()
        self.const[i] = (
            *self.anchor[i].tolist(),
            float(self.rise[i]),
            *self.theta[i].tolist(),
            *self.extra_ref[i].tolist(),
            *ct,
        )

    # ------------------------------------------------------------------ the relations

    def _features(self, rec: F64, anchor: F64, rise: F64, g: F64) -> tuple[F64, F64]:
        """Features (n, NF) and targets (n, NRES) from records (n, NREC); ``g`` the valve
        characteristic at each record's command."""
        n0, q0, dp0, pd0, p0, i0, v0 = (anchor[:, j] for j in (0, 1, 3, 4, 5, 6, 7))
        u = rec[:, _R_SPD] / n0
        q = rec[:, _R_FLOW] / q0
        uq = u * q
        uu = u * u
        qq = q * q
        pn = rec[:, _R_POW] / p0
        tq = pn / np.maximum(u, 0.05)
        phi = np.empty((len(rec), NF))
        phi[:, 0] = uu
        phi[:, 1] = uq
        phi[:, 2] = qq
        phi[:, 3] = 1.0
        phi[:, 4] = qq
        phi[:, 5] = g * qq
        phi[:, 6] = uu * u
        phi[:, 7] = uu * q
        phi[:, 8] = 1.0
        phi[:, 9] = tq * tq
        phi[:, 10] = uu
        phi[:, 11] = uq
        phi[:, 12] = qq
        phi[:, 13] = rec[:, _R_LTA]
        phi[:, 14] = rec[:, _R_LSP] / (n0 * np.sqrt(n0)) * rise
        phi[:, 15] = 1.0
        y = np.empty((len(rec), NRES))
        y[:, 0] = (rec[:, _R_PDIS] - rec[:, _R_PSUC]) / dp0
        y[:, 1] = rec[:, _R_PDIS] / pd0
        y[:, 2] = pn
        cur = rec[:, _R_CUR] / i0
        y[:, 3] = cur * cur
        y[:, 4] = rec[:, _R_VIB] / v0
        y[:, 5] = rec[:, _R_TB]
        return phi, y

    def _residuals(self, phi: F64, y: F64, th: F64) -> tuple[F64, F64]:
        """Residual channels in their units (n, NRES) and the factors converting the
        relations' normalised units to them. Sums written out left to right (no matmul), as
        in ``_observe_one``."""
        p = phi
        pred = np.empty_like(y)
        pred[:, 0] = p[:, 0] * th[:, 0] + p[:, 1] * th[:, 1] + p[:, 2] * th[:, 2]
        pred[:, 1] = p[:, 3] * th[:, 3] + p[:, 4] * th[:, 4] + p[:, 5] * th[:, 5]
        pred[:, 2] = p[:, 6] * th[:, 6] + p[:, 7] * th[:, 7]
        pred[:, 3] = p[:, 8] * th[:, 8] + p[:, 9] * th[:, 9]
        pred[:, 4] = p[:, 10] * th[:, 10] + p[:, 11] * th[:, 11] + p[:, 12] * th[:, 12]
        pred[:, 5] = p[:, 13] * th[:, 13] + p[:, 14] * th[:, 14] + p[:, 15] * th[:, 15]
        e = y - pred
        conv = np.empty_like(e)
        conv[:, 0] = 100.0
        conv[:, 1] = 100.0
        conv[:, 2] = 100.0
        conv[:, 3] = 50.0 / np.sqrt(np.maximum(pred[:, 3], 1e-6))  # d√y = dy / (2√y)
        conv[:, 4] = 100.0 / np.maximum(pred[:, 4], 1e-3)
        conv[:, 5] = 1.0
        return e * conv, conv

    def _extra_at(self, i: int, phi: F64, conv: F64, which: B) -> None:
        """Remember row i's model uncertainty (3 sd, residual units) at the point where the
        relations ``which`` learned last."""
        lev = (np.einsum("f,fg->g", phi, self.cov[i]) * phi) @ self.group
        extra = 3.0 * np.sqrt(np.maximum(lev, 0.0)) * np.abs(conv)
        self.extra_ref[i] = np.where(which, extra, self.extra_ref[i])

    def _gains(self, lo: int, hi: int, cmd: F64, ready: B) -> F64:
        """The valve gain at each row's command, cached per row; only ready rows (anchored)
        are computed, as a row alone would (the others' residuals are held anyway)."""
        gcmd = self.gcmd[lo:hi]
        changed = (cmd != gcmd) & ready
        if changed.any():
            for r in np.flatnonzero(changed).tolist():
                i = lo + r
                self.gval[i] = valve_gain(float(cmd[r]), float(self.anchor[i, 2]))
                self.gcmd[i] = cmd[r]
        return self.gval[lo:hi]

    # ------------------------------------------------------------------ per sample

    def observe(self, lo: int, hi: int, x: F64, missing: B | None, alarmed: B) -> Observation:
        """One sample of rows lo:hi. ``alarmed`` (n, NLEVEL + S): the level and raw channels that
        are on — the relations they involve do not learn (a fault is never learned as
        normal)."""
        if hi - lo == 1:
            return self._observe_one(lo, x[0], alarmed)
        n = hi - lo
        s = x[:, self.col]
        flow, speed, cmd = s[:, 0], s[:, 8], s[:, 9]
        dyn = self.dyn[lo:hi]
        fast = s[:, (1, 2, 5, 6, 7, 8)]
        sp = np.maximum(speed, 0.0)
        sp15 = sp * np.sqrt(sp)
        new = dyn[:, D_STARTED] == 0.0
        if new.any():
            dyn[new, D_AL : D_AL + 6] = fast[new]
            dyn[new, D_LTA] = s[new, 4]
            dyn[new, D_LSP] = sp15[new]
            dyn[new, D_SLOWQ] = flow[new]
            dyn[new, D_STARTED] = 1.0
        al = dyn[:, D_AL : D_AL + 6]
        al += (fast - al) * self.a_meter
        dyn[:, D_LTA] += (s[:, 4] - dyn[:, D_LTA]) * self.a_th
        dyn[:, D_LSP] += (sp15 - dyn[:, D_LSP]) * self.a_th
        dyn[:, D_SLOWQ] += (flow - dyn[:, D_SLOWQ]) * self.a_slow
        ref = np.maximum(dyn[:, D_REF], speed)
        dyn[:, D_REF] = ref
        running = speed > RUNNING_FRACTION * ref
        steady = running & (np.abs(speed - dyn[:, D_LAST]) <= self.ramp * ref)
        dyn[:, D_LAST] = speed
        sf = np.where(steady, dyn[:, D_SF] + 1.0, 0.0)
        dyn[:, D_SF] = sf
        settled = sf > self.settle_steady
        dyn[:, D_K] += 1.0
        k = dyn[:, D_K]
        rec = self._record(dyn, flow, s[:, 3], cmd)
        ready = self.ready[lo:hi]
        if not ready.any():
            return Observation(np.zeros((n, NLEVEL)), rec, None, settled, settled, None)
        moved = (np.abs(cmd - dyn[:, D_CMDREF]) > 0.5) | ~settled
        moved |= np.abs(al[:, 5] - dyn[:, D_SPDREF]) > self.cfg.manoeuvre_speed_frac * ref
        moved &= ready
        if moved.any():
            for r in np.flatnonzero(moved).tolist():
                self._manoeuvre(lo + r, float(cmd[r]), float(al[r, 5]))
        g = self._gains(lo, hi, cmd, ready)
        phi, y = self._features(rec, self.anchor[lo:hi], self.rise[lo:hi], g)
        res, _ = self._residuals(phi, y, self.theta[lo:hi])
        # The model's own uncertainty: for the hydraulic and electrical relations, as it was
        # where it last learned (a fault moving the operating point must not widen its own
        # threshold); for the bearing, at today's ambient and speed, plus the thermal
        # transient (the lagged rise is uncertain by THERMAL_SLACK of its imbalance).
        extra = self.extra_ref[lo:hi].copy()
        ct = self.cov[lo:hi, 13:16, 13:16]
        p13, p14, p15 = phi[:, 13], phi[:, 14], phi[:, 15]
        lev = (
            p13 * (ct[:, 0, 0] * p13 + ct[:, 0, 1] * p14 + ct[:, 0, 2] * p15)
            + p14 * (ct[:, 1, 0] * p13 + ct[:, 1, 1] * p14 + ct[:, 1, 2] * p15)
            + p15 * (ct[:, 2, 0] * p13 + ct[:, 2, 1] * p14 + ct[:, 2, 2] * p15)
        )
        n0 = self.anchor[lo:hi, 0]
        imb = np.abs(sp15 - dyn[:, D_LSP]) / (n0 * np.sqrt(n0))
        a = 3.0 * np.sqrt(np.maximum(lev, 0.0))
        b = 3.0 * THERMAL_SLACK * self.rise[lo:hi] * imb
        extra[:, 5] = np.sqrt(a * a + b * b)
        # Learning windows: hydraulic relations are held while theirs is open; the bearing
        # relation is judged throughout (its threshold widened by the transient).
        in_hyd = k <= dyn[:, D_HYD]
        in_th = k <= dyn[:, D_TH]
        hold = np.zeros((n, NLEVEL), dtype=bool)
        hold[:, :5] = (k <= dyn[:, D_HYD] + 1.0)[:, None]  # the closing sample too (old fit)
        unresp = self.unresponsive[lo:hi]
        hold[:, 1] &= ~unresp  # a valve that did not follow: judge res.flow
        hold[~settled] = True
        hold[~ready] = True
        level = np.empty((n, NLEVEL))
        level[:, :NRES] = res
        level[:, NRES] = np.where(unresp, np.abs(cmd - self.win[lo:hi, 1]), 0.0)
        extra7 = np.zeros((n, NLEVEL))
        extra7[:, :NRES] = extra
        if alarmed.any():
            self.no_learn[lo:hi] |= (alarmed.astype(np.float64) @ self.blocks) > 0
        busy = (in_hyd | in_th | (dyn[:, D_CHN] > 0)) & ready
        closing = ready & ((k == dyn[:, D_HYD] + 1.0) | (k == dyn[:, D_TH] + 1.0))
        watch = self.unresponsive[lo:hi] & ready
        only = watch & ~(busy | closing)
        if only.any():  # a valve only watched: nothing to do until the flow answers it
            win = self.win[lo:hi]
            got = (dyn[:, D_SLOWQ] - win[:, 0]) / self.anchor[lo:hi, 1]
            watch &= ~only | (got * np.copysign(1.0, cmd - win[:, 1]) >= VALVE_RESPONSE)
        ev = np.flatnonzero(busy | closing | watch)
        if ev.size:
            # ``_events`` of each row, split: the chunk sums of every row at once, then the
            # rest only for the rows where it does something (rows are independent).
            ih, it = in_hyd[ev], in_th[ev]
            acc = ev[settled[ev] & (ih | it)]
            if acc.size:
                self.ch_phi[lo + acc] += phi[acc]
                self.ch_y[lo + acc] += y[acc]
                dyn[acc, D_CHN] += 1.0
            n_ch = dyn[ev, D_CHN]
            need = (n_ch >= self.chunk_n) | ((n_ch > 0) & ~(ih | it)) | closing[ev]
            need |= ih & (dyn[ev, D_K] == dyn[ev, D_HYD] - self.settle_n + self.check_n)
            need |= self.unresponsive[lo + ev]
            for r in ev[need].tolist():
                self._events_rest(
                    lo + r, bool(in_hyd[r]), bool(in_th[r]), bool(closing[r]), float(cmd[r])
                )
        return Observation(level, rec, hold, settled, settled, extra7)

    def _record(self, dyn: F64, flow: F64, tb: F64, cmd: F64) -> F64:
        rec = np.empty((len(dyn), NREC))
        rec[:, :6] = dyn[:, D_AL : D_AL + 6]
        rec[:, _R_FLOW] = flow
        rec[:, _R_TB] = tb
        rec[:, _R_CMD] = cmd
        rec[:, _R_LTA] = dyn[:, D_LTA]
        rec[:, _R_LSP] = dyn[:, D_LSP]
        return rec

    def _observe_one(self, i: int, xv: F64, alarmed: B) -> Observation:
        """``observe`` for one row, on plain floats: the same operations in the same order."""
        xs = xv.tolist()
        c = self.cols
        flow, tb, amb, speed, cmd = xs[c[0]], xs[c[3]], xs[c[4]], xs[c[8]], xs[c[9]]
        fast = [xs[j] for j in self.fast_cols]
        d = self.dyn[i].tolist()
        sp = speed if speed > 0.0 else 0.0
        sp15 = sp * math.sqrt(sp)
        if d[D_STARTED] == 0.0:
            d[D_AL : D_AL + 6] = fast
            d[D_LTA], d[D_LSP], d[D_SLOWQ], d[D_STARTED] = amb, sp15, flow, 1.0
        am = self.a_meter
        for j in range(6):
            d[j] += (fast[j] - d[j]) * am
        d[D_LTA] += (amb - d[D_LTA]) * self.a_th
        d[D_LSP] += (sp15 - d[D_LSP]) * self.a_th
        d[D_SLOWQ] += (flow - d[D_SLOWQ]) * self.a_slow
        ref = d[D_REF] if d[D_REF] >= speed else speed
        d[D_REF] = ref
        running = speed > RUNNING_FRACTION * ref
        steady = running and abs(speed - d[D_LAST]) <= self.ramp * ref
        d[D_LAST] = speed
        sf = d[D_SF] + 1.0 if steady else 0.0
        d[D_SF] = sf
        settled = sf > self.settle_steady
        d[D_K] += 1.0
        k = d[D_K]
        run_a = None if settled else np.zeros(1, dtype=bool)
        if not self.ready[i]:
            self.dyn[i] = d
            rec = np.array([[*d[:6], flow, tb, cmd, d[D_LTA], d[D_LSP]]])
            return Observation(np.zeros((1, NLEVEL)), rec, None, run_a, np.array([settled]), None)
        spd = d[D_AL + 5]
        if (
            abs(cmd - d[D_CMDREF]) > 0.5
            or not settled
            or abs(spd - d[D_SPDREF]) > self.cfg.manoeuvre_speed_frac * ref
        ):
            self.dyn[i] = d
            self._manoeuvre(i, cmd, spd)
            d = self.dyn[i].tolist()
        if cmd != self.gcmd[i]:
            self.gval[i] = valve_gain(cmd, float(self.anchor[i, 2]))
            self.gcmd[i] = cmd
        g = float(self.gval[i])
        cst = self.const[i]
        if cst is None:
            self._refresh(i)
            cst = self.const[i]
        assert cst is not None
        n0, q0, _x0, dp0, pd0, p0, i0, v0, rise = cst[:9]
        th = cst[9:25]
        ex = cst[25:31]
        ct = cst[31:40]
        # features (as _features)
        u = d[_R_SPD] / n0
        q = flow / q0
        uq = u * q
        uu = u * u
        qq = q * q
        pn = d[_R_POW] / p0
        tq = pn / (u if u > 0.05 else 0.05)
        f5 = g * qq
        f6 = uu * u
        f7 = uu * q
        f9 = tq * tq
        f13 = d[D_LTA]
        f14 = d[D_LSP] / (n0 * math.sqrt(n0)) * rise
        y0 = (d[_R_PDIS] - d[_R_PSUC]) / dp0
        y1 = d[_R_PDIS] / pd0
        cur = d[_R_CUR] / i0
        y3 = cur * cur
        y4 = d[_R_VIB] / v0
        # predictions and residuals (as _residuals)
        p0_ = uu * th[0] + uq * th[1] + qq * th[2]
        p1_ = 1.0 * th[3] + qq * th[4] + f5 * th[5]
        p2_ = f6 * th[6] + f7 * th[7]
        p3_ = 1.0 * th[8] + f9 * th[9]
        p4_ = uu * th[10] + uq * th[11] + qq * th[12]
        p5_ = f13 * th[13] + f14 * th[14] + 1.0 * th[15]
        c3 = math.sqrt(p3_ if p3_ > 1e-6 else 1e-6)
        c4 = p4_ if p4_ > 1e-3 else 1e-3
        res = [
            (y0 - p0_) * 100.0,
            (y1 - p1_) * 100.0,
            (pn - p2_) * 100.0,
            (y3 - p3_) * (50.0 / c3),
            (y4 - p4_) * (100.0 / c4),
            (tb - p5_) * 1.0,
        ]
        lev = (
            f13 * (ct[0] * f13 + ct[1] * f14 + ct[2] * 1.0)
            + f14 * (ct[3] * f13 + ct[4] * f14 + ct[5] * 1.0)
            + 1.0 * (ct[6] * f13 + ct[7] * f14 + ct[8] * 1.0)
        )
        imb = abs(sp15 - d[D_LSP]) / (n0 * math.sqrt(n0))
        a = 3.0 * math.sqrt(lev if lev > 0.0 else 0.0)
        b = 3.0 * THERMAL_SLACK * rise * imb
        extra = [*ex[:5], math.sqrt(a * a + b * b), 0.0]
        unresp = bool(self.unresponsive[i])
        res.append(abs(cmd - float(self.win[i, 1])) if unresp else 0.0)
        in_hyd = k <= d[D_HYD]
        in_th = k <= d[D_TH]
        hold = None
        if k <= d[D_HYD] + 1.0 or not settled:  # the closing sample too (old fit)
            hold = np.zeros((1, NLEVEL), dtype=bool)
            hold[0, : (NLEVEL if not settled else 5)] = True
            if settled and unresp:
                hold[0, 1] = False  # a valve that did not follow: judge res.flow
        self.dyn[i] = d
        if count_nonzero(alarmed):
            self.no_learn[i] |= (alarmed[0].astype(np.float64) @ self.blocks) > 0
        closing = k == d[D_HYD] + 1.0 or k == d[D_TH] + 1.0
        if in_hyd or in_th or d[D_CHN] > 0 or closing or self.unresponsive[i]:
            phi = np.array([uu, uq, qq, 1.0, qq, f5, f6, f7, 1.0, f9, uu, uq, qq, f13, f14, 1.0])
            yv = np.array([y0, y1, pn, y3, y4, tb])
            self._events(i, phi, yv, settled, in_hyd, in_th, closing, cmd)
        return Observation(
            np.array([res]),
            np.empty((1, NREC)),
            hold,
            run_a,
            np.array([settled]),
            np.array([extra]),
        )

    # ------------------------------------------------------------------ learning (per row)

    def _manoeuvre(self, i: int, cmd: float, speed: float) -> None:
        """The operating point is moving for a known reason: (re)open the learning windows.
        The hydraulic relations learn only from the steady samples after the last move (a
        ramp's transients are not a static relation); the bearing's from the whole window."""
        dyn = self.dyn[i]
        k = dyn[D_K]
        if k > dyn[D_HYD]:  # a window opens: remember where it started from
            self.win[i] = (dyn[D_SLOWQ], dyn[D_CMDREF], dyn[D_AL + 5])
        items = self.pending.get(i)
        if items:
            self.pending[i] = [(p, y, False, t) for p, y, _h, t in items if t]
        if dyn[D_CHN] > 0:
            self.ch_phi[i] = 0.0
            self.ch_y[i] = 0.0
            dyn[D_CHN] = 0.0
        dyn[D_CMDREF] = cmd
        dyn[D_SPDREF] = speed
        dyn[D_HYD] = k + self.settle_n
        dyn[D_TH] = max(dyn[D_TH], k + self.th_n)

    def _events(
        self,
        i: int,
        phi: F64,
        y: F64,
        settled: bool,
        in_hyd: bool,
        in_th: bool,
        closing: bool,
        cmd: float,
    ) -> None:
        """Window bookkeeping of row i: chunk means, windows closing, a stuck valve freeing."""
        if settled and (in_hyd or in_th):
            self.ch_phi[i] += phi
            self.ch_y[i] += y
            self.dyn[i, D_CHN] += 1.0
        self._events_rest(i, in_hyd, in_th, closing, cmd)

    def _events_rest(self, i: int, in_hyd: bool, in_th: bool, closing: bool, cmd: float) -> None:
        """``_events`` after the chunk sums (``observe`` adds those for every row at once)."""
        dyn = self.dyn[i]
        n = int(dyn[D_CHN])
        if n >= self.chunk_n or (n > 0 and not (in_hyd or in_th)):
            if n >= self.chunk_n:
                item = (self.ch_phi[i] / n, self.ch_y[i] / n, in_hyd, in_th)
                self.pending.setdefault(i, []).append(item)
            self.ch_phi[i] = 0.0
            self.ch_y[i] = 0.0
            dyn[D_CHN] = 0.0
        check = in_hyd and dyn[D_K] == dyn[D_HYD] - self.settle_n + self.check_n
        if closing:
            self._close(i, cmd)
        elif check and not self._valve_followed(i, cmd):
            # The flow has had time to follow the valve and did not: say so now rather than
            # at the end of the window (res.flow is released from the window's hold).
            self.unresponsive[i] = True
        if self.unresponsive[i] and not in_hyd:
            self._watch_valve(i, cmd)

    def _close(self, i: int, cmd: float) -> None:
        """A learning window closed: learn the chunks it collected (if they are consistent)."""
        dyn = self.dyn[i]
        k = dyn[D_K]
        items = self.pending.get(i, [])
        learn = np.ones(NRES, dtype=bool)
        if k == dyn[D_HYD] + 1.0:
            dyn[D_SPDREF] = dyn[D_AL + 5]  # the settled point is the reference from now on
            learn[5] = False  # the bearing relation waits for its own window
            if not self._valve_followed(i, cmd):
                learn[1] = False
                self.unresponsive[i] = True
            elif abs(cmd - self.win[i, 1]) >= VALVE_MOVE:
                self.unresponsive[i] = False
            use = [it for it in items if it[2]]
            keep: list[tuple[F64, F64, bool, bool]] = [
                (p, y, False, t) for p, y, _h, t in items if t
            ]
        else:
            learn[:5] = False
            use = [it for it in items if it[3]]
            keep = []
        self.pending[i] = keep
        learn &= ~self.no_learn[i]
        self.no_learn[i] = False
        if use and learn.any():
            self._learn(i, use, learn)

    def _valve_followed(self, i: int, cmd: float) -> bool:
        """Did the flow follow a valve move at constant speed? A throttling valve moved by
        ``VALVE_MOVE`` %-points or more changes the flow, in the command's direction, by more
        than ``VALVE_RESPONSE`` of it (whatever the valve's share of the loop's loss in a
        working range): if the flow did not move, the valve did not. (True when there was no
        such move.)"""
        q_then, x_then, s_then = (float(v) for v in self.win[i])
        speed = float(self.dyn[i, D_AL + 5])
        if abs(cmd - x_then) < VALVE_MOVE or abs(speed - s_then) > 0.01 * max(s_then, 1.0):
            return True
        got = (float(self.dyn[i, D_SLOWQ]) - q_then) / float(self.anchor[i, 1])
        return got * math.copysign(1.0, cmd - x_then) >= VALVE_RESPONSE

    def _watch_valve(self, i: int, cmd: float) -> None:
        """A valve that did not follow its command may catch up later (stiction released):
        when the flow then moves the way the command said, that is a manoeuvre to learn."""
        dyn = self.dyn[i]
        q_then, x_then, _s = (float(v) for v in self.win[i])
        got = (float(dyn[D_SLOWQ]) - q_then) / float(self.anchor[i, 1])
        if got * math.copysign(1.0, cmd - x_then) >= VALVE_RESPONSE:
            self.unresponsive[i] = False
            dyn[D_CMDREF] = cmd
            self._manoeuvre(i, cmd, float(dyn[D_AL + 5]))

    def _learn(self, i: int, items: list[tuple[F64, F64, bool, bool]], learn: B) -> None:
        w = learn @ self.group.T > 0  # features of the relations that learn
        sw2 = self.sw2[i] @ self.group.T  # noise variance per feature's relation
        for p_, y_, _h, _t in items:
            yf = y_ @ self.group.T
            pw = np.where(w, p_, 0.0)
            self.prec[i] += np.outer(pw, pw) / sw2[:, None] * self.block_mask
            self.bvec[i] += pw * yf / sw2
        self._solve(i)
        last = items[-1][0]
        _, conv = self._residuals(last[None, :], np.zeros((1, NRES)), self.theta[i][None, :])
        self._extra_at(i, last, conv[0], learn)
        self._refresh(i)

    def _solve(self, i: int) -> None:
        cov = np.zeros((NF, NF))
        theta = np.zeros(NF)
        for f0, n in _BLOCKS:
            sl = slice(f0, f0 + n)
            c = np.linalg.inv(self.prec[i, sl, sl])
            cov[sl, sl] = c
            theta[sl] = c @ self.bvec[i, sl]
        self.cov[i] = cov
        self.theta[i] = theta

    # ------------------------------------------------------------------ warm-up

    def fit(self, i: int, rec: F64) -> tuple[F64, F64]:
        """Anchor row i's relations at its warm-up operating point. Returns (residual series
        over the warm-up, accuracy floors)."""
        W = len(rec)
        anchor = np.array(
            [
                rec[:, _R_SPD].mean(),
                rec[:, _R_FLOW].mean(),
                rec[:, _R_CMD].mean(),
                (rec[:, _R_PDIS] - rec[:, _R_PSUC]).mean(),
                rec[:, _R_PDIS].mean(),
                rec[:, _R_POW].mean(),
                rec[:, _R_CUR].mean(),
                rec[:, _R_VIB].mean(),
            ]
        )
        anchor = np.where(np.abs(anchor) > 1e-9, anchor, 1.0)
        anchor[2] = rec[:, _R_CMD].mean()
        rise = float((rec[:, _R_TB] - rec[:, _R_LTA]).mean())
        rise = rise if abs(rise) > 0.5 else 0.5
        self.anchor[i] = anchor
        self.rise[i] = rise
        self.gcmd[i] = np.nan  # the cached valve gain was taken at the old anchor
        a = np.broadcast_to(anchor, (W, 8))
        # The gain per distinct command (a warm-up holds a few), spread back over the samples.
        cmds, at = np.unique(rec[:, _R_CMD], return_inverse=True)
        g = np.array([valve_gain(v, float(anchor[2])) for v in cmds.tolist()])[at]
        phi, y = self._features(rec, a, np.full(W, rise), g)
        prec0 = np.diag(1.0 / _PRIOR_SD**2)
        # The anchor: one observation of the warm-up's mean point, weighted by how many
        # independent chunk means the warm-up holds (a steady warm-up says nothing about the
        # curves' shapes; the sample noise within it must not pretend to).
        pbar, ybar = phi.mean(axis=0), y.mean(axis=0)
        nch = max(1, W // self.chunk_n)
        yf = ybar @ self.group.T
        # First with a tight anchor, to measure the noise of chunk means; then the real weight.
        self.prec[i] = prec0 + np.outer(pbar, pbar) * self.block_mask * 1e6
        self.bvec[i] = prec0 @ _PRIOR_MEAN + pbar * yf * 1e6
        self._solve(i)
        pred = (phi * self.theta[i]) @ self.group
        e = y - pred
        cut = nch * self.chunk_n
        cm = e[:cut].reshape(nch, self.chunk_n, NRES).mean(axis=1) if nch > 1 else e
        sw2 = np.maximum(cm.var(axis=0), 1e-10)
        self.sw2[i] = sw2
        sw2f = sw2 @ self.group.T
        self.prec[i] = prec0 + np.outer(pbar, pbar) * self.block_mask * (nch / sw2f[:, None])
        self.bvec[i] = prec0 @ _PRIOR_MEAN + pbar * yf * nch / sw2f
        self._solve(i)
        res, conv = self._residuals(phi, y, np.broadcast_to(self.theta[i], (W, NF)))
        self._extra_at(i, pbar, conv.mean(axis=0), np.ones(NRES, dtype=bool))
        dyn = self.dyn[i]
        dyn[D_CMDREF] = rec[-1, _R_CMD]
        dyn[D_SPDREF] = rec[-1, _R_SPD]
        self.ready[i] = True
        self._refresh(i)
        floors = np.array([self.cfg.pump_floors.get(n, 0.0) for n in RESIDUALS])
        level = np.zeros((W, NLEVEL))
        level[:, :NRES] = res
        return level, floors
