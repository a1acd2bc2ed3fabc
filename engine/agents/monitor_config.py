"""Every threshold of the monitor, in one place.

Nothing here is a property of one pump or one file: the monitor learns each stream's normal from
its own warm-up (``warmup``), so the numbers below are *multiples* of what it learned (of the
warm-up's own deviation scale, of the warm-up length) or accuracy floors. Lengths are in samples,
derived from the warm-up length, or in seconds converted with the stream's measured sample
period — never simulator seconds applied to a file of another rate.

Where each number is used: ``monitor_bank`` (detectors, hysteresis, baselines),
``monitor_normal`` (models of normal operation), ``monitor_episodes`` (episodes, severity).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class MonitorConfig:
    # ------------------------------------------------------------------ warm-up
    warmup_s: float = 600.0
    """Learning period: seconds of settled running (a pump) or seconds' worth of rows (any other
    stream), converted to samples with the stream's measured period."""
    warmup_n: int | None = None
    """Learning period in rows; overrides ``warmup_s`` (``controlroom detect --warmup``)."""

    # ------------------------------------------------------------------ level detector
    level_model: str = "cross-regression"
    """Any stream's model of normal (``monitor_normal``): ``"cross-regression"`` (each signal
    regressed on the others) or ``"per-signal"`` (each signal against its own warm-up level,
    the same detectors otherwise): the alternative ``bench/real_pumps.py`` prints beside it."""
    level_window_frac: float = 1.0 / 40.0
    """Level window = this fraction of the warm-up (10 rows for 400, 15 s for 600 s), at least
    ``min_window`` samples: long enough to average noise, short enough to clear quickly."""
    min_window: int = 5
    threshold_k: float = 3.5
    """A channel is over threshold when its window mean departs from its baseline by more than
    ``threshold_k`` × the largest departure seen in the second half of the warm-up (calibrated
    on the warm-up's own scores, so a quantised, a slow or a noisy signal each gets its own; one
    spike's departure is capped, ``monitor_bank.OUTLIER_RATIO``)."""
    baseline_tau_frac: float = 1.0
    """Raw-signal baselines follow slow drift with this time constant (× warm-up length); frozen
    while the channel is over threshold. Model residuals of a pump never drift: no adaptation."""
    scale_memory_frac: float = 1.0
    """Raw-signal deviation scales keep learning from normal samples (memory × warm-up length):
    a stream that wanders more than its warm-up showed widens its own thresholds."""
    episode_tau_frac: float = 4.0
    """While a raw signal is over threshold its baseline creeps after it with this time constant
    (× warm-up length): a deviation that stands for several warm-ups becomes the new normal and
    the alarm clears (nothing stands forever). Returning to the level before the episode clears
    it too."""

    # ------------------------------------------------------------------ hysteresis
    persist_frac: float = 1.0 / 3.0
    """A channel turns on after this fraction of the level window over threshold (≥ 2 samples)."""
    clear_ratio: float = 0.8
    """... and off after a level window below this fraction of its threshold."""

    # ------------------------------------------------------------------ noise, stuck, limits
    noise_ratio: float = 4.0
    """Noise flagged when the RMS of sample-to-sample changes over ``noise_window_s`` exceeds
    this multiple of its warm-up value (confirmed by second differences: a ramp is not noise)."""
    noise_window_s: float = 30.0
    stuck_min_s: float = 20.0
    stuck_run_factor: float = 3.0
    """Stuck: identical readings for ``stuck_min_s`` and ``stuck_run_factor`` × the longest run of
    repeated values seen in the warm-up, on a channel that normally changes."""
    limit_clear_ratio: float = 0.97
    """An engineering-limit channel (``engine.plant.signals.LIMITS``) clears below this fraction
    of its limit."""

    # ------------------------------------------------------------------ episodes and severity
    join_frac: float = 1.0
    """A channel turning on joins the asset's episode raised less than this many warm-up lengths
    ago (one fault lights several channels over minutes); later, only a channel of the same
    family joins, anything else opens its own alarm."""
    holdoff_frac: float = 0.25
    """After an episode clears, its channels wait this long (× warm-up) before raising again:
    no chattering alarm."""
    severity_bands: tuple[float, float, float] = (2.0, 4.0, 16.0)
    """Score (1 = threshold) at which an episode becomes MEDIUM, HIGH, CRITICAL. CRITICAL means
    "act now" (the work order's stop-the-pump condition): past an engineering limit it is
    CRITICAL whatever the score; without one, only a deviation far beyond HIGH is."""

    # ------------------------------------------------------------------ a pump's model of normal
    pump_floors: Mapping[str, float] = field(
        default_factory=lambda: {
            "res.head": 3.0,  # % of the warm-up head
            "res.flow": 5.0,  # % of the warm-up discharge pressure
            "res.power": 2.5,  # % of the warm-up power
            "res.current": 2.0,  # % of the warm-up current
            "res.bearing_temp": 2.0,  # °C
            "res.vibration": 8.0,  # % of the model's vibration
            "res.valve": 15.0,  # %-points of valve command the flow did not follow
        }
    )
    """Residual accuracy floors: below these a deviation is within the instruments' accuracy
    and the model's fit, whatever the statistics say. Relative to the pump's own warm-up
    operating point, so they hold for any pump size."""
    chunk_s: float = 30.0
    """The pump model learns from means over this many seconds (sample noise averaged out)."""
    settle_s: float = 90.0
    """After an operator manoeuvre (valve or speed command moved, a start or stop), the
    hydraulic and electrical relations learn the new operating point for this long, and their
    residuals are not judged meanwhile."""
    thermal_settle_s: float = 1800.0
    """... and the bearing-temperature relation for this long (three thermal time constants)."""
    manoeuvre_speed_frac: float = 0.02
    """A speed change larger than this fraction of the speed is a manoeuvre."""

    steady_ramp_pct_s: float = 3.0
    """Speed changing faster than this (% of the pump's own running speed per second) is a start
    or stop ramp, not a manoeuvre (same rule as ``engine.agents.steady``)."""

    @property
    def floors(self) -> dict[str, float]:
        """The diagnosis's residual units (nominal datasheet: m, % of rated, A, °C, %), kept for
        ``engine.agents.diagnosis``, which scales its own residual features by them. The monitor
        itself uses ``pump_floors`` (relative to each pump's own operating point)."""
        return {
            "res.head": 1.5,
            "res.flow": 3.0,
            "res.power": 2.5,
            "res.current": 0.6,
            "res.bearing_temp": 2.0,
            "res.vibration": 8.0,
        }

    def with_(self, **changes: Any) -> MonitorConfig:
        return replace(self, **changes)
