"""Steady running: when a pump's model relations can be trusted, for the monitor and the diagnosis.

During a start or stop ramp, and for a little while after one, the fluid's inertia and the flow
meter's damping make every physics residual swing although nothing is wrong. Both agents hold the
residuals then (the monitor freezes its counts; the diagnosis marks the rows invalid), and they
must agree on when, so the rule lives here once:

- *running*: speed above ``RUNNING_SPEED_FRACTION`` of rated;
- *steady*: running, and the speed moved at most ``ramp_pct_s`` % of rated since the last sample
  (operator speed trims ramp slower than that; a drive's start/stop ramp faster);
- *settled*: steady for more than ``settle_s`` in a row.

``SteadyRunning`` follows one pump sample by sample; ``SteadyRunningArray`` does the same for
many pumps at once (one numpy step per tick, for a vectorised monitor). A test holds the two
equal.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.agents.monitor_physics import RUNNING_SPEED_FRACTION
from engine.plant.pump import DESIGN

SETTLE_S = 30.0
"""After a start/stop ramp, residuals wait this long (fluid and meter lags)."""
STEADY_RAMP_PCT_S = 3.0
"""Speed changing faster than this (% of rated per second) is a start/stop ramp."""


def _settle_samples(settle_s: float, dt: float) -> int:
    return max(2, round(settle_s / dt))


class SteadyRunning:
    """One pump: ``update(speed_rpm)`` per sample returns whether it is settled."""

    __slots__ = (
        "last_speed",
        "max_step_rpm",
        "min_running_rpm",
        "running",
        "settle_n",
        "steady_for",
    )

    def __init__(
        self,
        dt: float = 1.0,
        *,
        settle_s: float = SETTLE_S,
        ramp_pct_s: float = STEADY_RAMP_PCT_S,
        rated_rpm: float = DESIGN.rated_speed_rpm,
    ) -> None:
        self.max_step_rpm = ramp_pct_s / 100.0 * rated_rpm * dt
        self.min_running_rpm = RUNNING_SPEED_FRACTION * rated_rpm
        self.settle_n = _settle_samples(settle_s, dt)
        self.last_speed = 0.0
        self.steady_for = 0
        self.running = False

    def update(self, speed_rpm: float) -> bool:
        running = speed_rpm > self.min_running_rpm
        steady = running and abs(speed_rpm - self.last_speed) <= self.max_step_rpm
        self.last_speed = speed_rpm
        self.running = running
        self.steady_for = self.steady_for + 1 if steady else 0
        return self.steady_for > self.settle_n

    @property
    def settled(self) -> bool:
        return self.steady_for > self.settle_n


class SteadyRunningArray:
    """Many pumps at once (index = the caller's asset slot): ``update(speeds)`` per tick returns
    a boolean array, settled per pump. Same rule, same numbers as ``SteadyRunning``.
    ``rated_rpm`` may be one value per pump (a monitor that learns each pump's speed)."""

    def __init__(
        self,
        n: int,
        dt: float = 1.0,
        *,
        settle_s: float = SETTLE_S,
        ramp_pct_s: float = STEADY_RAMP_PCT_S,
        rated_rpm: float | npt.NDArray[np.float64] = DESIGN.rated_speed_rpm,
    ) -> None:
        self.max_step_rpm = ramp_pct_s / 100.0 * rated_rpm * dt
        self.min_running_rpm = RUNNING_SPEED_FRACTION * rated_rpm
        self.settle_n = _settle_samples(settle_s, dt)
        self.last_speed = np.zeros(n)
        self.steady_for = np.zeros(n, dtype=np.int64)
        self.running = np.zeros(n, dtype=bool)

    def update(
        self, speeds: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_] | None = None
    ) -> npt.NDArray[np.bool_]:
        """``mask``: the pumps that have a sample this tick (others keep their state)."""
        running = speeds > self.min_running_rpm
        steady = running & (np.abs(speeds - self.last_speed) <= self.max_step_rpm)
        counts = np.where(steady, self.steady_for + 1, 0)
        if mask is None:
            self.last_speed = speeds.astype(np.float64, copy=True)
            self.running = running
            self.steady_for = counts
        else:
            self.last_speed = np.where(mask, speeds, self.last_speed)
            self.running = np.where(mask, running, self.running)
            self.steady_for = np.where(mask, counts, self.steady_for)
        settled: npt.NDArray[np.bool_] = self.steady_for > self.settle_n
        return settled
