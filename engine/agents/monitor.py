"""Agent A — the monitor: telemetry in, one alert per anomaly *episode* out.

Every threshold is in ``MonitorConfig`` right below. How it decides, per asset:

1. **Channels.** Every numeric signal is a channel. When the message carries the pump's signals
   (``engine.plant.signals``), six physics residuals are added (``monitor_physics``): they stay
   flat through valve moves, speed changes and stop/start, which raw levels do not.
2. **Baseline.** The first ``warmup_s`` of running (pump) or the first ``warmup_s`` samples'
   worth of rows (any other stream) teach each channel its median, spread, sample-to-sample noise
   and longest run of repeated values. Nothing is flagged before that.
3. **Detectors**, each a score where 1 = threshold, on causal sliding windows:
   - *level*: |mean of the last ``level_window_s`` − baseline| over a threshold — for residuals
     ``max(floor, level_z · spread of window means)``, for raw signals of a non-pump stream
     ``generic_z`` robust standard deviations (robust z-score).
   - *noise*: the spread of sample-to-sample changes over ``noise_window_s`` vs its baseline
     (confirmed with a median-based estimate, so a ramp or a start is not "noise").
   - *stuck*: identical readings for longer than ``stuck_min_s`` (and ``stuck_run_factor`` × the
     longest run seen in the baseline) on a channel that normally changes.
4. **Hysteresis.** A channel turns on after ``persist`` seconds over 1 and off after ``clear_s``
   under ``clear_ratio``; while the pump is stopped, residual channels are frozen (neither).
5. **Episodes.** A channel turning on joins the asset's active episode if that began less than
   ``join_s`` ago (one fault lights several channels over a few minutes), else opens a new one:
   one "active" AlertEvent. The episode clears (one "cleared" AlertEvent, same id) when all its
   channels are off; its channels then stay shelved for ``holdoff_s`` (no chattering).

Causal (a decision at sample t uses samples ≤ t only), never reads ``truth``, no I/O, no clock.
The hot path is a few numpy operations on one short vector per sample (incremental window sums).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engine.agents.monitor_physics import RESIDUAL_FAMILIES, RESIDUALS, PumpObserver, is_running
from engine.agents.tuning import threshold_scale
from engine.plant.pump import DESIGN
from engine.plant.signals import SIGNALS, is_pump
from engine.schemas import AlertEvent, SignalEvidence, Telemetry, Tuning, WindowStats


@dataclass(frozen=True)
class MonitorConfig:
    """Every threshold of the monitor, in one place (seconds are simulated seconds)."""

    warmup_s: float = 600.0
    """Baseline learning: running time (pump) or samples' worth of time (other streams)."""
    settle_s: float = 30.0
    """After a pump start or stop ramp, residuals wait this long (fluid and meter lags)."""
    steady_ramp_pct_s: float = 3.0
    """Speed changing faster than this (% of rated per second) is a start/stop ramp: residuals
    are held meanwhile (operator speed changes ramp slower)."""
    level_window_s: float = 30.0
    noise_window_s: float = 30.0
    evidence_windows_s: tuple[float, ...] = (60.0, 120.0)
    level_z: float = 6.0
    """Residual threshold: at least this many standard deviations of the baseline's window means."""
    floors: Mapping[str, float] = field(
        default_factory=lambda: {
            "res.head": 1.5,  # m
            "res.flow": 3.0,  # % of rated flow
            "res.power": 2.5,  # % of rated power
            "res.current": 0.6,  # A
            "res.bearing_temp": 2.0,  # °C
            "res.vibration": 8.0,  # % of the model's vibration
        }
    )
    """Residual threshold floors in engineering units: below these a deviation is within the
    instruments' accuracy and the datasheet's fit, whatever the statistics say."""
    generic_z: float = 6.0
    """Raw-signal level threshold for non-pump streams, in robust standard deviations."""
    level_persist_s: float = 10.0
    noise_ratio: float = 4.0
    """Noise flagged when sample-to-sample spread exceeds this multiple of its baseline."""
    noise_persist_s: float = 5.0
    stuck_min_s: float = 20.0
    stuck_run_factor: float = 3.0
    clear_ratio: float = 0.6
    clear_s: float = 120.0
    join_s: float = 900.0
    holdoff_s: float = 600.0

    def with_(self, **changes: Any) -> MonitorConfig:
        return replace(self, **changes)


