"""A full-width trend chart as styled text: min/max band, fixed value axis, time axis, the signal's
alarm limits and the alarm episodes. Pure (no Textual): the widget only turns these runs into
strips, and tests read the characters.

Each column is one time slice of the decimated history (``tui.trend``): the band is drawn from
the slice's minimum to its maximum, so a spike shows as a tall thin column and noise as a band
that thickens. The top edge of the band is exact to an eighth of a row (lower block characters),
the bottom edge to half a row. Alarm limits are dashed rows labelled on the right; each alarm
episode gets a dotted line at its onset and its severity initial on the row under the time axis
(letters as well as colour).

Drawn without a plotting library: the band, the limits and the episode row are what an operator
reads, and plotext's line and scatter markers have no min/max band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tui import format as fmt
from tui.trend import Window

Run = tuple[str, str]
"""(text, style name) — style names are the chart widget's component classes."""
Line = list[Run]

BLOCKS = " ▁▂▃▄▅▆▇█"
AXIS_W = 8
"""Value labels (7) plus the axis character."""
LABEL_W = 10
"""Right margin for limit labels."""
_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
_SEV_INITIAL = {"low": "L", "medium": "M", "high": "H", "critical": "C"}
_SEV_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


@dataclass(frozen=True)
class Limit:
    """A horizontal limit line on the chart (``tui.scales.limits_for``: the signal's
    engineering limit, past which the monitor's alert goes critical)."""

    value: float
    """Where it is drawn, in the signal's unit; a limit outside the value axis is not drawn."""
    label: str
    """Shown in the right margin with the value (cut to ``LABEL_W`` with it)."""
    level: str
    """"warn" or "alarm" (style)."""


@dataclass(frozen=True)
class Episode:
    start: float
    end: float | None
    """None: still active."""
    severity: str


def plot_width(width: int, limits: Sequence[Limit]) -> int:
    """Columns left for the band once axis and limit labels are placed."""
    return max(width - AXIS_W - (LABEL_W if limits else 0), 1)


def _y_label(v: float, decimals: int) -> str:
    return fmt.value(v, decimals).rjust(AXIS_W - 1)[: AXIS_W - 1]


def _band_char(bot: float, top: float) -> str:
    """The character for one cell the band touches, given its extent in eighths (0..8)."""
    if bot < 4:
        return BLOCKS[max(1, min(8, round(top)))]
    if top >= 6:
        return "▀"
    return "━"


def time_ticks(start: float, end: float, columns: int, label_w: int) -> list[tuple[int, float]]:
    """(column, time) of round times, spaced so labels of ``label_w`` characters do not touch."""
    span = end - start
    if span <= 0 or columns <= 0:
        return []
    per_col = span / columns
    step = next((s for s in _STEPS_S if s / per_col >= label_w + 3), None)
    if step is None:
        step = math.ceil(span / max(columns / (label_w + 2), 1) / 3600) * 3600 or 3600
    first = math.ceil(start / step) * step
    out = []
    t = first
    while t < end:
        out.append((int((t - start) / per_col), float(t)))
        t += step
    return out


