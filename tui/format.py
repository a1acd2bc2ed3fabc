"""Pure formatting of plant values for the screen (no Textual, easy to test)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from engine import schemas

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
SEVERITY_SHORT = {"critical": "CRIT", "high": "HIGH", "medium": "MED", "low": "LOW"}
SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
}
STATE_STYLE = {"open": "bold yellow", "approved": "green", "closed": "dim"}
STATE_RANK = {"open": 0, "approved": 1, "closed": 2}
CLOSE_REASON_LABEL = {
    "resolved": "resolved",
    "false_positive": "false positive",
    "duplicate": "duplicate",
}


def sim_clock(ts: float | None) -> str:
    """Simulated seconds since scenario start as ``HH:MM:SS`` (``Nd HH:MM:SS`` past a day)."""
    if ts is None or not math.isfinite(ts):
        return "--:--:--"
    return schemas.sim_clock(ts)


def wall_time(at: datetime | None) -> str:
    """A wall-clock time as ``MM-DD HH:MM:SSZ``: UTC, because colleagues on an SSH session may
    sit in other time zones (``—`` for none)."""
    return at.astimezone(UTC).strftime("%m-%d %H:%M:%SZ") if at is not None else "—"


def age(seconds: float) -> str:
    """A compact age: ``45s``, ``12m``, ``3h``, ``2d`` (never negative: clocks disagree)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86_400:
        return f"{s // 3600}h"
    return f"{s // 86_400}d"


def decimals_for(lo: float, hi: float) -> int:
    """Enough decimals that a tenth of the display range is visible, no more."""
    span = abs(hi - lo)
    if span >= 100:
        return 0
    if span >= 10:
        return 1
    return 2


def value(v: float | None, decimals: int) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.{decimals}f}"


def rate(per_second: float) -> str:
    if per_second >= 1000:
        return f"{per_second / 1000:.1f}k/s"
    if per_second >= 10:
        return f"{per_second:.0f}/s"
    return f"{per_second:.1f}/s"


def percent(x: float) -> str:
    return f"{round(x * 100):d}%"