_LEVEL, _NOISE, _STUCK = 0, 1, 2
_DETECTOR_NAMES = {0: "level", 1: "noise", 2: "stuck"}


@dataclass
class _Episode:
    alert_id: str
    onset_ts: float
    raised_ts: float
    channels: set[int]
    founders: frozenset[int]
    """The channels that raised it: a later channel joins by family only through these (so a
    channel of two families that joined later cannot bridge the episode to an unrelated fault)."""
    severity: str
    score: float
    detector: str


class _AssetState:
    """Windows, baseline and episode state of one asset (a replica owns whole assets)."""

    def __init__(
        self,
        asset: str,
        names: list[str],
        cfg: MonitorConfig,
        dt: float,
        tuning: Tuning | None,
        new_id: Any,
    ) -> None:
        self.asset = asset
        self.cfg = cfg
        self.dt = dt
        self.new_id = new_id
        self.raw_names = names
        self.pump = is_pump(names)
        self.names = names + (list(RESIDUALS) if self.pump else [])
        c = self.n = len(self.names)
        nr = len(names)
        self.is_res = np.array([i >= nr for i in range(c)])
        if self.pump:
            self.is_sensor = np.array(
                [i < nr and SIGNALS[nm].is_sensor for i, nm in enumerate(self.names)]
            )
            self.has_level = self.is_res.copy()
            self.relative = np.array(
                [i < nr and SIGNALS[nm].relative_noise for i, nm in enumerate(self.names)]
            )
        else:
            self.is_sensor = np.ones(c, bool)
            self.has_level = np.ones(c, bool)
            self.relative = np.zeros(c, bool)
        self.floor = np.array([cfg.floors.get(nm, 0.0) for nm in self.names])
        self.rel_idx = np.flatnonzero(self.relative)
        self.family = [
            RESIDUAL_FAMILIES.get(nm, frozenset()) if self.pump else frozenset()
            for nm in self.names
        ]
        self.res_idx = np.flatnonzero(self.is_res)

        def samples(sec: float) -> int:
            return max(2, round(sec / dt))

        self.wl = samples(cfg.level_window_s)
        self.wn = samples(cfg.noise_window_s)
        self.ring_n = max(self.wl, self.wn, *(samples(s) for s in cfg.evidence_windows_s)) + 2
        self.warm_n = samples(cfg.warmup_s)
        self.settle_n = samples(cfg.settle_s) if self.pump else 0
        self.persist = np.where(
            self.has_level & ~self.is_sensor,
            samples(cfg.level_persist_s),
            samples(cfg.noise_persist_s),
        )
        if not self.pump:
            self.persist[:] = samples(cfg.level_persist_s)
        self.clear_n = samples(cfg.clear_s)
        self.inv_wl = 1.0 / self.wl
        self.inv_wn = 1.0 / self.wn

        self.X = np.zeros((self.ring_n, c))
        self.D2 = np.zeros((self.ring_n, c))
        self.k = 0  # samples written
        self.sum_l = np.zeros(c)
        self.sum_d2 = np.zeros(c)
        self.run = np.zeros(c)
        self.last_raw = [0.0] * nr
        self.raw_key = tuple(names)
        self.last_res: tuple[float, ...] = (0.0,) * (c - nr)
        self.observer = PumpObserver(dt) if self.pump else None
        self.last_speed = 0.0
        self.max_ramp_rpm = cfg.steady_ramp_pct_s / 100.0 * DESIGN.rated_speed_rpm * dt
        self.running_for = 0
        self.warm: list[np.ndarray] = []
        self.ready = False

        self.over = [0] * c  # consecutive samples over threshold, per channel
        self.under = [0] * c  # consecutive samples under clear_ratio
        self.on = [False] * c
        self.zeros = np.zeros(c)
        self.persist_list = [int(p) for p in self.persist]
        self.is_res_list = [bool(r) for r in self.is_res]
        self.shelved_until = np.full(c, -math.inf)
        self.pending: set[int] = set()
        self.busy = False
        self.episodes: list[_Episode] = []
        self.tuning = tuning
        self._scale = np.ones(c)
        self.apply_tuning(tuning)

    # ------------------------------------------------------------------ tuning

    def apply_tuning(self, tuning: Tuning | None) -> None:
        self.tuning = tuning
        self._scale = np.array([threshold_scale(tuning, self.asset, nm) for nm in self.names])
        if self.ready:
            self._set_thresholds()

    # ------------------------------------------------------------------ per sample

    def step(self, ts: float, signals: Mapping[str, float]) -> list[AlertEvent]:
        missing = None
        if tuple(signals) == self.raw_key:  # the usual case: a complete sample, same order
            raw = list(signals.values())
            vals: Mapping[str, float] = signals
        else:
            raw = list(self.last_raw)
            for i, nm in enumerate(self.raw_names):
                v = signals.get(nm)
                if v is None:
                    if missing is None:
                        missing = np.zeros(self.n, bool)
                    missing[i] = True  # held at its last value; not counted as "stuck"
                else:
                    raw[i] = v
            vals = dict(zip(self.raw_names, raw, strict=True))
        self.last_raw = raw
        running = settled = True
        if self.pump:
            res = self.observer.update(vals)  # type: ignore[union-attr]
            speed = vals["speed"]
            running = is_running(speed)
            # Residuals are trusted only in steady running: not during a start or stop ramp
            # (fluid and meter lags make them swing) and not until settle_s after one.
            steady = running and abs(speed - self.last_speed) <= self.max_ramp_rpm
            self.last_speed = speed
            self.running_for = self.running_for + 1 if steady else 0
            settled = self.running_for > self.settle_n
            if settled:
                self.last_res = res
            x = np.array(raw + list(self.last_res))
        else:
            x = np.array(raw)
        self._push(x, missing)

        if not self.ready:
            if settled:
                self.warm.append(x)
                if len(self.warm) >= self.warm_n:
                    self._learn_baseline()
            return []
        return self._detect(ts, x, running and settled, running)

    def _push(self, x: np.ndarray, missing: np.ndarray | None) -> None:
        """Write one sample and update the running sums (level window: values; noise window:
        squared sample-to-sample changes) and the repeated-value run lengths."""
        k, r = self.k, self.ring_n
        p = k % r
        X = self.X
        d = x - X[p - 1] if k else np.zeros(self.n)
        if missing is not None:
            d[missing] = 0.0
        d2 = d * d
        if k >= self.wl:
            self.sum_l += x - X[(k - self.wl) % r]
        else:
            self.sum_l += x
        self.sum_d2 += d2 - self.D2[(k - self.wn) % r]
        X[p] = x
        self.D2[p] = d2
        run = self.run
        run += 1.0
        if missing is not None:
            run[missing] -= 1.0
            d[missing] = 1.0
        run *= d == 0.0
        self.k = k + 1
        if self.k % 4096 == 0:  # re-anchor the running sums (float drift)
            self.sum_l = self._last(self.wl).sum(axis=0)
            self.sum_d2 = self._last(self.wn, self.D2).sum(axis=0)

    def _last(self, n: int, ring: np.ndarray | None = None) -> np.ndarray:
        """The last n samples, oldest first (copy)."""
        ring = self.X if ring is None else ring
        n = min(n, self.k, self.ring_n)
        idx = (np.arange(self.k - n, self.k)) % self.ring_n
        return ring[idx]

    # ------------------------------------------------------------------ baseline

    def _learn_baseline(self) -> None:
        w = np.array(self.warm)
        self.warm = []
        med = np.median(w, axis=0)
        sd = 1.4826 * np.median(np.abs(w - med), axis=0)
        cs = np.cumsum(np.vstack([np.zeros(self.n), w]), axis=0)
        means = (cs[self.wl :] - cs[: -self.wl]) / self.wl
        sd_mean = means.std(axis=0)
        diffs = np.diff(w, axis=0)
        dsd = 1.4826 * np.median(np.abs(diffs - np.median(diffs, axis=0)), axis=0)
        longest = np.zeros(self.n)
        for c in range(self.n):
            zero = np.concatenate([[False], diffs[:, c] == 0.0, [False]]).astype(np.int8)
            edges = np.flatnonzero(np.diff(zero))
            if edges.size:
                longest[c] = (edges[1::2] - edges[::2]).max()
        self.base_mean = med
        self.base_sd = sd
        self.base_sd_mean = sd_mean
        self.base_dsd = dsd
        self.base_longest = longest
        self.ready = True
        self._set_thresholds()

    def _set_thresholds(self) -> None:
        cfg = self.cfg
        scale = self._scale
        if self.pump:
            thr = np.maximum(self.floor, cfg.level_z * self.base_sd_mean)
        else:
            spread = np.where(
                self.base_sd > 0, self.base_sd, np.maximum(0.01 * np.abs(self.base_mean), 1e-6)
            )
            thr = cfg.generic_z * spread
        self.level_thr = np.where(self.has_level, thr * scale, np.inf)
        noisy_ok = self.is_sensor & (self.base_dsd > 0)
        self.noise_thr = np.where(noisy_ok, cfg.noise_ratio * self.base_dsd * scale, np.inf)
        constant = self.base_longest >= 0.5 * self.warm_n
        run_thr = np.maximum(cfg.stuck_min_s / self.dt, cfg.stuck_run_factor * self.base_longest)
        self.stuck_thr = np.where(self.is_sensor & ~constant, run_thr * scale, np.inf)
        self.inv_stuck_thr = 1.0 / self.stuck_thr
        self.lvl_a = self.inv_wl / self.level_thr
        self.lvl_b = self.base_mean / self.level_thr
        self.noise_a = self.inv_wn / self.noise_thr**2
        self.rel_levels = [(int(i), max(abs(float(self.base_mean[i])), 1e-9)) for i in self.rel_idx]

    # ------------------------------------------------------------------ detection

    def _detect(self, ts: float, x: np.ndarray, level_ok: bool, running: bool) -> list[AlertEvent]:
        # Scores, 1 = threshold. Constants are pre-scaled so the common case is ~10 numpy ops.
        level = self.sum_l * self.lvl_a
        level -= self.lvl_b
        np.abs(level, out=level)
        noise = self.sum_d2 * self.noise_a
        np.sqrt(np.abs(noise, out=noise), out=noise)
        for i, base in self.rel_levels:  # multiplicative noise (vibration): judge at today's level
            noise[i] *= base / max(abs(float(self.sum_l[i])) * self.inv_wl, 1e-9)
        score = np.maximum(level, noise)
        stuck = self.run * self.inv_stuck_thr if running else self.zeros
        np.maximum(score, stuck, out=score)
        frozen = self.pump and not level_ok
        if frozen:
            score[self.res_idx] = 0.0
        if not self.busy and score.max() < 1.0:
            return []  # nothing on, nothing building up

        if (noise >= 1.0).any():
            noise = self._confirm_noise(noise)
            score = np.maximum(np.maximum(level, noise), stuck)
            if frozen:
                score[self.res_idx] = 0.0
        # Hysteresis bookkeeping, in plain Python: a few dozen operations on short lists beat a
        # dozen numpy calls here, and this runs every sample while an episode is active.
        over, under, on, persist = self.over, self.under, self.on, self.persist_list
        clear, clear_n = self.cfg.clear_ratio, self.clear_n
        hold = self.is_res_list if frozen else None  # stopped/settling: residuals hold counts
        turn_on: list[int] = []
        turn_off: list[int] = []
        for c, v in enumerate(score.tolist()):
            if hold is not None and hold[c]:
                continue
            over[c] = over[c] + 1 if v >= 1.0 else 0
            under[c] = under[c] + 1 if v < clear else 0
            if on[c]:
                if under[c] >= clear_n:
                    turn_off.append(c)
            elif over[c] >= persist[c]:
                turn_on.append(c)
        out: list[AlertEvent] = []
        if turn_on or turn_off or self.pending:
            mean_l = self.sum_l * self.inv_wl
            out = self._episodes(ts, x, score, level, noise, stuck, mean_l, turn_on, turn_off)
        self.busy = any(on) or any(over) or bool(self.pending)
        return out

    def _confirm_noise(self, noise: np.ndarray) -> np.ndarray:
        """Re-estimate the noise of the channels the quick test flagged from the median of the
        *second* differences: a ramp (speed change, valve stroke, start) has large first
        differences but almost no second ones, a noisy transmitter has both."""
        out = noise.copy()
        xs = self._last(self.wn + 1)
        for c in np.flatnonzero(noise >= 1.0):
            col = np.diff(xs[:, c])
            d2 = np.diff(col)
            robust = 1.4826 * np.median(np.abs(d2 - np.median(d2))) / math.sqrt(3.0)
            out[c] *= robust / max(float(np.sqrt(np.mean(col * col))), 1e-12)
        return out

    def _episodes(
        self,
        ts: float,
        x: np.ndarray,
        score: np.ndarray,
        level: np.ndarray,
        noise: np.ndarray,
        stuck: np.ndarray,
        mean_l: np.ndarray,
        turn_on: list[int],
        turn_off: list[int],
    ) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        starting: list[int] = []
        for c in turn_on:
            self.on[c] = True
            self.under[c] = 0
            starting.append(c)
        for c in list(self.pending):
            if not self.on[c]:
                self.pending.discard(c)
            elif ts >= self.shelved_until[c]:
                self.pending.discard(c)
                starting.append(c)
        for c in turn_off:
            self.on[c] = False
            self.over[c] = 0
        fresh: list[int] = []
        for c in starting:
            if ts < self.shelved_until[c]:
                self.pending.add(c)
                continue
            ep = next((e for e in reversed(self.episodes) if self._joins(c, e, ts)), None)
            if ep is not None:
                ep.channels.add(c)
            else:
                fresh.append(c)
        if fresh:
            onset = min(ts - (int(self.over[c]) - 1) * self.dt for c in fresh)
            onset = max(0.0, onset)
            top = max(fresh, key=lambda c: score[c])
            ep = _Episode(
                alert_id=self.new_id(self.asset),
                onset_ts=onset,
                raised_ts=ts,
                channels=set(fresh),
                founders=frozenset(fresh),
                severity=_severity(float(score[top])),
                score=round(float(score[top]), 3),
                detector=self._detector_name(top, level, noise, stuck),
            )
            self.episodes.append(ep)
            out.append(self._alert(ep, "active", ts, fresh, x, score, level, noise, stuck, mean_l))
        for ep in list(self.episodes):
            if not any(self.on[c] for c in ep.channels):
                self.episodes.remove(ep)
                for c in ep.channels:
                    self.shelved_until[c] = ts + self.cfg.holdoff_s
                out.append(
                    self._alert(
                        ep,
                        "cleared",
                        ts,
                        sorted(ep.channels),
                        x,
                        score,
                        level,
                        noise,
                        stuck,
                        mean_l,
                    )
                )
        return out

    def _joins(self, c: int, ep: _Episode, ts: float) -> bool:
        if ts - ep.raised_ts < self.cfg.join_s or c in ep.channels:
            return True
        fam = self.family[c]
        return bool(fam) and any(fam & self.family[o] for o in ep.founders)

    def _detector_name(
        self, c: int, level: np.ndarray, noise: np.ndarray, stuck: np.ndarray
    ) -> str:
        which = int(np.argmax([level[c], noise[c], stuck[c]]))
        if which == _LEVEL:
            return "physics-residual" if self.is_res[c] else "robust-z"
        return _DETECTOR_NAMES[which]

    def _alert(
        self,
        ep: _Episode,
        status: str,
        ts: float,
        channels: list[int],
        x: np.ndarray,
        score: np.ndarray,
        level: np.ndarray,
        noise: np.ndarray,
        stuck: np.ndarray,
        mean_l: np.ndarray,
    ) -> AlertEvent:
        evidence = []
        for c in sorted(channels, key=lambda c: -score[c]):
            det = self._detector_name(c, level, noise, stuck)
            if det == "noise":
                direction = "noisy"
            elif det == "stuck":
                direction = "flat"
            else:
                direction = "up" if mean_l[c] >= self.base_mean[c] else "down"
            evidence.append(
                SignalEvidence(
                    signal=self.names[c],
                    value=_f(mean_l[c] if self.has_level[c] and det != "stuck" else x[c]),
                    baseline_mean=_f(self.base_mean[c]),
                    baseline_std=_f(self.base_sd[c]),
                    score=_f(score[c]),
                    detector=det,
                    direction=direction,
                    windows=self._window_stats(c),
                )
            )
        return AlertEvent(
            alert_id=ep.alert_id,
            asset=self.asset,
            status=status,  # type: ignore[arg-type]
            ts=ts,
            onset_ts=min(ep.onset_ts, ts),
            cleared_ts=ts if status == "cleared" else None,
            severity=ep.severity,  # type: ignore[arg-type]
            score=ep.score,
            signals=[
                self.names[c]
                for c in sorted(
                    ep.channels if status == "cleared" else channels, key=lambda c: -score[c]
                )
            ],
            evidence=evidence[:32],
            detector=ep.detector,
        )

    def _window_stats(self, c: int) -> list[WindowStats]:
        out = []
        for sec in self.cfg.evidence_windows_s:
            n = min(self.k, self.ring_n, max(2, round(sec / self.dt)))
            y = self._last(n)[:, c]
            t = np.arange(n) * self.dt
            tc = t - t.mean()
            denom = float((tc * tc).sum())
            slope = float((tc * (y - y.mean())).sum() / denom) if denom > 0 else 0.0
            out.append(
                WindowStats(
                    seconds=sec,
                    n=int(n),
                    mean=_f(y.mean()),
                    std=_f(y.std()),
                    slope=_f(slope),
                    diff=_f(y[-1] - y[0]),
                )
            )
        return out


