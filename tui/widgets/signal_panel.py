"""One fixed-scale sparkline per signal of the selected asset, with name, value and unit.

Each sparkline shows the selected span (10 min, 1 h, 8 h or the whole run; ``w`` cycles it) from
the asset's min/max history: one column per time slice, drawn at the slice's extreme farther
from the signal's typical level, so a slow rise and a short spike both show at any span.

Drawn with Textual's line API as a single widget: ten signals refreshed ten times a second are
ten strips, not forty widgets relaid out. Rows grow taller on a tall terminal (up to four lines
each, eight levels per line). The panel is focusable: ``↑``/``↓`` pick a signal and ``enter``
opens its full-width trend.

A signal named by an active alert is drawn in the alert colour *and* marked ``!`` (colour is not
the only cue); a value off its fixed scale is clipped to the edge and drawn in the clip colour.
With the truth overlay on, the channel an injected instrument fault sits on is marked ``◆``.
"""

from __future__ import annotations

import numpy as np
from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip

from tui import format as fmt
from tui.feed import AssetView
from tui.safe import clean, truncate
from tui.scales import display_for, signal_order
from tui.sparkline import column_values, spark_columns
from tui.widgets.cached_lines import CachedLines

MAX_ROW_HEIGHT = 4


def _seen(view: AssetView, name: str) -> tuple[float, ...]:
    """Values to learn an unknown signal's scale from (the last one; known signals ignore it)."""
    v = view.values.get(name)
    return (v,) if v is not None else ()


