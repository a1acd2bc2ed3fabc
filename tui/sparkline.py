"""Block-character sparklines on a FIXED vertical scale.

Textual's own Sparkline scales each redraw to the min/max of its data, so the noise of a healthy
signal fills the full height and looks exactly like a fault. An operator needs the opposite: the
same height means the same value all day. Each signal therefore has a display range (``lo``,
``hi`` from ``engine.plant.signals``); values outside it are clipped to the edge and flagged, so
the widget can colour an off-scale column instead of silently rescaling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BLOCKS = " ▁▂▃▄▅▆▇█"
"""Index = eighths of a cell filled."""


@dataclass(frozen=True)
class SparkRows:
    rows: list[str]
    """Top row first, each exactly ``width`` characters."""
    clipped: list[bool]
    """Per column: the value lies outside [lo, hi] (drawn at the edge)."""


def spark_rows(
    values: Sequence[float], lo: float, hi: float, width: int, height: int = 1
) -> SparkRows:
    """The newest ``width`` values, one per column and right-aligned, ``height`` rows tall.

    A value at ``lo`` still draws a one-eighth baseline so "at the bottom of the scale" and "no
    data yet" (blank) look different.
    """
    width = max(width, 0)
    height = max(height, 1)
    if hi <= lo:
        hi = lo + 1.0
    recent = list(values[-width:]) if width else []
    pad = width - len(recent)
    levels = height * 8
    span = hi - lo
    fills: list[int] = [0] * pad
    clipped: list[bool] = [False] * pad
    for v in recent:
        frac = (v - lo) / span
        clipped.append(frac < 0.0 or frac > 1.0)
        fills.append(min(levels, max(1, round(frac * levels))))
    rows = []
    for r in range(height):
        base = (height - 1 - r) * 8
        rows.append("".join(BLOCKS[min(8, max(0, f - base))] for f in fills))
    return SparkRows(rows=rows, clipped=clipped)


def column_values(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One value per column of a min/max window, for a sparkline that has one bar per column:
    the column's extreme farther from the window's typical level (the median of the columns'
    midpoints). A spike up shows its max, a dip its min, a slow rise both (NaN stays NaN)."""
    mid: np.ndarray = (lo + hi) / 2
    finite = mid[np.isfinite(mid)]
    if not len(finite):
        return mid
    base = float(np.median(finite))
    picked: np.ndarray = np.where(np.abs(hi - base) >= np.abs(lo - base), hi, lo)
    return picked


def spark_columns(values: np.ndarray, lo: float, hi: float, height: int = 1) -> SparkRows:
    """Like ``spark_rows`` for exactly one value per column; NaN (no data) draws blank."""
    height = max(height, 1)
    if hi <= lo:
        hi = lo + 1.0
    levels = height * 8
    frac = (values - lo) / (hi - lo)
    known = np.isfinite(frac)
    safe = np.where(known, frac, 0.0)
    clipped = known & ((safe < 0.0) | (safe > 1.0))
    fills = np.where(known, np.clip(np.rint(safe * levels), 1, levels), 0).astype(np.int64)
    rows = []
    for r in range(height):
        base = (height - 1 - r) * 8
        cells = np.clip(fills - base, 0, 8)
        rows.append("".join(BLOCKS[c] for c in cells.tolist()))
    return SparkRows(rows=rows, clipped=clipped.tolist())