def plot_lines(
    window: Window | None,
    *,
    lo: float,
    hi: float,
    decimals: int,
    width: int,
    height: int,
    limits: Sequence[Limit] = (),
    episodes: Sequence[Episode] = (),
) -> list[Line]:
    """The chart as ``height`` lines of ``width`` cells: plot rows, time axis, time labels and
    the alarm row. With no data, the frame and a "no data" line."""
    rows = max(height - 3, 1)
    pw = plot_width(width, limits)
    if hi <= lo:
        hi = lo + 1.0
    levels = rows * 8

    def level(v: float) -> float:
        return (v - lo) / (hi - lo) * levels

    # Per column: band extent in eighths from the bottom (NaN = no data), clipped flag.
    if window is not None and len(window.lo) == pw:
        y_lo = np.array([level(float(v)) for v in window.lo])
        y_hi = np.array([level(float(v)) for v in window.hi])
    else:
        y_lo = np.full(pw, np.nan)
        y_hi = np.full(pw, np.nan)
    clipped = np.isfinite(y_hi) & ((y_hi > levels) | (y_lo < 0))
    y_lo = np.clip(y_lo, 0, levels)
    y_hi = np.clip(y_hi, 0, levels)
    y_hi = np.where(np.isfinite(y_hi), np.maximum(y_hi, y_lo + 0.5), y_hi)

    limit_rows: dict[int, Limit] = {}
    for lim in limits:
        if lo <= lim.value <= hi:
            r = rows - 1 - min(int(level(lim.value) // 8), rows - 1)
            limit_rows[r] = lim

    onset_cols: set[int] = set()
    episode_cells: list[tuple[int, str] | None] = [None] * pw
    if window is not None and window.end > window.start:
        per_col = (window.end - window.start) / pw
        for ep in episodes:
            end = window.end if ep.end is None else ep.end
            if end < window.start or ep.start > window.end:
                continue
            c0 = max(0, int((ep.start - window.start) / per_col))
            c1 = min(pw - 1, int((end - window.start) / per_col))
            if ep.start >= window.start:
                onset_cols.add(c0)
            rank = _SEV_RANK.get(ep.severity, 0)
            for c in range(c0, c1 + 1):
                cur = episode_cells[c]
                if cur is None or cur[0] < rank:
                    episode_cells[c] = (rank, ep.severity)

    label_rows = {0: hi, rows - 1: lo}
    if rows >= 5:
        label_rows[rows // 2] = (hi + lo) / 2
    lines: list[Line] = []
    for r in range(rows):
        line: Line = []
        if r in label_rows:
            line.append((_y_label(label_rows[r], decimals), "label"))
            line.append(("┤", "axis"))
        else:
            line.append((" " * (AXIS_W - 1), "label"))
            line.append(("│", "axis"))
        base = (rows - 1 - r) * 8
        row_limit = limit_rows.get(r)
        for c in range(pw):
            top, bot = y_hi[c], y_lo[c]
            if math.isfinite(top) and top > base and bot < base + 8:
                char = _band_char(max(bot - base, 0.0), min(top - base, 8.0))
                style = "clip" if clipped[c] else "band"
                if episode_cells[c] is not None:
                    style = "band-alarm" if not clipped[c] else "clip"
            elif row_limit is not None:
                char, style = "╌", f"limit-{row_limit.level}"
            elif c in onset_cols:
                char, style = "┊", "onset"
            else:
                char, style = " ", "plot"
            if line and line[-1][1] == style:
                line[-1] = (line[-1][0] + char, style)
            else:
                line.append((char, style))
        if limits:
            if row_limit is not None:
                for d in range(decimals, -1, -1):  # fewer decimals rather than a cut number
                    text = f" {row_limit.label} {fmt.value(row_limit.value, d)}"
                    if len(text) <= LABEL_W:
                        break
                line.append((text[:LABEL_W].ljust(LABEL_W), f"limit-{row_limit.level}"))
            else:
                line.append((" " * LABEL_W, "plot"))
        lines.append(line)

    # Time axis, labels, alarm row.
    label_w = 5
    ticks: list[tuple[int, float]] = []
    if window is not None:
        label_w = 8 if window.end - window.start < 3600 else 5
        ticks = time_ticks(window.start, window.end, pw, label_w)
    axis = ["─"] * pw
    for c, _ in ticks:
        if 0 <= c < pw:
            axis[c] = "┬"
    lines.append([(" " * (AXIS_W - 1) + "└", "axis"), ("".join(axis), "axis")])
    labels = [" "] * pw
    for c, t in ticks:
        text = fmt.sim_clock(t)[:label_w]
        at = min(max(c - label_w // 2, 0), pw - label_w)
        if at < 0 or any(ch != " " for ch in labels[max(at - 1, 0) : at + label_w + 1]):
            continue
        labels[at : at + label_w] = list(text)
    time_label = "sim" if window is not None else ""
    lines.append([(time_label.rjust(AXIS_W - 1) + " ", "label"), ("".join(labels), "label")])
    alarm_line: Line = [("alarms".rjust(AXIS_W - 1) + " ", "label")]
    if window is None:
        alarm_line.append(("no data yet".ljust(pw), "label"))
    else:
        for cell in episode_cells:
            char, style = (
                (" ", "plot") if cell is None else (_SEV_INITIAL[cell[1]], f"sev-{cell[1]}")
            )
            if alarm_line[-1][1] == style:
                alarm_line[-1] = (alarm_line[-1][0] + char, style)
            else:
                alarm_line.append((char, style))
    lines.append(alarm_line)
    for line in lines:  # every line exactly ``width`` cells (the limit-label margin included)
        used = sum(len(text) for text, _ in line)
        if used < width:
            line.append((" " * (width - used), "plot"))
    return lines[:height] if height >= 4 else lines[-height:]
