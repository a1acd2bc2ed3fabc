"""Each signal's history over hours, in fixed memory: min and max per time bucket, four spans.

An operator reads trends over minutes to hours (a bearing's 55 → 90 °C over a shift) and must
still see a ten-second spike. Raw samples cannot be kept for a fleet (1,000 pumps x 11 signals x
8 h at 1 Hz is 300 M floats), so every sample is folded, as it arrives, into a ring of
``COLUMNS`` buckets per span and keeps only each bucket's **minimum and maximum**: a slow rise
moves both, a spike moves one, and neither is averaged away.

Spans: 10 min, 1 h and 8 h are rings of fixed bucket width (600 / 3,600 / 28,800 s over
``COLUMNS`` buckets); "run" starts at the finest width from the first sample and doubles its
width (merging neighbours) whenever the run outgrows it, so it always holds the whole run. All of
it lives in numpy arrays allocated once per asset (``memory_bytes``: about 60 KB for a pump's 11
signals), so memory is flat from the first sample, whatever the run length or rate.

The finest resolution is 600 / ``COLUMNS`` = 3.75 simulated seconds: raw samples are not kept
(the screen says "decimated" with the bucket width). Time is the simulated ``ts`` of each
sample; a run that starts again (time jumps back) clears the history.

Not thread-safe by itself: ``PlantFeed`` calls it under its lock and hands the UI a copy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

COLUMNS = 160
"""Buckets per span: enough for a full-width trend on a 160-column terminal."""


@dataclass(frozen=True)
class Span:
    label: str
    seconds: float | None
    """None: the whole run so far."""


SPANS: tuple[Span, ...] = (
    Span("10 min", 600.0),
    Span("1 h", 3600.0),
    Span("8 h", 28_800.0),
    Span("run", None),
)
RUN = len(SPANS) - 1
FINEST_S = 600.0 / COLUMNS
"""The finest bucket (10 min over ``COLUMNS``): the most detail any asset's history keeps."""
RESET_BACK_S = 30.0
"""Simulated time jumping back by more than this is a new run (a reload), not a late sample."""


@dataclass(frozen=True)
class Window:
    """One signal over one span, resampled to ``len(lo)`` screen columns (oldest first).

    A column with no sample is NaN in both arrays (drawn blank)."""

    lo: np.ndarray
    hi: np.ndarray
    start: float
    end: float
    bucket_s: float
    """Width of the stored buckets behind the columns (the decimation the screen reports)."""

    @property
    def column_s(self) -> float:
        return (self.end - self.start) / max(len(self.lo), 1)


