"""A fleet's scripted faults as flat arrays, one entry per fault in pump order, for
``FleetSimulator``: which are active at a tick, what they do to the process (the valve's
stiction band, bearing wear, clogging), which pumps need their own ``Simulator`` for instrument
faults, and every pump's ground truth — with the bits each pump's scalar code gives.

Why: a fleet of 1,000 pumps carries ~800 faults. Asking every faulty pump which of its faults
are active, and rebuilding its truth, cost a Python loop per pump per tick (~1.5 µs a sample).
Here activity is two array comparisons per tick; the per-pump structures (each active pump's
faults, its stiction band, the instrument and truth lists) change only when the active set
does (a fault's onset or end: twice per fault per run); severities are array arithmetic (the
scalar ``severity``'s IEEE operations); and a pump's truth is rebuilt only while it can change
(a fault still ramping, a stuck valve not yet observed), by the pump's own ``Simulator`` —
and then only when the tick's truth is read (``TruthSnapshot``: a replay that does not output
its telemetry never reads it; building it cost ~1.5 µs a sample at 1,000 pumps).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from engine.plant import simulator as single
from engine.schemas import Truth

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class FleetFaults:
    """Every pump's ``_FaultRun`` objects (the pumps' own, so truth and instrument faults stay
    theirs), flattened; ``update(t, ...)`` once per tick before the valve moves."""

    def __init__(self, sims: Sequence[single.Simulator]) -> None:
        runs = [(i, f) for i, s in enumerate(sims) for f in s._faults]
        self.sims = sims
        self.runs = [f for _, f in runs]
        self.pump: I64 = np.array([i for i, _ in runs], dtype=np.int64)
        self.onset = np.array([f.onset for f in self.runs], dtype=np.float64)
        self.end = np.array([f.end for f in self.runs], dtype=np.float64)
        self.peak = np.array([f.peak for f in self.runs], dtype=np.float64)
        self.ramp = np.array([f.ramp for f in self.runs], dtype=np.float64)
        self.span = np.where(self.ramp > 0.0, self.ramp, 1.0)  # no division by a zero ramp
        self.kind = np.array([f.type for f in self.runs], dtype=object)
        n = len(sims)
        self.now: I64 = np.empty(0, dtype=np.int64)
        """Flat indices of the active faults (ascending: pump order, then the pump's own)."""
        self.active: dict[int, list[single._FaultRun]] = {}
        """Per pump with an active fault: its active faults, in its own order."""
        self.band = np.zeros(n)
        self._wear: I64 = np.empty(0, dtype=np.int64)
        self._clog: I64 = np.empty(0, dtype=np.int64)
        self._unobserved: list[int] = []
        self.instrument: list[int] = []
        """Pumps with an active instrument fault (stuck reading, drift, burst). A stuck
        reading's hold is never read once its fault has ended, so no call releases it."""
        self.truths: list[Truth] = [single._NO_TRUTH] * n
        self._changing: list[int] = []

    def update(self, t: float, cmd: F64, valve_pos: F64) -> tuple[F64, F64, F64]:
        """Stiction band, wear and clogging per pump at ``t``; a stuck valve whose command
        moved away from it (``cmd`` vs ``valve_pos``, before the plug moves) is observed."""
        if self.runs:
            now = np.flatnonzero((self.onset <= t) & (t < self.end))
            if not np.array_equal(now, self.now):
                self._activate(now)
        if self._unobserved:
            idx = self._unobserved
            p = self.pump[idx]
            hit = np.abs(cmd[p] - valve_pos[p]) > 0.02
            if hit.any():
                for j in np.flatnonzero(hit).tolist():
                    self.runs[idx[j]].observed = True
                self._unobserved = [j for j, h in zip(idx, hit.tolist(), strict=True) if not h]
        n = len(self.sims)
        return self.band, self._effect(self._wear, t, n), self._effect(self._clog, t, n)

    def _effect(self, idx: I64, t: float, n: int) -> F64:
        """Per pump, the largest severity at ``t`` of the faults ``idx`` (0 without one), as
        ``max(0.0, f.severity(t), ...)``."""
        out = np.zeros(n)
        if idx.size:
            peak, ramp = self.peak[idx], self.ramp[idx]
            frac = (t - self.onset[idx]) / self.span[idx]
            sev = np.where((ramp <= 0.0) | (frac >= 1.0), peak, peak * frac)
            np.maximum.at(out, self.pump[idx], sev)
        return out

    def _activate(self, now: I64) -> None:
        """The active set changed: rebuild what depends on it."""
        self.now = now
        active: dict[int, list[single._FaultRun]] = {}
        for j in now.tolist():
            active.setdefault(int(self.pump[j]), []).append(self.runs[j])
        for i in self.active:
            if i not in active:
                self.truths[i] = single._NO_TRUTH
        self.active = active
        self.band = np.zeros(len(self.sims))
        for i, act in active.items():
            b = 0.0
            for f in act:
                if f.type == "valve_stuck":
                    b = max(b, f.peak)
            self.band[i] = b
        kind = self.kind[now]
        self._wear = now[kind == "bearing_wear"]
        self._clog = now[kind == "clogging"]
        self._unobserved = [
            j for j in now.tolist() if self.kind[j] == "valve_stuck" and not self.runs[j].observed
        ]
        self.instrument = [i for i, act in active.items() if any(f.idx >= 0 for f in act)]
        self._changing = list(active)

    def truth_at(self, t: float) -> TruthSnapshot:
        """Every pump's ground truth at ``t`` (after ``update``): each pump's own ``_truth``,
        asked again only while it can change — and then only if the tick's truth is read
        (``TruthSnapshot``); a pump's last changing tick sets the truth its next ones share."""
        keep = []
        pending = []
        for i in self._changing:
            act = self.active[i]
            if all(f.observed and (f.ramp <= 0.0 or (t - f.onset) / f.ramp >= 1.0) for f in act):
                self.truths[i] = self.sims[i]._truth(t, act)
            else:
                keep.append(i)
                pending.append((i, act, tuple(f.observed for f in act)))
        self._changing = keep
        return TruthSnapshot(t, list(self.truths), pending, self.sims)


class TruthSnapshot:
    """Every pump's truth at one tick; those still changing are built when first read, from
    what was true then (the tick's time, the pump's active faults and whether each was
    observed), by the pump's own ``_truth``: the same truth as built at the tick."""

    __slots__ = ("_pending", "_sims", "_t", "_truths")

    def __init__(
        self,
        t: float,
        truths: list[Truth],
        pending: list[tuple[int, list[single._FaultRun], tuple[bool, ...]]],
        sims: Sequence[single.Simulator],
    ) -> None:
        self._t, self._truths, self._pending, self._sims = t, truths, pending, sims

    def resolve(self) -> list[Truth]:
        """Every pump's truth, in pump order."""
        if self._pending:
            for i, act, observed in self._pending:
                self._truths[i] = self._sims[i]._truth(self._t, act, observed)
            self._pending = []
        return self._truths
