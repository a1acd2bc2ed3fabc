"""What the diagnosis keeps of each pump's past: a compact ring of recent samples, the model state
that turns a sample into residuals, and the healthy reference learned from the first minutes.

Memory is the point here: a fleet replay runs a thousand of these. One row per tick holds the
pump signals, the six model residuals, the loop flow the model expects and a validity flag
(``COLUMNS``), stored as float32 — the published readings have at most three decimals below
10,000, so float32 keeps every distinct reading distinct, and features are computed in float64
from those values. 30 min at 1 Hz is 130 KB per pump (an hour of Python float lists took 0.5 MB
plus a warm-up list of another 0.4 MB). Timestamps stay float64 (a month of seconds needs it).

A sample may lack signals (a dropped channel on a historian, a partial message): the last value
of each missing signal is held, as the monitor does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from engine.agents.monitor_physics import RESIDUALS, PumpObserver
from engine.agents.steady import SETTLE_S, SteadyRunning
from engine.plant.signals import SIGNAL_ORDER, is_pump
from engine.schemas import Telemetry

COLUMNS: tuple[str, ...] = (*SIGNAL_ORDER, *RESIDUALS, "q_pred", "valid")
COL = {name: i for i, name in enumerate(COLUMNS)}
N_SIG = len(SIGNAL_ORDER)

Rows = npt.NDArray[np.float64]
"""Rows handed to feature code: float64 copies of the stored float32 rows."""


class History:
    """Ring buffer of the last ``seconds`` of samples for one pump (float32 rows, float64 ts)."""

    def __init__(self, seconds: float = 3600.0, dt: float = 1.0) -> None:
        self.n = max(600, round(seconds / dt))
        self.dt = dt
        self.rows = np.zeros((self.n, len(COLUMNS)), dtype=np.float32)
        self.ts = np.zeros(self.n)
        self.k = 0

    def push(self, ts: float, row: list[float]) -> None:
        p = self.k % self.n
        self.rows[p] = row
        self.ts[p] = ts
        self.k += 1

    def _order(self) -> npt.NDArray[np.intp]:
        count = min(self.k, self.n)
        return np.arange(self.k - count, self.k) % self.n

    def last(self, seconds: float, end_ts: float | None = None) -> tuple[Rows, Rows]:
        """Rows (and their ts) within ``seconds`` before ``end_ts`` (default: the newest)."""
        idx = self._order()
        ts = self.ts[idx]
        if not idx.size:
            return np.zeros((0, len(COLUMNS))), ts
        hi = ts[-1] if end_ts is None else end_ts
        sel = (ts > hi - seconds) & (ts <= hi)
        return self.rows[idx[sel]].astype(np.float64), ts[sel]

    def between(self, t0: float, t1: float) -> Rows:
        idx = self._order()
        ts = self.ts[idx]
        return self.rows[idx[(ts >= t0) & (ts < t1)]].astype(np.float64)

    def since(self, t0: float) -> tuple[Rows, npt.NDArray[np.float32]]:
        """(ts, rows) of every held sample at or after ``t0``, oldest first (state export)."""
        idx = self._order()
        ts = self.ts[idx]
        sel = idx[ts >= t0]
        return self.ts[sel], self.rows[sel]


class Reference:
    """An asset's healthy state, learned from its first minutes of steady running."""

    def __init__(self, median: Rows, d2_spread: Rows) -> None:
        self.median = median
        self.d2_spread = d2_spread

    @classmethod
    def learn(cls, rows: Rows) -> Reference:
        d2 = np.diff(rows, n=2, axis=0)
        spread = 1.4826 * np.median(np.abs(d2 - np.median(d2, axis=0)), axis=0)
        return cls(np.median(rows, axis=0), spread)


