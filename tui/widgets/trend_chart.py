"""The full-width trend of one signal: ``tui.trend_plot``'s runs turned into strips.

A line-API widget: the chart is rebuilt only when its data or size changed (at most at the
screen's redraw rate), and each line is one strip.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.segment import Segment
from textual.strip import Strip

from tui.trend import TrendHistory
from tui.trend_plot import Episode, Limit, plot_lines, plot_width
from tui.widgets.cached_lines import CachedLines

_STYLES = (
    "label",
    "axis",
    "band",
    "band-alarm",
    "clip",
    "plot",
    "onset",
    "limit-warn",
    "limit-alarm",
    "sev-low",
    "sev-medium",
    "sev-high",
    "sev-critical",
)


class TrendChart(CachedLines):
    COMPONENT_CLASSES = {f"trend-chart--{s}" for s in _STYLES}  # noqa: RUF012

    DEFAULT_CSS = """
    TrendChart { height: 1fr; min-height: 6; }
    TrendChart > .trend-chart--label { color: $text-muted; }
    TrendChart > .trend-chart--axis { color: $text-muted; }
    TrendChart > .trend-chart--band { color: $primary; }
    TrendChart > .trend-chart--band-alarm { color: $error; }
    TrendChart > .trend-chart--clip { color: $warning; text-style: bold; }
    TrendChart > .trend-chart--onset { color: $error; }
    TrendChart > .trend-chart--limit-warn { color: $warning; }
    TrendChart > .trend-chart--limit-alarm { color: $error; }
    TrendChart > .trend-chart--sev-low { color: $text; text-style: bold; }
    TrendChart > .trend-chart--sev-medium { color: $warning; text-style: bold; }
    TrendChart > .trend-chart--sev-high { color: $error; text-style: bold; }
    TrendChart > .trend-chart--sev-critical { color: $text; background: $error; text-style: bold; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._key: tuple[object, ...] | None = None
        self._args: tuple[TrendHistory | None, str, int, float, float, int] | None = None
        self._limits: Sequence[Limit] = ()
        self._episodes: Sequence[Episode] = ()

    def show(
        self,
        trend: TrendHistory | None,
        signal: str,
        span: int,
        *,
        lo: float,
        hi: float,
        decimals: int,
        limits: Sequence[Limit],
        episodes: Sequence[Episode],
    ) -> None:
        self._args = (trend, signal, span, lo, hi, decimals)
        self._limits = limits
        self._episodes = episodes
        self._lines = None
        self.refresh()

    def _build(self) -> list[Strip]:
        width, height = self.size.width, self.size.height
        if self._args is None or width <= 0 or height <= 0:
            return []
        trend, signal, span, lo, hi, decimals = self._args
        window = (
            trend.window(signal, span, plot_width(width, self._limits))
            if trend is not None
            else None
        )
        lines = plot_lines(
            window,
            lo=lo,
            hi=hi,
            decimals=decimals,
            width=width,
            height=height,
            limits=self._limits,
            episodes=self._episodes,
        )
        base = self.rich_style
        styles = {s: self.get_component_rich_style(f"trend-chart--{s}") for s in _STYLES}
        out = []
        for line in lines:
            strip = Strip([Segment(text, styles.get(style)) for text, style in line])
            out.append(strip.apply_style(base).adjust_cell_length(width, base))
        return out
