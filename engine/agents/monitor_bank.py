"""The detectors, for many assets at once: numpy over an assets × channels array per tick.

A bank holds every asset that has one channel layout (the pump's, or one CSV's columns); each
asset is a row of every state array, preallocated and grown by doubling. ``step(lo, hi, ...)``
advances the contiguous rows ``lo:hi`` by one sample each — one asset (single-asset replay, a
live service) or a whole tick of a fleet — with the same arithmetic, so both give identical
decisions. Only the rare events (a channel turning on or off) leave numpy for Python.

Channels, per asset (see ``Layout``):

- *level* channels: the model of normal's residuals (``monitor_normal``). Score = |window mean −
  baseline| / threshold, the threshold calibrated on the warm-up's own scores: ``threshold_k``
  × the largest window-mean departure seen in the second half of the warm-up (capped so that
  one spike cannot set it: ``_largest_departure``), never below the quantisation step, the
  model's uncertainty at today's operating point or an accuracy floor.
  Raw-signal residuals (any stream) adapt: the baseline follows slow drift and the scale keeps
  learning from normal samples; a pump's model residuals do not.
- *raw* channels (the signals themselves): *noise* (spread of sample-to-sample changes vs the
  warm-up's, confirmed with second differences so a ramp is not noise) and *stuck* (identical
  readings far longer than the longest run in the warm-up) on sensors.
- *limit* channels: the window mean of a signal that has an engineering limit, over that limit.

Hysteresis per channel: on after ``persist`` samples over 1, off after a level window under
``clear_ratio``. While a pump is not settled (start, stop, manoeuvre) its level channels are
held: neither counted up nor down.

Why one module of ~710 lines: the vectorised detectors are one numpy state (an assets × channels
array per quantity) that every step reads and writes; split by detector, each part would have to
know the others' array layout and growth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numpy import count_nonzero

from engine.agents.monitor_config import MonitorConfig

if TYPE_CHECKING:  # monitor_normal builds on this module's sizes and layout
    from engine.agents.monitor_normal import Observation

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]

LEVEL, NOISE, STUCK, LIMIT = 0, 1, 2, 3
DETECTOR_NAMES = ("level", "noise", "stuck", "limit")
REANCHOR = 4096
"""Running sums are recomputed from the ring every this many samples (float drift)."""
OUTLIER_RATIO = 2.0
"""Calibration: the warm-up's largest departure counts up to this multiple of the largest one
a single spike cannot reach (``_largest_departure``)."""


@dataclass(frozen=True)
class Layout:
    """What one bank's channels are; fixed for the bank's life."""

    raw_names: tuple[str, ...]
    """Input signals, in the order of the value vector."""
    level_names: tuple[str, ...]
    """Level channels (the model of normal's residuals)."""
    adaptive: tuple[bool, ...]
    """Per level channel: baseline and scale follow slow drift (raw-signal residuals)."""
    sensor: tuple[bool, ...]
    """Per raw signal: a transmitter that can be noisy or stuck (not a command)."""
    relative_noise: tuple[bool, ...]
    """Per raw signal: noise proportional to the reading (judged at today's level)."""
    limits: tuple[tuple[int, float], ...]
    """(raw signal index, engineering limit) for signals that have one."""
    families: tuple[frozenset[str], ...]
    """Per hysteresis channel (level, raw, limit): fault families it belongs to (episodes)."""

    @property
    def n_level(self) -> int:
        return len(self.level_names)

    @property
    def n_raw(self) -> int:
        return len(self.raw_names)

    @property
    def names(self) -> tuple[str, ...]:
        """Hysteresis channels: level, then raw, then limit channels."""
        return self.level_names + self.raw_names + tuple(self.raw_names[i] for i, _ in self.limits)


class Sizes:
    """Window and memory lengths of one bank, in samples."""

    def __init__(self, cfg: MonitorConfig, dt: float) -> None:
        def n(seconds: float) -> int:
            return max(2, round(seconds / dt))

        self.dt = dt
        self.warm = cfg.warmup_n if cfg.warmup_n is not None else n(cfg.warmup_s)
        self.warm = max(self.warm, 4 * cfg.min_window)
        self.w = max(cfg.min_window, round(self.warm * cfg.level_window_frac))
        self.wn = max(self.w, n(cfg.noise_window_s))
        self.persist = max(2, round(self.w * cfg.persist_frac))
        self.clear = self.w
        self.evidence = tuple(n(s) for s in (60.0, 120.0))
        self.ring = max(self.w, self.wn, *self.evidence) + 2
        self.tau_b = max(2.0, cfg.baseline_tau_frac * self.warm)
        self.memory = max(2.0, cfg.scale_memory_frac * self.warm)
        self.tau_ep = max(2.0, cfg.episode_tau_frac * self.warm)
        self.stuck_min = n(cfg.stuck_min_s)
        self.join = round(cfg.join_frac * self.warm)
        self.holdoff = round(cfg.holdoff_frac * self.warm)

    def key(self) -> tuple[int, ...]:
        return (self.warm, self.w, self.ring, self.stuck_min)


class DetectorBank:
    """Detector state of up to ``capacity`` assets with one layout (rows grow by doubling)."""

    ring: F64
    d2ring: F64
    k: I64
    sum_w: F64
    sum_d2: F64
    run: F64
    ready: B
    base: F64
    base_pre: F64
    hot_prev: B
    s0: F64
    ms: F64
    scale: F64
    floor: F64
    tune: F64
    noise_base: F64
    stuck_thr: F64
    raw_mean: F64
    raw_sd: F64
    over: I64
    under: I64
    on: B
    score: F64
    det: I64
    thr: F64
    inv_noise: F64
    inv_stuck: F64
    quiet: B
    n_on: I64
    scale2: F64
    k_tune: F64
    floor_tune: F64

    def __init__(self, layout: Layout, cfg: MonitorConfig, sizes: Sizes, capacity: int = 4) -> None:
        self.layout = layout
        self.cfg = cfg
        self.sz = sizes
        R, S, L = layout.n_level, layout.n_raw, len(layout.limits)
        self.R, self.S, self.L = R, S, L
        self.C = R + S
        self.H = R + S + L
        self.lim_idx = np.array([i for i, _ in layout.limits], dtype=np.int64)
        self.lim_val = np.array([v for _, v in layout.limits], dtype=np.float64)
        self.adaptive = np.array(layout.adaptive, dtype=bool)
        self.sensor = np.array(layout.sensor, dtype=bool)
        self.rel_list = [int(c) for c in np.flatnonzero(np.array(layout.relative_noise))]
        persist = [sizes.persist] * (R + S + L)
        self.persist = np.array(persist, dtype=np.int64)
        self.clear_ratio = np.array(
            [cfg.clear_ratio] * (R + S) + [cfg.limit_clear_ratio] * L, dtype=np.float64
        )
        self.adaptive_any = bool(self.adaptive.any())
        self.rate_b = np.where(self.adaptive, 1.0 / sizes.tau_b, 0.0)
        self.rate_ep = np.where(self.adaptive, 1.0 / sizes.tau_ep, 0.0)
        self.inv_memory = np.where(self.adaptive, 1.0 / sizes.memory, 0.0)
        self.inv_lim = 1.0 / self.lim_val
        self.cap = 0
        self.n = 0
        self._alloc(capacity)

    # ------------------------------------------------------------------ storage

    def _alloc(self, cap: int) -> None:
        old = self.cap
        R, S, C, H, sz = self.R, self.S, self.C, self.H, self.sz

        def grow(name: str, shape: tuple[int, ...], fill: float | bool | int, dtype: type) -> None:
            new: npt.NDArray[Any] = np.full((cap, *shape), fill, dtype=dtype)
            if old:
                new[:old] = getattr(self, name)
            setattr(self, name, new)

        grow("ring", (sz.ring, C), 0.0, np.float64)  # values, level + raw
        grow("d2ring", (sz.ring, S), 0.0, np.float64)  # squared raw differences
        grow("k", (), 0, np.int64)  # samples written since the row's run began
        grow("sum_w", (C,), 0.0, np.float64)
        grow("sum_d2", (S,), 0.0, np.float64)
        grow("run", (S,), 0.0, np.float64)
        grow("ready", (), False, bool)
        grow("base", (R,), 0.0, np.float64)
        grow("base_pre", (R,), 0.0, np.float64)
        grow("hot_prev", (R,), False, bool)
        grow("s0", (R,), 1.0, np.float64)
        grow("ms", (R,), 0.0, np.float64)
        grow("scale", (R,), 1.0, np.float64)
        grow("floor", (R,), 0.0, np.float64)
        grow("tune", (H,), 1.0, np.float64)
        grow("noise_base", (S,), np.inf, np.float64)
        grow("stuck_thr", (S,), np.inf, np.float64)
        grow("raw_mean", (S,), 0.0, np.float64)
        grow("raw_sd", (S,), 0.0, np.float64)
        grow("over", (H,), 0, np.int64)
        grow("under", (H,), 0, np.int64)
        grow("on", (H,), False, bool)
        grow("score", (H,), 0.0, np.float64)
        grow("det", (H,), 0, np.int64)
        grow("thr", (R,), np.inf, np.float64)
        grow("inv_noise", (S,), 0.0, np.float64)
        grow("inv_stuck", (S,), 0.0, np.float64)
        grow("quiet", (), True, bool)
        grow("n_on", (), 0, np.int64)  # level channels on
        grow("scale2", (R,), 1.0, np.float64)
        grow("k_tune", (R,), 1.0, np.float64)
        grow("floor_tune", (R,), 0.0, np.float64)
        self.cap = cap

    def add_row(self) -> int:
        if self.n >= self.cap:
            self._alloc(2 * self.cap)
        self.n += 1
        return self.n - 1

    def reset_row(self, i: int) -> None:
        """A new run: every window, baseline and counter of the row back to its first sample."""
        self.ring[i] = 0.0
        self.d2ring[i] = 0.0
        self.k[i] = 0
        self.sum_w[i] = 0.0
        self.sum_d2[i] = 0.0
        self.run[i] = 0.0
        self.ready[i] = False
        self.over[i] = 0
        self.under[i] = 0
        self.on[i] = False
        self.score[i] = 0.0
        self.hot_prev[i] = False
        self.thr[i] = np.inf
        self.quiet[i] = True
        self.n_on[i] = 0
        self.det[i] = LEVEL
        self.det[i, self.R + self.S :] = LIMIT

    # ------------------------------------------------------------------ calibration

    def calibrate(self, i: int, level: F64, raw: F64, floors: F64, tune: F64) -> None:
        """Learn row i's baselines and thresholds from its warm-up: ``level`` (W, R) is the
        model's residual series over the warm-up, ``raw`` (W, S) the signals."""
        sz, cfg = self.sz, self.cfg
        w, W = sz.w, level.shape[0]
        half = W // 2
        # Level: baseline from the first half, then the same adaptive baseline run through the
        # second half; the departures seen there are the warm-up's own scores.
        cs = np.cumsum(np.vstack([np.zeros(self.R), level]), axis=0)
        means = (cs[w:] - cs[:-w]) / w  # means[j] = mean of level[j : j + w]
        base = level[:half].mean(axis=0)
        alpha = np.where(self.adaptive, 1.0 / sz.tau_b, 0.0)
        first = max(half, w)
        if self.adaptive_any or not np.isfinite(level).all():
            devs = []
            for t in range(first, W):
                devs.append(means[t - w + 1] - base)
                base = base + alpha * (level[t - w + 1] - base)
            d = np.array(devs) if devs else np.zeros((1, self.R))
        else:  # no channel adapts: the baseline stays put, every departure at once
            d = means[first - w + 1 : W - w + 1] - base if first < W else np.zeros((1, self.R))
        step = _quantum(level)
        s0 = np.maximum(_largest_departure(np.abs(d), w), step / math.sqrt(w))
        s0 = np.maximum(s0, 1e-9 * np.maximum(1.0, np.abs(level.mean(axis=0))))
        fixed_base = level.mean(axis=0)
        self.base[i] = np.where(self.adaptive, base, fixed_base)
        self.base_pre[i] = self.base[i]
        self.s0[i] = s0
        self.scale[i] = s0
        self.ms[i] = (d * d).mean(axis=0)
        self.floor[i] = floors
        # Raw signals: sample-to-sample noise (robust) and the longest run of repeated values.
        diffs = np.diff(raw, axis=0)
        dsd = np.sqrt((diffs * diffs).mean(axis=0))
        self.noise_base[i] = np.where(self.sensor & (dsd > 0), dsd, np.inf)
        longest = np.zeros(self.S)
        for c in range(self.S):
            zero = np.concatenate([[False], diffs[:, c] == 0.0, [False]]).astype(np.int8)
            edges = np.flatnonzero(np.diff(zero))
            if edges.size:
                longest[c] = (edges[1::2] - edges[::2]).max()
        constant = longest >= 0.5 * W
        thr = np.maximum(sz.stuck_min, cfg.stuck_run_factor * longest)
        self.stuck_thr[i] = np.where(self.sensor & ~constant, thr, np.inf)
        self.raw_mean[i] = raw.mean(axis=0)
        self.raw_sd[i] = raw.std(axis=0)
        # Windows: the ring is refilled with the last warm-up samples, so detection starts with
        # full windows at the first sample after the warm-up.
        n = min(W, sz.ring)
        y = np.hstack([level[-n:], raw[-n:]])
        self.ring[i] = 0.0
        self.d2ring[i] = 0.0
        k = int(self.k[i])
        slots = np.arange(k - n, k) % sz.ring
        self.ring[i, slots] = y
        d2 = np.vstack([np.zeros((1, self.S)), np.diff(raw[-n:], axis=0) ** 2])
        self.d2ring[i, slots] = d2
        self._resum(i)
        self.ready[i] = True
        self.set_tune(i, tune)

    def set_tune(self, i: int, tune: F64) -> None:
        """Operator-feedback multipliers on row i's thresholds (one per hysteresis channel)."""
        R, S = self.R, self.S
        self.tune[i] = tune
        self._thresholds(i, i + 1)
        rms = self.cfg.noise_ratio * self.noise_base[i] * math.sqrt(self.sz.wn) * tune[R : R + S]
        self.inv_noise[i] = 1.0 / rms
        self.inv_stuck[i] = 1.0 / (self.stuck_thr[i] * tune[R : R + S])

    def _thresholds(self, lo: int, hi: int) -> None:
        """Level thresholds from the current scales (and their parts for the model's extra
        uncertainty): max(k × scale, floor) × tuning."""
        R = self.R
        tune = self.tune[lo:hi, :R]
        scale = self.scale[lo:hi]
        self.scale2[lo:hi] = scale * scale
        self.k_tune[lo:hi] = self.cfg.threshold_k * tune
        self.floor_tune[lo:hi] = self.floor[lo:hi] * tune
        self.thr[lo:hi] = np.maximum(self.cfg.threshold_k * scale, self.floor[lo:hi]) * tune

    def _resum(self, i: int) -> None:
        sz = self.sz
        k = int(self.k[i])
        idx = np.arange(k - min(k, sz.w), k) % sz.ring
        self.sum_w[i] = self.ring[i, idx].sum(axis=0)
        idx = np.arange(k - min(k, sz.wn), k) % sz.ring
        self.sum_d2[i] = self.d2ring[i, idx].sum(axis=0)

    # ------------------------------------------------------------------ one sample per row

    def step(self, lo: int, hi: int, obs: Observation, raw: F64, missing: B | None) -> list[int]:
        """Advance rows lo:hi by one sample. From the model's ``obs``: ``level`` (n, R) its
        residuals (held values where ``hold``, n × R, is set: not judged, counters frozen),
        ``running`` per row (None: all; noise and stuck are judged only on a machine in steady
        running — a start or a stop is neither), ``extra`` (n, R) its own uncertainty at today's
        operating point (added to the thresholds). ``raw`` (n, S) the signals (missing ones held
        at their last value, flagged in ``missing``). Returns the rows (absolute indices) that
        have something to report or are busy: a channel on, or over its threshold."""
        level, hold, running, extra = obs.level, obs.hold, obs.running, obs.extra
        sz, R = self.sz, self.R
        Rn = sz.ring
        if hold is not None:  # a held channel reads its baseline: no trace in the windows
            level = np.where(hold, self.base[lo:hi], level)
        k = self.k[lo:hi]
        k0 = int(k[0])
        lockstep = hi - lo == 1 or bool((k == k0).all())
        if lockstep:
            # Rows in step (one asset, or a fleet in lock-step): plain slicing, no gathers.
            ring = self.ring[lo:hi]
            d2ring = self.d2ring[lo:hi]
            pos = k0 % Rn
            old = ring[:, (k0 - sz.w) % Rn].copy()
            prev = ring[:, (k0 - 1) % Rn, R:].copy()
            ring[:, pos, :R] = level
            ring[:, pos, R:] = raw
            y = ring[:, pos]
            d2_old = d2ring[:, (k0 - sz.wn) % Rn]
            d = raw - prev
            if missing is not None:
                d[missing] = 0.0
            d2 = d * d
            sum_d2 = self.sum_d2[lo:hi]
            sum_d2 += d2
            sum_d2 -= d2_old
            d2ring[:, pos] = d2
        else:
            rows = np.arange(lo, hi)
            posv = k % Rn
            old = self.ring[rows, (k - sz.w) % Rn]
            prev = self.ring[rows, (k - 1) % Rn, R:]
            y = np.concatenate([level, raw], axis=1)
            self.ring[rows, posv] = y
            d = raw - prev
            if missing is not None:
                d[missing] = 0.0
            d2 = d * d
            sum_d2 = self.sum_d2[lo:hi]
            sum_d2 += d2  # in the same order as the other paths: the same rounding
            sum_d2 -= self.d2ring[rows, (k - sz.wn) % Rn]
            self.d2ring[rows, posv] = d2
        sum_w = self.sum_w[lo:hi]
        sum_w += y
        sum_w -= old
        run = self.run[lo:hi]
        run += 1.0
        if missing is not None:
            run[missing] -= 1.0
            d[missing] = 1.0
        run *= d == 0.0
        k += 1
        # Rows out of step (one missed a sample) reach the re-anchoring count at other times.
        if (k0 + 1) % REANCHOR == 0 if lockstep else ((k % REANCHOR) == 0).any():
            for i in np.flatnonzero(k % REANCHOR == 0):
                self._resum(lo + int(i))
        ready = self.ready[lo:hi]
        if not count_nonzero(ready):
            return []
        return self._score(lo, hi, old[:, :R], hold, running, extra, ready)

    def step_one(self, i: int, obs: Observation, raw: F64, missing: B | None) -> list[int]:
        """``step`` for one row (arguments shaped (1, ·)): the same element-wise operations on
        one-dimensional views, without the gathers and reductions a batch needs. A pump's
        sample costs a few tens of numpy calls."""
        level, hold, running, extra = obs.level, obs.hold, obs.running, obs.extra
        sz, R = self.sz, self.R
        Rn = sz.ring
        if hold is not None:  # a held channel reads its baseline: no trace in the windows
            level = np.where(hold, self.base[i], level)
        k0 = int(self.k[i])
        ring = self.ring[i]
        pos = k0 % Rn
        old = ring[(k0 - sz.w) % Rn]
        prev = ring[(k0 - 1) % Rn, R:]
        raw1 = raw[0]
        d = raw1 - prev
        ring[pos, :R] = level[0]
        ring[pos, R:] = raw1
        if missing is not None:
            d[missing[0]] = 0.0
        d2 = d * d
        sum_d2 = self.sum_d2[i]
        sum_d2 += d2
        sum_d2 -= self.d2ring[i, (k0 - sz.wn) % Rn]
        self.d2ring[i, pos] = d2
        sum_w = self.sum_w[i]
        sum_w += ring[pos]
        sum_w -= old
        run = self.run[i]
        run += 1.0
        if missing is not None:
            run[missing[0]] -= 1.0
            d[missing[0]] = 1.0
        run *= d == 0.0
        self.k[i] = k0 + 1
        if (k0 + 1) % REANCHOR == 0:
            self._resum(i)
        if not self.ready[i]:
            return []
        # ---- scores (as _score)
        mean = sum_w * (1.0 / sz.w)
        ml = mean[:R]
        dev = ml - self.base[i]
        np.abs(dev, out=dev)
        if self.adaptive_any and count_nonzero(self.hot_prev[i]):
            dev = np.where(self.hot_prev[i], np.minimum(dev, np.abs(ml - self.base_pre[i])), dev)
        thr = self.thr[i]
        if extra is not None:
            wide = extra[0] * extra[0]
            wide += self.scale2[i]
            np.sqrt(wide, out=wide)
            wide *= self.k_tune[i]
            np.maximum(wide, self.floor_tune[i], out=wide)
            if self.n_on[i]:
                wide = np.where(self.on[i, :R], thr, wide)
            thr = wide
        score = self.score[i]
        lvl = score[:R]
        np.divide(dev, thr, out=lvl)
        if hold is not None:
            lvl[hold[0]] = 0.0
        noise = np.maximum(sum_d2, 0.0)
        np.sqrt(noise, out=noise)
        noise *= self.inv_noise[i]
        for c in self.rel_list:  # multiplicative noise (vibration): judge at today's level
            m = abs(float(mean[R + c]))
            noise[c] *= float(self.raw_mean[i, c]) / (m if m > 1e-9 else 1e-9)
        stuck = run * self.inv_stuck[i]
        if running is not None and not running[0]:
            stuck[:] = 0.0
            noise[:] = 0.0
        S = self.S
        np.maximum(noise, stuck, out=score[R : R + S])
        if self.L:
            np.multiply(mean[R + self.lim_idx], self.inv_lim, out=score[R + S :])
        if count_nonzero(noise >= 1.0):
            noise = self._confirm_noise(i, i + 1, noise[None, :])[0]
            score[R : R + S] = np.maximum(noise, stuck)
        sl = slice(i, i + 1)
        if self.adaptive_any:
            self._adapt(i, i + 1, old[None, :R], mean[None, :R], self.score[sl, :R], self.ready[sl])
        if self.quiet[i] and not count_nonzero(score >= 1.0):
            return []
        return self._hysteresis(i, i + 1, noise[None, :], stuck[None, :], hold)

    def _score(
        self,
        lo: int,
        hi: int,
        leaving: F64,
        hold: B | None,
        running: B | None,
        extra: F64 | None,
        ready: B,
    ) -> list[int]:
        sz, R, S = self.sz, self.R, self.S
        mean = self.sum_w[lo:hi] * (1.0 / sz.w)
        ml = mean[:, :R]
        # ---- level: distance to the baseline, or (while hot) to the nearer of the adapted
        # baseline and the level before the episode.
        dev = ml - self.base[lo:hi]
        np.abs(dev, out=dev)
        hot_prev = self.hot_prev[lo:hi]
        if self.adaptive_any and count_nonzero(hot_prev):
            dev = np.where(hot_prev, np.minimum(dev, np.abs(ml - self.base_pre[lo:hi])), dev)
        thr = self.thr[lo:hi]
        if extra is not None:
            # The model's uncertainty widens the threshold for turning on, never for turning
            # off: an alarm does not clear because the operating point moved.
            wide = extra * extra
            wide += self.scale2[lo:hi]
            np.sqrt(wide, out=wide)
            wide *= self.k_tune[lo:hi]
            np.maximum(wide, self.floor_tune[lo:hi], out=wide)
            thr = np.where(self.on[lo:hi, :R], thr, wide)
        score = self.score[lo:hi]
        lvl = score[:, :R]
        np.divide(dev, thr, out=lvl)
        if hold is not None:
            lvl[hold] = 0.0
        # ---- noise: RMS of sample-to-sample changes vs the warm-up's; stuck: run lengths.
        noise = np.maximum(self.sum_d2[lo:hi], 0.0)
        np.sqrt(noise, out=noise)
        noise *= self.inv_noise[lo:hi]
        for c in self.rel_list:  # multiplicative noise (vibration): judge at today's level
            m = np.abs(mean[:, R + c])
            noise[:, c] *= self.raw_mean[lo:hi, c] / np.maximum(m, 1e-9)
        stuck = self.run[lo:hi] * self.inv_stuck[lo:hi]
        if running is not None:
            stuck[~running] = 0.0
            noise[~running] = 0.0
        np.maximum(noise, stuck, out=score[:, R : R + S])
        if self.L:
            np.multiply(mean[:, R + self.lim_idx], self.inv_lim, out=score[:, R + S :])
        if count_nonzero(ready) != ready.size:
            score[~ready] = 0.0
        if count_nonzero(noise >= 1.0):
            noise = self._confirm_noise(lo, hi, noise)
            score[:, R : R + S] = np.maximum(noise, stuck)
        if self.adaptive_any:
            self._adapt(lo, hi, leaving, ml, lvl, ready)
        if count_nonzero(self.quiet[lo:hi]) == hi - lo and not count_nonzero(score >= 1.0):
            return []
        return self._hysteresis(lo, hi, noise, stuck, hold)

    def _hysteresis(self, lo: int, hi: int, noise: F64, stuck: F64, hold: B | None) -> list[int]:
        """On after ``persist`` samples over 1, off after a level window under the clear
        ratio; held channels neither count up nor down."""
        sz, R, S = self.sz, self.R, self.S
        score = self.score[lo:hi]
        self.det[lo:hi, R : R + S] = np.where(stuck >= noise, STUCK, NOISE)
        over = self.over[lo:hi]
        under = self.under[lo:hi]
        on = self.on[lo:hi]
        is_over = score >= 1.0
        is_under = score < self.clear_ratio
        new_over = (over + 1) * is_over
        new_under = (under + 1) * is_under
        if hold is not None:
            new_over[:, :R][hold] = over[:, :R][hold]
            new_under[:, :R][hold] = under[:, :R][hold]
        over[:] = new_over
        under[:] = new_under
        turn_on = ~on & (over >= self.persist)
        turn_off = on & (under >= sz.clear)
        on |= turn_on
        on &= ~turn_off
        if hi - lo == 1:  # one row: the same, without the per-row reductions
            row_on = on[0]
            self.n_on[lo] = count_nonzero(row_on[:R])
            is_active = bool(count_nonzero(row_on)) or bool(count_nonzero(over[0]))
            self.quiet[lo] = not is_active
            return [lo] if is_active or count_nonzero(turn_off) else []
        self.n_on[lo:hi] = on[:, :R].sum(axis=1)
        active = on.any(axis=1) | (over > 0).any(axis=1)
        self.quiet[lo:hi] = ~active
        busy = np.asarray(active | turn_off.any(axis=1))
        return (busy.nonzero()[0] + lo).tolist()

    def _adapt(self, lo: int, hi: int, leaving: F64, ml: F64, lvl: F64, ready: B) -> None:
        base = self.base[lo:hi]
        hot = lvl >= self.cfg.clear_ratio
        hot |= self.on[lo:hi, : self.R]
        hot &= self.adaptive
        hot_prev = self.hot_prev[lo:hi]
        if count_nonzero(hot != hot_prev):
            start = hot & ~hot_prev
            self.base_pre[lo:hi] = np.where(start, base, self.base_pre[lo:hi])
            ended = hot_prev & ~hot
            if count_nonzero(ended):  # back to normal: settle on whichever normal it came back to
                pre = self.base_pre[lo:hi]
                nearer = np.abs(ml - pre) < np.abs(ml - base)
                base[:] = np.where(ended & nearer, pre, base)
            hot_prev[:] = hot
        rate = np.where(hot, self.rate_ep, self.rate_b)
        if count_nonzero(ready) != ready.size:
            rate[~ready] = 0.0
        base += rate * (leaving - base)
        dev = ml - base
        ms = self.ms[lo:hi]
        upd = (dev * dev - ms) * self.inv_memory
        upd[hot] = 0.0
        if count_nonzero(ready) != ready.size:
            upd[~ready] = 0.0
        ms += upd
        scale = self.scale[lo:hi]
        np.maximum(self.s0[lo:hi], np.sqrt(ms), out=scale)
        self.scale[lo:hi] = np.where(self.adaptive, scale, self.s0[lo:hi])
        self._thresholds(lo, hi)

    def _confirm_noise(self, lo: int, hi: int, noise: F64) -> F64:
        """Re-estimate flagged channels from the median of *second* differences: a ramp (speed
        change, valve stroke, start) has large first differences but small second ones, a noisy
        transmitter has both. Every flagged (row, channel) of the tick at once: their windows
        are gathered into one array (one length past the warm-up) and reduced per row."""
        out = noise.copy()
        sz, R = self.sz, self.R
        rr, cc = np.nonzero(noise >= 1.0)
        rows = rr + lo
        k = self.k[rows]
        n = np.minimum(k, sz.wn + 1)
        for m in np.unique(n).tolist():
            if m < 5:  # fewer than 3 second differences: nothing to judge by
                continue
            sel = np.flatnonzero(n == m)
            slots = (k[sel, None] - m + np.arange(m)) % sz.ring
            xs = self.ring[rows[sel, None], slots, R + cc[sel, None]]
            col = np.diff(xs, axis=1)
            d2 = np.diff(col, axis=1)
            med = np.median(d2, axis=1)
            robust = 1.4826 * np.median(np.abs(d2 - med[:, None]), axis=1) / math.sqrt(3.0)
            rms = np.maximum(np.sqrt(np.mean(col * col, axis=1)), 1e-12)
            out[rr[sel], cc[sel]] *= robust / rms
        return out

    # ------------------------------------------------------------------ reading state

    def last(self, i: int, n: int) -> F64:
        """The last n samples of row i (level + raw), oldest first."""
        k = int(self.k[i])
        n = min(n, k, self.sz.ring)
        out: F64 = self.ring[i, np.arange(k - n, k) % self.sz.ring]
        return out

    def window_mean(self, i: int) -> F64:
        out: F64 = self.sum_w[i] / self.sz.w
        return out


def _largest_departure(ad: F64, w: int) -> F64:
    """Per column of |departures| (n, R): the largest, unless it stands out from the rest by
    more than ``OUTLIER_RATIO`` × the largest outside its own window's reach (the (w+1)-th
    largest: one spike moves the w window means that contain it, and no more), which is then
    the cap. A warm-up that wanders gives the same as a plain maximum; one moderate spike no
    longer sets the scale for every later fault."""
    top: F64 = ad.max(axis=0)
    if len(ad) <= 2 * w:
        return top
    nxt = np.partition(ad, len(ad) - 1 - w, axis=0)[len(ad) - 1 - w]
    out: F64 = np.minimum(top, OUTLIER_RATIO * nxt)
    return out


def _quantum(x: F64) -> F64:
    """Per column: the smallest step between distinct values (a quantised signal's resolution;
    0 for a constant column)."""
    if not np.isfinite(x).all():
        out = np.zeros(x.shape[1])
        for c in range(x.shape[1]):
            u = np.unique(x[:, c])
            if u.size > 1:
                out[c] = float(np.diff(u).min())
        return out
    # Finite: the steps between distinct sorted values are the positive differences of the
    # sorted column (equal neighbours give 0), so one sort serves every column.
    d = np.diff(np.sort(x, axis=0), axis=0)
    step = d > 0.0
    found: F64 = np.where(
        step.any(axis=0), np.where(step, d, np.inf).min(axis=0, initial=np.inf), 0.0
    )
    return found