def _f(v: Any) -> float:
    v = float(v)
    return round(v, 6) if math.isfinite(v) else 0.0


def _severity(score: float) -> str:
    if score >= 8:
        return "critical"
    if score >= 4:
        return "high"
    if score >= 2:
        return "medium"
    return "low"


class Monitor:
    """Telemetry in, AlertEvents out. ``feed`` keeps per-asset state; pure and causal."""

    def __init__(
        self,
        config: MonitorConfig | None = None,
        *,
        id_prefix: str | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        self.config = config or MonitorConfig()
        self.tuning = tuning
        self._prefix = id_prefix if id_prefix is not None else secrets.token_hex(3)
        self._counter = 0
        self._assets: dict[str, _AssetState] = {}
        self._first: dict[str, tuple[float, list[str]]] = {}

    def _new_id(self, asset: str) -> str:
        self._counter += 1
        return f"{asset}-A{self._prefix}-{self._counter:05d}"

    def feed(self, t: Telemetry) -> list[AlertEvent]:
        st = self._assets.get(t.asset)
        if st is None:
            # The first sample fixes the channel set; the second, the sample period.
            first = self._first.get(t.asset)
            if first is None:
                self._first[t.asset] = (t.ts, list(t.signals))
                return []
            dt = t.ts - first[0]
            dt = dt if 0.0 < dt <= 3600.0 else 1.0
            st = self._assets[t.asset] = _AssetState(
                t.asset, first[1], self.config, dt, self.tuning, self._new_id
            )
        return st.step(t.ts, t.signals)

    def forget(self, asset: str) -> list[AlertEvent]:
        """Drop an asset's state (a service evicts long-silent assets to bound its memory)."""
        self._assets.pop(asset, None)
        self._first.pop(asset, None)
        return []

    def apply_tuning(self, tuning: Tuning | None) -> None:
        """Scale thresholds per asset/signal from feedback (bounded; see engine.agents.tuning)."""
        self.tuning = tuning
        for st in self._assets.values():
            st.apply_tuning(tuning)

    def baseline(self, asset: str) -> dict[str, tuple[float, float]] | None:
        """Learned baseline (median, robust sd) per channel, or None while still learning."""
        st = self._assets.get(asset)
        if st is None or not st.ready:
            return None
        return {nm: (float(st.base_mean[i]), float(st.base_sd[i])) for i, nm in enumerate(st.names)}

    def active_alerts(self, asset: str | None = None) -> list[str]:
        return [
            e.alert_id for a, st in self._assets.items() if asset in (None, a) for e in st.episodes
        ]