class TrendHistory:
    """Min/max history of one asset's signals over every span, in preallocated arrays."""

    def __init__(self, names: Sequence[str], columns: int = COLUMNS) -> None:
        self.columns = columns
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.widths = [s.seconds / columns for s in SPANS if s.seconds is not None]
        self.run_width = self.widths[0]
        self.t0: float | None = None
        self.last_ts: float | None = None
        tiers = len(SPANS)
        self._lo = np.full((tiers, 0, columns), np.nan, dtype=np.float32)
        self._hi = np.full((tiers, 0, columns), np.nan, dtype=np.float32)
        self._bucket = np.full((tiers, columns), -1, dtype=np.int64)
        self.add_signals(names)

    # ---------------------------------------------------------------- writing

    def add_signals(self, names: Sequence[str]) -> None:
        """Give new signal names a row (existing rows and their history stay)."""
        new = [n for n in names if n not in self.index]
        if not new:
            return
        for n in new:
            self.index[n] = len(self.names)
            self.names.append(n)
        pad = np.full((len(SPANS), len(new), self.columns), np.nan, dtype=np.float32)
        self._lo = np.concatenate([self._lo, pad], axis=1)
        self._hi = np.concatenate([self._hi, pad.copy()], axis=1)

    def clear(self) -> None:
        self._lo.fill(np.nan)
        self._hi.fill(np.nan)
        self._bucket.fill(-1)
        self.run_width = self.widths[0]
        self.t0 = None
        self.last_ts = None

    def add(self, ts: float, values: Mapping[str, float]) -> None:
        """Fold one sample in. Signals not yet known are ignored (``add_signals`` first)."""
        if not math.isfinite(ts):
            return
        if self.last_ts is not None and ts < self.last_ts - RESET_BACK_S:
            self.clear()
        if self.t0 is None:
            self.t0 = math.floor(ts / self.widths[0]) * self.widths[0]
        if ts < self.t0:
            return  # older than the run's first bucket: nowhere to put it
        row = np.full(len(self.names), np.nan, dtype=np.float32)
        for name, v in values.items():
            i = self.index.get(name)
            if i is not None:
                row[i] = v
        cols = self.columns
        for tier, width in enumerate(self.widths):
            self._fold(tier, int(ts // width), row)
        b = int((ts - self.t0) // self.run_width)
        while b >= cols:
            self._halve_run()
            b = int((ts - self.t0) // self.run_width)
        self._fold(RUN, b, row, ring=False)
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def _fold(self, tier: int, b: int, row: np.ndarray, *, ring: bool = True) -> None:
        slot = b % self.columns if ring else b
        lo, hi = self._lo[tier, :, slot], self._hi[tier, :, slot]
        if self._bucket[tier, slot] != b:
            if ring and self._bucket[tier, slot] > b:
                return  # a late sample whose bucket the ring has already reused
            self._bucket[tier, slot] = b
            lo[:] = row
            hi[:] = row
        else:
            np.fmin(lo, row, out=lo)
            np.fmax(hi, row, out=hi)

    def _halve_run(self) -> None:
        """The run outgrew its buckets: merge neighbours, doubling the bucket width."""
        half = self.columns // 2
        lo, hi, bucket = self._lo[RUN], self._hi[RUN], self._bucket[RUN]
        lo[:, :half] = np.fmin(lo[:, 0 : 2 * half : 2], lo[:, 1 : 2 * half : 2])
        hi[:, :half] = np.fmax(hi[:, 0 : 2 * half : 2], hi[:, 1 : 2 * half : 2])
        filled = (bucket[0 : 2 * half : 2] >= 0) | (bucket[1 : 2 * half : 2] >= 0)
        bucket[:half] = np.where(filled, np.arange(half), -1)
        lo[:, half:] = np.nan
        hi[:, half:] = np.nan
        bucket[half:] = -1
        self.run_width *= 2

    # ---------------------------------------------------------------- reading

    def copy(self) -> TrendHistory:
        """An independent snapshot (the UI reads it without the feed's lock)."""
        out = TrendHistory.__new__(TrendHistory)
        out.columns = self.columns
        out.names = list(self.names)
        out.index = dict(self.index)
        out.widths = list(self.widths)
        out.run_width = self.run_width
        out.t0 = self.t0
        out.last_ts = self.last_ts
        out._lo = self._lo.copy()
        out._hi = self._hi.copy()
        out._bucket = self._bucket.copy()
        return out

    @property
    def memory_bytes(self) -> int:
        return int(self._lo.nbytes + self._hi.nbytes + self._bucket.nbytes)

    def bucket_s(self, span: int) -> float:
        return self.run_width if span == RUN else self.widths[span]

    def window(self, name: str, span: int, width: int) -> Window | None:
        """``name`` over ``SPANS[span]`` as ``width`` columns ending at the newest sample; each
        column the min and max of the buckets it covers (a bucket wider than a column repeats).
        None when the signal has no data."""
        i = self.index.get(name)
        if i is None or self.last_ts is None or self.t0 is None or width <= 0:
            return None
        cols = self.columns
        bucket_w = self.bucket_s(span)
        if span == RUN:
            last_b = int((self.last_ts - self.t0) // bucket_w)
            first_b = 0
            origin = self.t0
            slots = np.arange(0, last_b + 1)
        else:
            last_b = int(self.last_ts // bucket_w)
            first_b = last_b - cols + 1
            origin = 0.0
            slots = np.arange(first_b, last_b + 1) % cols
        bs = np.arange(first_b, last_b + 1)
        valid = (self._bucket[span, slots] == bs) & (bs >= 0)
        lo = np.where(valid, self._lo[span, i, slots], np.nan)
        hi = np.where(valid, self._hi[span, i, slots], np.nan)
        n = len(bs)
        start = origin + first_b * bucket_w
        end = origin + (last_b + 1) * bucket_w
        # Column j starts in bucket floor(j * n / width): non-decreasing, so reduceat takes the
        # min/max over each column's buckets (one repeated bucket when columns outnumber them).
        starts = (np.arange(width) * n) // width
        with np.errstate(all="ignore"):
            col_lo = np.fmin.reduceat(lo, starts)
            col_hi = np.fmax.reduceat(hi, starts)
        return Window(col_lo, col_hi, start, end, bucket_w)
