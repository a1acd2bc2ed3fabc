"""The diagnosis' per-sample work for many pumps at once: one numpy step per tick of a fleet.

A fleet replay feeds the diagnosis a thousand samples per tick, and per sample it did little but
Python bookkeeping over per-pump objects (the model observer, the steady-running counter, a row
into the pump's history ring): ~10 µs a sample, as much as the monitor. ``HistoryBank`` holds that
state as arrays, one slot per pump: the history rings of every pump in one (slots × ring × columns)
float32 array — each pump's ``History`` keeps views into its slot, so the feature code reads it as
before — and the observer and steady-running state as (slots × …) float64 arrays while the pump is
*banked*. ``step`` advances the banked pumps of one tick together.

Byte-identical to the per-sample path (``AssetHistory.push``), which it replaces only for a
complete, in-order sample of a pump already set up: the same IEEE operations in the same order on
float64 (``+ − × ÷`` and square roots are correctly rounded, so numpy and Python floats agree),
and the two transcendental functions — the valve characteristic's ``exp`` and the bearing
rise's ``n ** 1.5`` — are taken per pump with Python's own, because numpy's vectorised versions
may differ from the C library's in the last bit. A test holds the two paths equal.

While a pump is banked, its objects (``PumpObserver``, ``SteadyRunning``, ``last_signals``)
are stale: ``sync_out`` writes the bank's values back (before a state export, or before the pump
is fed a sample the batch does not handle), ``sync_in`` takes them over again. The history ring,
its count and the last timestamp are always current on the objects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import repeat

import numpy as np
import numpy.typing as npt

from engine.agents.diagnosis_history import COLUMNS, N_SIG, AssetHistory, History
from engine.agents.monitor_physics import ALIGNED, PumpObserver
from engine.agents.steady import SteadyRunning
from engine.plant.pump import BAR_PER_M
from engine.plant.signals import SIGNAL_ORDER

F64 = npt.NDArray[np.float64]

_SIG = {name: i for i, name in enumerate(SIGNAL_ORDER)}
_ALIGNED = [_SIG[name] for name in ALIGNED]
_FLOW, _SPEED, _SUCTION = _SIG["flow"], _SIG["speed"], _SIG["suction_pressure"]
_VALVE, _AMBIENT, _BEARING = _SIG["valve_cmd"], _SIG["ambient_temp"], _SIG["bearing_temp"]
_NCOL = len(COLUMNS)


class HistoryBank:
    """Slots for the pumps of one sampling period ``dt`` (the ring length and the observer's
    constants depend on it). ``adopt`` gives a pump a slot (its ring moves into the bank),
    ``release`` gives it back (the ring moves out again)."""

    rows: npt.NDArray[np.float32]
    ts: F64
    state: F64
    steady_for: npt.NDArray[np.int64]

    def __init__(self, history_s: float, dt: float, settle_s: float) -> None:
        self.dt = dt
        probe = History(history_s, dt)
        self.n = probe.n
        obs = PumpObserver(dt)
        self.c = obs._c
        self.a_fluid, self.a_meter = obs.a_fluid, obs.a_meter
        th = obs.thermal
        self.th_alpha, self.th_rated, self.th_rise, self.th_wear = (
            th.alpha,
            th.rated,
            th.rise,
            th.healthy_wear,
        )
        steady = SteadyRunning(dt, settle_s=settle_s)
        self.max_step_rpm = steady.max_step_rpm
        self.min_running_rpm = steady.min_running_rpm
        self.settle_n = steady.settle_n
        self.cap = 0
        self.owners: list[History | None] = []
        self.free: list[int] = []
        self._alloc(64)

    def _alloc(self, cap: int) -> None:
        """Grow to ``cap`` slots (np.zeros: pages a pump has not written yet cost no memory)."""
        old = self.cap
        rows = np.zeros((cap, self.n, _NCOL), dtype=np.float32)
        ts = np.zeros((cap, self.n))
        state = np.zeros((cap, len(ALIGNED) + 4 + N_SIG))
        steady_for = np.zeros(cap, dtype=np.int64)
        if old:
            rows[:old], ts[:old] = self.rows, self.ts
            state[:old], steady_for[:old] = self.state, self.steady_for
        self.rows, self.ts, self.state, self.steady_for = rows, ts, state, steady_for
        for slot, h in enumerate(self.owners):
            if h is not None:
                h.rows, h.ts = rows[slot], ts[slot]
        self.free += range(cap - 1, old - 1, -1)
        self.owners += [None] * (cap - old)
        self.cap = cap

    # state columns: aligned (6), q_fluid, q_pred, thermal, last_speed, last_signals (N_SIG)
    _QF, _QP, _TH, _LS = len(ALIGNED), len(ALIGNED) + 1, len(ALIGNED) + 2, len(ALIGNED) + 3
    _SIGS = len(ALIGNED) + 4

    def adopt(self, h: AssetHistory) -> int:
        """A slot for a set-up pump (``h.hist`` holds at least one row): its ring moves here."""
        hist = h.hist
        assert hist is not None and hist.n == self.n
        if not self.free:
            self._alloc(self.cap * 2)
        slot = self.free.pop()
        m = min(hist.k, hist.n)
        self.rows[slot, :m], self.ts[slot, :m] = hist.rows[:m], hist.ts[:m]
        hist.rows, hist.ts = self.rows[slot], self.ts[slot]
        self.owners[slot] = hist
        return slot

    def release(self, slot: int) -> None:
        """The slot's pump is gone (forgotten, evicted): its ``History`` keeps a private copy."""
        hist = self.owners[slot]
        if hist is not None:
            hist.rows, hist.ts = hist.rows.copy(), hist.ts.copy()
        self.owners[slot] = None
        self.free.append(slot)

    def sync_in(self, slot: int, h: AssetHistory) -> None:
        """Take the pump's sample-side state over from its objects (they go stale)."""
        obs, steady = h.observer, h.steady
        assert obs is not None and obs.aligned is not None and obs.thermal.value is not None
        assert steady is not None
        row = self.state[slot]
        row[: self._QF] = obs.aligned
        row[self._QF], row[self._QP], row[self._TH] = obs.q_fluid, obs.q_pred, obs.thermal.value
        row[self._LS] = steady.last_speed
        row[self._SIGS :] = h.last_signals
        self.steady_for[slot] = steady.steady_for

    def sync_out(self, slot: int, h: AssetHistory) -> None:
        """Write the bank's state of the pump back to its objects."""
        obs, steady = h.observer, h.steady
        assert obs is not None and steady is not None
        row = self.state[slot].tolist()
        obs.aligned = row[: self._QF]
        obs.q_fluid, obs.q_pred, obs.thermal.value = row[self._QF], row[self._QP], row[self._TH]
        steady.last_speed = row[self._LS]
        steady.steady_for = int(self.steady_for[slot])
        steady.running = steady.last_speed > steady.min_running_rpm
        h.last_signals = row[self._SIGS :]

    def step(
        self,
        slots: Sequence[int],
        pos: list[int],
        ts: float | Sequence[float],
        values: F64 | Sequence[tuple[float, ...]],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """One sample of each pump in ``slots`` (``values`` in ``SIGNAL_ORDER``, an array or a
        row per pump; ``ts`` one time for all or one per pump), written at ring position
        ``pos``. Returns the rows written (float32, as stored) and whether each was valid
        (settled running), for the caller's warm-up.

        ``PumpObserver.update`` and ``SteadyRunning.update`` over arrays, the same expressions:
        keep the two in step (``tests/agents/test_diagnosis_bank.py`` compares them)."""
        idx = np.array(slots, dtype=np.intp)
        s = np.array(values, dtype=np.float64)
        st = self.state[idx]
        c = self.c
        q = s[:, _FLOW]
        n = s[:, _SPEED] * c[0]
        drive = s[:, _SUCTION] + c[1] * q * q - c[3] + c[2] * n * n
        x = -c[6] * (s[:, _VALVE] * 0.01 - 1.0)
        k = c[4] + c[5] * np.array(list(map(math.exp, x.tolist())))
        q_ss = np.sqrt(np.where(drive > 0.0, drive, 0.0) / k)
        a = self.a_meter
        al = st[:, : self._QF]
        al += (s[:, _ALIGNED] - al) * a
        q_fluid = st[:, self._QF]
        q_fluid += (q_ss - q_fluid) * self.a_fluid
        q_pred = st[:, self._QP]
        q_pred += (q_fluid - q_pred) * a
        # ThermalModel.update
        nt = s[:, _SPEED] / self.th_rated
        nt = np.where(nt < 0.0, 0.0, nt)
        eq = (
            s[:, _AMBIENT]
            + self.th_rise * np.array(list(map(pow, nt.tolist(), repeat(1.5))))
            + self.th_wear * nt
        )
        t_model = st[:, self._TH]
        t_model += (eq - t_model) * self.th_alpha
        p_suc, p_dis, vib, current, power, speed = al.T
        n = speed * c[0]
        out = np.empty((len(slots), _NCOL))
        out[:, :N_SIG] = s
        out[:, N_SIG] = (p_dis - p_suc) / BAR_PER_M - (c[7] * n * n - c[8] * q * q)
        out[:, N_SIG + 1] = (q - q_pred) * c[9]
        model_kw = c[10] * n * n * n + c[11] * n * n * q
        out[:, N_SIG + 2] = (power - model_kw) * c[12]
        torque_a = power * c[14] / np.where(n > 0.05, n, 0.05)
        out[:, N_SIG + 3] = np.where(
            n > 0.02, current - np.sqrt(c[13] + torque_a * torque_a), current
        )
        out[:, N_SIG + 4] = s[:, _BEARING] - t_model
        off = q * c[18] - n
        running = c[16] * (n * n + c[17] * off * off)
        out[:, N_SIG + 5] = (vib / np.sqrt(c[15] + running * running) - 1.0) * 100.0
        out[:, N_SIG + 6] = q_pred
        # SteadyRunning.update
        sp = s[:, _SPEED]
        steady = (sp > self.min_running_rpm) & (np.abs(sp - st[:, self._LS]) <= self.max_step_rpm)
        counts = np.where(steady, self.steady_for[idx] + 1, 0)
        valid = counts > self.settle_n
        out[:, N_SIG + 7] = valid
        st[:, self._LS] = sp
        st[:, self._SIGS :] = s
        self.state[idx] = st
        self.steady_for[idx] = counts
        rows = out.astype(np.float32)
        self.rows[idx, np.array(pos, dtype=np.intp)] = rows
        self.ts[idx, np.array(pos, dtype=np.intp)] = ts
        return rows, valid
