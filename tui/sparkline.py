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
