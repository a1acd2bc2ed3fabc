"""The full-width trend of one signal of one asset, over the selected span, live.

Opened from the plant screen (``enter`` on a signal, or ``v``); ``w`` cycles the span (shared
with the plant screen's sparklines), ``↑``/``↓`` the signal, ``[``/``]`` the asset, ``esc``
returns. The title line says how decimated the picture is (the width of the stored buckets
behind each column): raw samples are not kept, min and max per bucket are.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer

from tui import format as fmt
from tui.access import control
from tui.feed import AlertRow, AssetView
from tui.safe import clean
from tui.scales import display_for, limits_for, signal_order
from tui.screens.keyed_redraw import KeyedRedraw
from tui.trend import SPANS
from tui.trend_plot import Episode, Limit
from tui.widgets.status_bar import StatusBar
from tui.widgets.text_line import TextLine
from tui.widgets.trend_chart import TrendChart

REFRESH_HZ = 4


def span_stats(view: AssetView, signal: str, span: int) -> tuple[float, float] | None:
    """(min, max) of ``signal`` over the span, from the decimated history."""
    if view.trend is None:
        return None
    w = view.trend.window(signal, span, 1)
    if w is None or not math.isfinite(float(w.lo[0])):
        return None
    return float(w.lo[0]), float(w.hi[0])


def episodes_of(rows: list[AlertRow], asset: str) -> list[Episode]:
    return [
        Episode(
            start=r.onset_ts,
            end=None if r.status == "active" else (r.cleared_ts or r.ts),
            severity=r.peak_severity or r.severity,
        )
        for r in rows
        if r.asset == asset
    ]


def title_text(view: AssetView, signal: str, span: int) -> Text:
    d = display_for(signal)
    out = Text(end="", no_wrap=True, overflow="ellipsis")
    out.append(clean(view.asset, single_line=True), style="bold")
    out.append(" · ")
    out.append(clean(d.label, single_line=True), style="bold")
    out.append(f" {fmt.value(view.values.get(signal), d.decimals)}", style="bold")
    if d.unit:
        out.append(f" {d.unit}", style="dim")
    out.append(f" · {SPANS[span].label} (w)")
    stats = span_stats(view, signal, span)
    if stats is not None:
        out.append(
            f" · range {fmt.value(stats[0], d.decimals)}–{fmt.value(stats[1], d.decimals)}",
            style="dim",
        )
    if view.trend is not None:
        # Raw samples are not kept: say how coarse the stored picture is.
        out.append(f" · min–max per {_seconds(view.trend.bucket_s(span))}", style="dim")
    return out


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:g} s"
    if s < 3600:
        return f"{s / 60:g} min"
    return f"{s / 3600:g} h"


class TrendScreen(KeyedRedraw):
    BINDINGS = [  # noqa: RUF012
        Binding("w", "span(1)", "Span", id="trend.span"),
        Binding("W", "span(-1)", "Span back", show=False, id="trend.span_back"),
        Binding("down,j", "signal(1)", "Signal", key_display="↓↑", id="trend.next"),
        Binding("up,k", "signal(-1)", "Previous signal", show=False, id="trend.prev"),
        Binding(
            "left_square_bracket", "asset(-1)", "Previous asset", show=False, id="trend.prev_asset"
        ),
        Binding(
            "right_square_bracket", "asset(1)", "Asset", key_display="[]", id="trend.next_asset"
        ),
        Binding("escape", "back", "Back", id="trend.back"),
    ]

    def __init__(self, asset: str, signal: str) -> None:
        super().__init__()
        self.asset = asset
        self.signal = signal

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield TextLine(id="trend-title")
        yield TrendChart(id="trend-chart")
        yield TextLine(id="trend-episodes")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(StatusBar).screen_title = "Trend"
        self.set_interval(1 / REFRESH_HZ, self.redraw)
        self.redraw(force=True)

    def draw_key(self) -> tuple[object, ...]:
        app = control(self)
        return (app.feed.versions, app.span, self.asset, self.signal, app.health, self.size)

    def draw(self) -> None:
        app = control(self)
        feed = app.feed
        view = feed.asset_view(self.asset)
        current = view.values.get(self.signal)
        d = display_for(self.signal, () if current is None else (current,))
        limits = [Limit(v, label, level) for v, label, level in limits_for(self.signal)]
        rows = feed.alerts()
        episodes = episodes_of(rows, self.asset)
        chart = self.query_one(TrendChart)
        with app.batch_update():
            chart.show(
                view.trend,
                self.signal,
                app.span,
                lo=d.lo,
                hi=d.hi,
                decimals=d.decimals,
                limits=limits,
                episodes=episodes,
            )
            self.query_one("#trend-title", TextLine).set(title_text(view, self.signal, app.span))
            self.query_one("#trend-episodes", TextLine).set(self._episode_text(rows))
            bar = self.query_one(StatusBar)
            bar.health = app.health
            bar.sim_time = view.ts
        app.redraws += 1

    def _episode_text(self, rows: list[AlertRow]) -> Text:
        mine = [r for r in rows if r.asset == self.asset]
        out = Text(end="", no_wrap=True, overflow="ellipsis")
        if not mine:
            out.append("no alarm episodes on this asset", style="dim")
            return out
        active = [r for r in mine if r.status == "active"]
        out.append(f"{len(mine)} episode(s), {len(active)} active", style="bold")
        for r in mine[:4]:
            sev = r.peak_severity or r.severity
            out.append("  ")
            out.append(fmt.SEVERITY_SHORT.get(sev, sev), style=fmt.SEVERITY_STYLE.get(sev, ""))
            out.append(f" {fmt.sim_clock(r.onset_ts)}")
            out.append(" ●" if r.status == "active" else " ○")
        return out

    # ---------------------------------------------------------------- keys

    def action_span(self, step: int) -> None:
        app = control(self)
        app.span = (app.span + step) % len(SPANS)
        self.notify(f"Span {SPANS[app.span].label}", timeout=1.5)
        self.redraw(force=True)

    def _signals(self) -> list[str]:
        view = control(self).feed.asset_view(self.asset)
        present = set(view.values) | (set(view.trend.names) if view.trend else set())
        known = [n for n in signal_order() if n in present]
        return known + sorted(present - set(known))

    def action_signal(self, step: int) -> None:
        names = self._signals()
        if len(names) < 2:
            self.notify("This asset has only one signal.", timeout=2)
            return
        i = names.index(self.signal) if self.signal in names else 0
        self.signal = names[(i + step) % len(names)]
        self.redraw(force=True)

    def action_asset(self, step: int) -> None:
        assets = control(self).feed.live_assets()
        if len(assets) < 2:
            self.notify(
                "Only one asset reports telemetry." if assets else "No asset reports telemetry.",
                timeout=2,
            )
            return
        i = assets.index(self.asset) if self.asset in assets else -1
        self.asset = assets[(i + step) % len(assets)]
        self.redraw(force=True)

    def action_back(self) -> None:
        self.dismiss(None)