class AssetHistory:
    """One asset's past as the diagnosis sees it: ``push`` every telemetry sample.

    The first sample says whether the stream is a pump (its signals) and the second fixes the
    sampling period; a non-pump stream keeps nothing (its diagnoses rest on the alert's own
    evidence)."""

    def __init__(self, history_s: float, warmup_s: float, settle_s: float = SETTLE_S) -> None:
        self.history_s = history_s
        self.warmup_s = warmup_s
        self.settle_s = settle_s
        self.pump = False
        self.first_ts: float | None = None
        self.since: float | None = None
        """Since when the history is unbroken (the first row this agent, or its restored state,
        holds): a restart without state leaves nothing before it."""
        self.last_ts = 0.0
        self.dt = 1.0
        self.hist: History | None = None
        self.observer: PumpObserver | None = None
        self.steady: SteadyRunning | None = None
        self.warm: npt.NDArray[np.float32] | None = None
        self.warm_k = 0
        self.ref: Reference | None = None
        self.last_signals: list[float] = [0.0] * N_SIG
        self.unseen = set(SIGNAL_ORDER)
        """Signals not read yet: until each has a value to hold, a sample cannot be modelled."""

    def setup(self, dt: float) -> History:
        self.dt = dt
        self.hist = History(self.history_s, dt)
        self.observer = PumpObserver(dt)
        self.steady = SteadyRunning(dt, settle_s=self.settle_s)
        self.warm = np.zeros((max(10, round(self.warmup_s / dt)), len(COLUMNS)), np.float32)
        return self.hist

    def push(self, t: Telemetry, learn: bool = True) -> None:
        """Record one sample. ``learn=False`` keeps it out of the healthy reference (the agent
        passes that while an alert is open on the asset: a reference learned from a faulty pump
        would make every later diagnosis of it wrong)."""
        s = t.signals
        self.last_ts = t.ts
        hist = self.hist
        if hist is None:
            if self.first_ts is None:
                self.first_ts = t.ts
                self.pump = is_pump(s)
                self._hold(s)
                return
            dt = t.ts - self.first_ts
            hist = self.setup(dt if 0.0 < dt <= 3600.0 else 1.0)
        if not self.pump:
            return
        if tuple(s) == SIGNAL_ORDER:  # the usual case: a complete sample, in order
            signals = list(s.values())
            values = s
            if self.unseen:
                self.unseen.clear()
        else:  # a partial (or reordered) sample: hold the last value of what is missing
            signals = self._hold(s)
            if self.unseen:
                return
            values = dict(zip(SIGNAL_ORDER, signals, strict=True))
        self.last_signals = signals
        assert self.observer is not None and self.steady is not None
        res = self.observer.update(values)
        valid = self.steady.update(values["speed"])
        row = [*signals, *res, self.observer.q_pred, 1.0 if valid else 0.0]
        hist.push(t.ts, row)
        if self.since is None:
            self.since = t.ts
        if self.ref is None and valid and learn:
            self.warm_up(row)

    def warm_up(self, row: Sequence[float] | npt.NDArray[np.float32]) -> None:
        """Take a settled row towards the healthy reference (learned once the warm-up is full)."""
        if self.warm is None:
            return
        self.warm[self.warm_k] = row
        self.warm_k += 1
        if self.warm_k >= self.warm.shape[0]:
            self.ref = Reference.learn(self.warm.astype(np.float64))
            self.warm = None

    def _hold(self, s: Mapping[str, float]) -> list[float]:
        held = zip(SIGNAL_ORDER, self.last_signals, strict=True)
        self.last_signals = [s.get(k, last) for k, last in held]
        if self.unseen:
            self.unseen.difference_update(s)
        return self.last_signals

    def ready(self, now: float) -> bool:
        """Enough history to judge: the reference is learned and at least a minute of samples
        is held (not the case just after a restart without saved state). A stream that is not a
        pump needs only to have been seen (its diagnoses rest on the alert's own evidence)."""
        if self.first_ts is None:
            return False
        if not self.pump:
            return True
        return self.ref is not None and self.covers(now - 60.0)

    def covers(self, ts: float) -> bool:
        """The history reaches back to ``ts`` (a restart without state leaves nothing before
        its first row; the ring's own length is a memory bound, not a gap)."""
        if not self.pump:
            return True
        return self.since is not None and self.since <= ts
