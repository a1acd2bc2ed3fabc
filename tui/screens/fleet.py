"""Every asset at a glance: state, worst active alarm and its priority, unacknowledged alarms,
open tickets, out of service, key values; worst first, filterable, ``enter`` drills into the
asset on the plant screen.

Built for a thousand assets at 1 Hz each: at most ``REFRESH_HZ`` times a second the order is
recomputed from the alarm side (only assets with alarms or tickets cost anything) and the
last-heard times, and only the rows on screen are built and drawn (``RowTable``). The summary
line says how the history is kept (decimated min/max buckets, fixed memory per asset), since no
asset's raw samples are.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Input

from tui import format as fmt
from tui.access import control
from tui.alarms import alarm_rows, flags_of
from tui.fleet import (
    HEALTHY,
    KEY_SIGNALS,
    STALE_S,
    AssetAlarms,
    FleetRow,
    alarm_summary,
    fleet_order,
    haystack,
    matches,
)
from tui.safe import clean, safe_text
from tui.scales import display_for
from tui.screens.console import ConsoleScreen
from tui.screens.keyed_redraw import KeyedRedraw
from tui.trend import FINEST_S
from tui.widgets.filter_input import FilterInput
from tui.widgets.row_table import Column, RowTable
from tui.widgets.status_bar import StatusBar
from tui.widgets.text_line import TextLine

REFRESH_HZ = 2
STATE_STYLE = {
    "ALARM": "bold red",
    "RTN": "yellow",
    "STALE": "bold yellow",
    "STOP": "cyan",
    "OK": "green",
    "OOS": "dim",
}


def fleet_columns(wide: bool) -> list[Column]:
    cols = [
        Column("asset", 10),
        Column("state", 6),
        Column("pri", 5),
        Column("unack", 6, "right"),
        Column("tkt", 4, "right"),
    ]
    cols += [Column(label.split()[0], 7, "right") for _, label in KEY_SIGNALS]
    if wide:
        cols.append(Column("  sim time", 11))
    cols.append(Column("  worst alarm / OOS reason", 0))
    return cols


def fleet_cells(row: FleetRow, wide: bool) -> list[Text]:
    a = row.alarms
    dim = "dim" if a.out_of_service else ""
    cells = [
        safe_text(row.asset, "bold" if row.state == "ALARM" else dim),
        Text(row.state, style=STATE_STYLE.get(row.state, "")),
        Text(
            fmt.SEVERITY_SHORT.get(a.priority, a.priority),
            style=fmt.SEVERITY_STYLE.get(a.priority, ""),
        ),
        Text(str(a.unacked) if a.unacked else "·", style="bold" if a.unacked else "dim"),
        Text(
            str(a.open_tickets) if a.open_tickets else "·",
            style="" if a.open_tickets else "dim",
        ),
    ]
    for (name, _), v in zip(KEY_SIGNALS, row.values, strict=True):
        d = display_for(name)
        cells.append(Text(fmt.value(v, min(d.decimals, 1)), style=dim))
    if wide:
        cells.append(Text("  " + fmt.sim_clock(row.ts), style="dim"))
    what = a.oos_reason if a.out_of_service else a.cause
    cells.append(safe_text("  " + what, dim))
    return cells


class FleetScreen(ConsoleScreen, KeyedRedraw):
    BINDINGS = [  # noqa: RUF012
        Binding("slash", "filter", "Filter", id="fleet.filter"),
        Binding("o", "out_of_service", "Out of service", id="fleet.oos"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.query_text = ""
        self._wide = False
        self._alarms: dict[str, AssetAlarms] = {}
        self._alarm_key: tuple[int, ...] = ()
        self._heard: dict[str, float] = {}
        self._now = 0.0

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield TextLine(id="fleet-summary")
        yield FilterInput(
            placeholder="filter: asset, state, priority, cause, oos, unack… (esc clears)",
            compact=True,
            id="fleet-filter",
        )
        yield RowTable[str](fleet_columns(False), empty="no assets yet", id="fleet-table")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(StatusBar).screen_title = "3 Fleet"
        self.query_one("#fleet-filter").display = False
        self.set_interval(1 / REFRESH_HZ, self.redraw)
        self.redraw(force=True)
        self.query_one(RowTable).focus()

    def on_screen_resume(self) -> None:
        self.query_one(StatusBar).screen_title = "3 Fleet"
        self.redraw(force=True)

    @property
    def wide(self) -> bool:
        return self.size.width >= 110

    def draw_key(self) -> tuple[object, ...]:
        app = control(self)
        return (app.feed.versions, app.alarms.version, self.query_text, self.wide, app.health)

    def draw(self) -> None:
        app = control(self)
        feed = app.feed
        wide = self.wide
        table: RowTable[str] = self.query_one("#fleet-table", RowTable)
        if wide != self._wide:
            self._wide = wide
            table.columns = fleet_columns(wide)
        now = feed.clock()
        heard = feed.heard()
        alarm_key = (feed.versions.alerts, feed.versions.tickets, app.alarms.version)
        if alarm_key != self._alarm_key:  # telemetry alone does not change the alarm side
            self._alarm_key = alarm_key
            rows = alarm_rows(feed.alerts(), app.alarms)
            self._alarms = alarm_summary(
                [r.row for r in rows],
                feed.tickets(),
                flags=flags_of(rows),
                out_of_service=app.alarms.out_of_service(),
            )
        alarms = self._alarms
        order = fleet_order(heard, alarms, now)
        self._heard, self._now = heard, now
        if self.query_text:
            shown = [
                a
                for a in order
                if matches(
                    haystack(a, alarms.get(a, HEALTHY), a in heard and now - heard[a] > STALE_S),
                    self.query_text,
                )
            ]
        else:
            shown = order
        with app.batch_update():
            table.set_rows(shown, str, lambda a: fleet_cells(self._row(a), wide))
            self.query_one("#fleet-summary", TextLine).set(
                self._summary(order, len(shown), feed.memory_per_asset())
            )
            bar = self.query_one(StatusBar)
            bar.health = app.health
            bar.sim_time = feed.latest_ts()
        app.redraws += 1

    def _row(self, asset: str) -> FleetRow:
        ts, values = control(self).feed.last(asset)
        return FleetRow.build(
            asset, self._alarms.get(asset, HEALTHY), self._heard.get(asset), ts, values, self._now
        )

    def _summary(self, order: list[str], shown: int, per_asset: int) -> Text:
        out = Text(end="", no_wrap=True, overflow="ellipsis")
        out.append(f"{len(order)} assets", style="bold")
        marked = self._alarms.values()
        alarm = sum(1 for a in marked if a.active and not a.out_of_service)
        unacked = sum(a.unacked for a in marked)
        tickets = sum(a.open_tickets for a in marked)
        oos = sum(1 for a in marked if a.out_of_service)
        stale = sum(1 for t in self._heard.values() if self._now - t > STALE_S)
        out.append(f" · {alarm} in alarm", style="bold red" if alarm else "")
        out.append(f" · {unacked} unack", style="bold" if unacked else "")
        out.append(f" · {tickets} tickets · {oos} OOS")
        if stale:
            out.append(f" · {stale} stale", style="bold yellow")
        if self.query_text:
            out.append(f" · filter “{clean(self.query_text, single_line=True)}”: {shown}")
        feed = control(self).feed
        refused = feed.counters.assets_refused
        if refused:
            out.append(f" · {refused} samples of new assets refused (cap {feed.max_assets})")
        # No asset's raw samples are kept: say so, as fully as the line allows.
        width = self.query_one("#fleet-summary", TextLine).content_region.width or 999
        for note in (
            f" · history decimated: min–max per {FINEST_S:g} s, {per_asset // 1024} KiB/asset",
            f" · history min–max/{FINEST_S:g} s",
            f" · min–max/{FINEST_S:g} s",
        ):
            if out.cell_len + len(note) <= width:
                out.append(note, style="dim")
                break
        return out

    # ---------------------------------------------------------------- keys and events

    def action_filter(self) -> None:
        box = self.query_one("#fleet-filter", FilterInput)
        box.display = True
        box.focus()

    @on(Input.Changed, "#fleet-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        self.redraw()

    @on(Input.Submitted, "#fleet-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_text = event.value.strip()
        box = self.query_one("#fleet-filter", FilterInput)
        box.display = bool(self.query_text)
        self.query_one(RowTable).focus()
        self.redraw()

    def action_out_of_service(self) -> None:
        asset = self.query_one("#fleet-table", RowTable).selected_key
        if asset is None:
            self.tell("No asset selected.", timeout=2)
            return
        if not control(self).alarms.available:
            self.tell("The review API has not answered yet: out-of-service state unknown.")
            return
        self.toggle_out_of_service(asset)

    def refresh_console(self) -> None:
        self.redraw(force=True)

    @on(RowTable.Selected, "#fleet-table")
    def _drill_in(self, event: RowTable.Selected) -> None:
        control(self).open_asset(event.key)