class SignalPanel(CachedLines, can_focus=True):
    BINDINGS = [  # noqa: RUF012
        Binding("down,j", "move(1)", "Next signal", show=False, id="signals.down"),
        Binding("up,k", "move(-1)", "Previous signal", show=False, id="signals.up"),
        Binding("enter", "open", "Trend", id="signals.trend"),
    ]

    class Open(Message):
        """The operator asked for the full-width trend of ``signal``."""

        def __init__(self, signal: str) -> None:
            super().__init__()
            self.signal = signal

    COMPONENT_CLASSES = {  # noqa: RUF012
        "signal-panel--name",
        "signal-panel--value",
        "signal-panel--unit",
        "signal-panel--spark",
        "signal-panel--alert",
        "signal-panel--clip",
        "signal-panel--range",
        "signal-panel--truth",
        "signal-panel--empty",
        "signal-panel--cursor",
    }

    DEFAULT_CSS = """
    SignalPanel { height: auto; min-height: 1; }
    SignalPanel > .signal-panel--name { color: $text; }
    SignalPanel > .signal-panel--value { color: $text; text-style: bold; }
    SignalPanel > .signal-panel--unit { color: $text-muted; }
    SignalPanel > .signal-panel--spark { color: $primary; }
    SignalPanel > .signal-panel--alert { color: $error; text-style: bold; }
    SignalPanel > .signal-panel--clip { color: $warning; }
    SignalPanel > .signal-panel--range { color: $text-muted; }
    SignalPanel > .signal-panel--truth { color: $accent; text-style: bold; }
    SignalPanel > .signal-panel--empty { color: $text-muted; }
    SignalPanel > .signal-panel--cursor { text-style: underline; }
    SignalPanel:focus > .signal-panel--cursor { text-style: reverse; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._view: AssetView | None = None
        self._asset = ""
        self._truth = False
        self._span = 0
        self._count = 0
        self.selected: str | None = None
        """The signal under the cursor (the one ``enter`` and the trend view open)."""

    # ---------------------------------------------------------------- data in

    def show(self, view: AssetView | None, *, asset: str, truth: bool, span: int = 0) -> None:
        self._view = view
        self._asset = asset
        self._truth = truth
        self._span = span
        names = self._names()
        if names and self.selected not in names:
            self.selected = names[0]
        count = max(len(self._names()), 1)
        if count != self._count:  # only a new set of signals needs a new layout
            self._count = count
            self.styles.min_height = count
            self.refresh(layout=True)
        self._lines = None
        self.refresh()

    def _names(self) -> list[str]:
        if self._view is None:
            return []
        present = set(self._view.values)
        if self._view.trend is not None:
            present |= set(self._view.trend.names)
        known = [n for n in signal_order() if n in present]
        return known + sorted(n for n in present if n not in set(known))

    # ---------------------------------------------------------------- cursor

    def action_move(self, step: int) -> None:
        names = self._names()
        if not names:
            return
        i = names.index(self.selected) if self.selected in names else 0
        self.selected = names[max(0, min(len(names) - 1, i + step))]
        self._lines = None
        self.refresh()

    def action_open(self) -> None:
        if self.selected is not None:
            self.post_message(self.Open(self.selected))

    def on_focus(self) -> None:
        self._lines = None
        self.refresh()

    def on_blur(self) -> None:
        self._lines = None
        self.refresh()

    # ---------------------------------------------------------------- drawing

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(len(self._names()), 1)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"signal-panel--{name}")

    def _build(self) -> list[Strip]:
        width, height = self.size.width, self.size.height
        base = self.rich_style
        names = self._names()
        if not names:
            asset = clean(self._asset, single_line=True) or "any asset"
            text = f"waiting for telemetry on {asset}…"
            strip = Strip([Segment(truncate(text, width), self._style("empty"))])
            return [strip.apply_style(base).adjust_cell_length(width, base)]
        assert self._view is not None
        view = self._view
        row_h = max(1, min(MAX_ROW_HEIGHT, height // len(names)))
        displays = [display_for(n, _seen(view, n)) for n in names]
        name_w = min(max(len(d.label) for d in displays), 16)
        unit_w = min(max((len(d.unit) for d in displays), default=0), 5)
        value_w = 7
        left_w = 1 + name_w + 1 + value_w + 1 + unit_w + 1
        show_range = width - left_w >= 40
        range_w = 14 if show_range else 0
        spark_w = max(width - left_w - range_w, 0)
        truth_sensors = set()
        if self._truth and view.truth is not None:
            truth_sensors = {f.sensor for f in view.truth.active if f.sensor}

        name_st, value_st, unit_st = self._style("name"), self._style("value"), self._style("unit")
        spark_st, alert_st, clip_st = (
            self._style("spark"),
            self._style("alert"),
            self._style("clip"),
        )
        range_st, truth_st = self._style("range"), self._style("truth")
        cursor_st = self._style("cursor")

        # Each strip's width is counted here rather than left to Rich, which would measure (and
        # keep in its global cell-width cache) every one-off value and sparkline string: ten
        # lines ten times a second. Values, blanks and blocks are one cell per character; a
        # label or unit (possibly from the bus, possibly wide) is measured.
        lines: list[Strip] = []
        for d in displays:
            window = (
                view.trend.window(d.name, self._span, spark_w) if view.trend is not None else None
            )
            in_alert = d.name in view.alert_signals
            columns = column_values(window.lo, window.hi) if window is not None else None
            spark = (
                spark_columns(columns, d.lo, d.hi, row_h)
                if columns is not None
                else spark_columns(np.full(spark_w, np.nan), d.lo, d.hi, row_h)
            )
            current = view.values.get(d.name)
            label_st = alert_st if in_alert else name_st
            if d.name == self.selected:
                label_st = label_st + cursor_st
            line_spark_st = alert_st if in_alert else spark_st
            rng = f"{fmt.value(d.lo, d.decimals)}–{fmt.value(d.hi, d.decimals)}"
            for r in range(row_h):
                segs: list[Segment] = []
                if r == 0:
                    if d.name in truth_sensors:
                        segs.append(Segment("◆", truth_st))
                    elif in_alert:
                        segs.append(Segment("!", alert_st))
                    else:
                        segs.append(Segment(" "))
                    label = truncate(clean(d.label, single_line=True), name_w).ljust(name_w)
                    shown = " " + fmt.value(current, d.decimals).rjust(value_w) + " "
                    unit = truncate(d.unit, unit_w).ljust(unit_w) + " "
                    segs.append(Segment(label, label_st))
                    segs.append(Segment(shown, value_st))
                    segs.append(Segment(unit, unit_st))
                    length = 1 + cell_len(label) + len(shown) + cell_len(unit)
                elif r == row_h - 1 and not show_range:
                    text = truncate(rng, left_w - 1).rjust(left_w - 1) + " "
                    segs.append(Segment(text, range_st))
                    length = cell_len(text)
                else:
                    segs.append(Segment(" " * left_w))
                    length = left_w
                row = spark.rows[r]
                length += len(row)
                # One segment per run of equal clip state keeps the strip short.
                start = 0
                for i in range(1, len(row) + 1):
                    if i == len(row) or spark.clipped[i] != spark.clipped[start]:
                        segs.append(
                            Segment(
                                row[start:i], clip_st if spark.clipped[start] else line_spark_st
                            )
                        )
                        start = i
                if show_range:
                    text = (" " + rng if r == 0 else "").ljust(range_w)
                    segs.append(Segment(text, range_st))
                    length += cell_len(text)
                strip = Strip(segs, length)
                lines.append(strip.apply_style(base).adjust_cell_length(width, base))
        return lines
