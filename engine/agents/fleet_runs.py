"""The order bookkeeping of a whole fleet tick at once, for the agents' batch paths.

Why: both agents ask every sample of a 1,000-pump tick ``RunState.advance`` (is it the next
sample of the same run?) — ~1 µs a sample of Python, with the same answer for every pump of a
fleet that publishes in lock-step. Once every pump of a ``FleetTick`` has advanced to the same
(seq, ts) with nothing pending, the next tick of the same pumps advances all of them or none:
``advance``'s conditions then differ between the pumps only by their ``dt`` (the largest step
ahead in time is ``JUMP × dt``), and the smallest ``dt`` decides for all. So the check is made
once, and the pumps' ``RunState`` objects are still moved on, so the per-sample path finds them
exactly as it would have left them.

The caller owns the validity of the set: it drops a ``FleetRuns`` whenever anything else could
have touched those ``RunState`` objects (any sample taken by the per-sample path).
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.agents.monitor_intake import JUMP, RunState
from engine.plant.fleet_tick import FleetTick


class FleetRuns:
    """The runs of one tick's pumps (in the tick's order), all at the same (seq, ts)."""

    __slots__ = ("assets", "min_dt", "runs", "scenarios", "seq", "ts")

    def __init__(self, tick: FleetTick, runs: list[RunState]) -> None:
        self.assets = tick.assets
        self.scenarios = tick.scenarios
        self.runs = runs
        self.seq, self.ts = tick.seq, tick.ts
        self.min_dt = min(r.dt for r in runs)

    @classmethod
    def of(cls, tick: FleetTick, runs: Sequence[RunState | None]) -> FleetRuns | None:
        """The set, if every pump of ``tick`` has just advanced to it (None otherwise)."""
        if not runs or len(runs) != len(tick):
            return None
        seq, ts = tick.seq, tick.ts
        for r, name in zip(runs, tick.scenarios, strict=True):
            if (
                r is None
                or r.last_seq != seq
                or r.last_ts != ts
                or r.pending is not None
                or not r.dt_known
                or r.scenario != name
            ):
                return None
        return cls(tick, list(runs))  # type: ignore[arg-type]

    def advance(self, tick: FleetTick) -> bool:
        """``RunState.advance`` of every pump for the same pumps' next tick: True (all moved on)
        or False (none moved; the tick is for the per-sample path)."""
        if tick.assets is not self.assets or tick.scenarios is not self.scenarios:
            return False
        seq, ts = tick.seq, tick.ts
        if not (
            self.seq < seq <= self.seq + JUMP
            and ts > self.ts
            and ts - self.ts <= JUMP * self.min_dt
        ):
            return False
        for r in self.runs:
            r.last_seq = seq
            r.last_ts = ts
        self.seq, self.ts = seq, ts
        return True
