"""Every alarm, full width: the list with ISA-18.2 states, the selected alarm's audit trail, and
the alarm-system KPIs (EEMUA 191 / ISA-18.2, from the review API, each beside its target).

The list is the plant screen's alarm list given the whole width (priority, state, time, asset,
diagnosis, signals) with the same keys: ``a`` acknowledge, ``s`` shelve, ``u`` unshelve, ``o``
out of service, ``/`` filter, space pause. Below it, the selected alarm in full (fetched with its
history when the selection changes) and the KPI panel (fetched when the screen opens and every
``KPI_REFRESH_S``); on a narrow terminal they share the space and ``i`` switches between them.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Static

from engine.http_schemas import Alarm, AlarmKpis
from tui import format as fmt
from tui.access import control
from tui.alarms import STATE_SHORT, AlarmRow, alarm_rows
from tui.api import ApiError
from tui.safe import clean, set_border_title
from tui.screens.console import ConsoleScreen
from tui.screens.keyed_redraw import KeyedRedraw
from tui.widgets.alert_feed import AlertFeed
from tui.widgets.status_bar import StatusBar

REFRESH_HZ = 4
KPI_REFRESH_S = 10.0
WIDE = 110


def render_alarm(alarm: Alarm) -> Group:
    """The alarm in full: what, its state and who did what, then its audit trail."""
    head = Text(end="")
    head.append(clean(alarm.alarm_id, single_line=True), style="bold")
    head.append("  ")
    head.append(
        fmt.SEVERITY_SHORT.get(alarm.priority, alarm.priority),
        style=fmt.SEVERITY_STYLE.get(alarm.priority, ""),
    )
    head.append(f"  {STATE_SHORT.get(alarm.state, alarm.state)}", style="bold")
    head.append(f"  {clean(alarm.asset, single_line=True)}\n")
    facts = [
        ("source", clean(alarm.source, single_line=True)),
        ("signals", ", ".join(clean(s, single_line=True) for s in alarm.signals) or "—"),
        (
            "plant time",
            f"onset {fmt.sim_clock(alarm.onset_ts)}"
            + (f", cleared {fmt.sim_clock(alarm.cleared_ts)}" if alarm.cleared_ts else ""),
        ),
        (
            "raised",
            fmt.wall_time(alarm.raised_at)
            + (f", cleared {fmt.wall_time(alarm.cleared_at)}" if alarm.cleared_at else ""),
        ),
    ]
    if alarm.acknowledged_by:
        facts.append(
            (
                "acknowledged",
                f"{clean(alarm.acknowledged_by)} {fmt.wall_time(alarm.acknowledged_at)}",
            )
        )
    if alarm.shelved:
        until = (
            "until it clears"
            if alarm.shelved == "until_clear"
            else f"until {fmt.wall_time(alarm.shelved_until)}"
        )
        facts.append(("shelved", f"{until} by {clean(alarm.shelved_by or '?')}"))
    if alarm.out_of_service:
        facts.append(("out of service", clean(alarm.out_of_service_reason or "", single_line=True)))
    flags = []
    if alarm.latched:
        flags.append("latched (critical)")
    if alarm.chattering:
        flags.append("chattering" + (", suppressed" if alarm.suppressed else ""))
    if alarm.reannunciations:
        flags.append(f"re-annunciated ×{alarm.reannunciations}")
    if flags:
        facts.append(("flags", ", ".join(flags)))
    for label, value in facts:
        head.append(f"{label} ", style="dim")
        head.append(f"{value}\n")
    history = Text(end="")
    history.append("History\n", style="bold underline")
    for event in alarm.history:
        history.append(fmt.wall_time(event.at) + " ", style="dim")
        history.append(clean(event.who, single_line=True) + " ", style="cyan")
        history.append(event.action.replace("_", " "), style="bold")
        if event.note:
            history.append(f" “{clean(event.note, single_line=True)}”")
        if event.detail:
            history.append(f" {clean(event.detail, single_line=True)}", style="dim")
        history.append("\n")
    history.rstrip()
    return Group(head, history)


class KpiTable:
    """Each KPI with its value, verdict and target: one line per KPI where the panel is wide
    enough for the whole target, else the target on its own line under the figure (wrapped,
    never cut: the target is half of what the panel says)."""

    def __init__(self, rows: list[tuple[Text, Text, Text, Text]]) -> None:
        self.rows = rows

    def one_line_width(self) -> int:
        widths = [max((r[i].cell_len for r in self.rows), default=0) for i in range(4)]
        return sum(widths) + 3  # the grid's padding between the four columns

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.one_line_width() <= options.max_width:
            table = Table.grid(padding=(0, 1))
            table.add_column(no_wrap=True)
            table.add_column(justify="right", no_wrap=True)
            table.add_column(no_wrap=True)
            table.add_column(style="dim", no_wrap=True)
            for row in self.rows:
                table.add_row(*row)
            yield table
            return
        figure = max((r[1].cell_len for r in self.rows), default=0)
        for name, shown, verdict, target in self.rows:
            line = Table.grid(padding=(0, 1), expand=True)
            line.add_column(ratio=1)  # a name too long wraps; the figure stays at the right
            line.add_column(justify="right", no_wrap=True, width=figure)
            line.add_column(no_wrap=True, width=1)
            line.add_row(name, shown, verdict)
            yield line
            yield Padding(target, (0, 0, 0, 2))


def render_kpis(kpis: AlarmKpis) -> Group:
    """The KPI table, each figure beside its target, then the bad actors and priority split."""
    rows: list[tuple[Text, Text, Text, Text]] = []
    for row in kpis.rows:
        if row.meets is None:
            verdict = Text("–", style="dim")
        else:
            verdict = Text("✓", style="green") if row.meets else Text("✗", style="bold red")
        rows.append(
            (
                Text(clean(row.name, single_line=True)),
                Text(clean(row.shown, single_line=True), style="bold"),
                verdict,
                Text(clean(row.target, single_line=True), style="dim"),
            )
        )
    head = Text()  # the load and what the operator was shown of it: both, wrapped, never cut
    head.append(clean(kpis.summary or f"{kpis.alarms} alarms raised", single_line=True))
    head.append(f"\nover {kpis.hours:g} h of plant time, {kpis.operators} operator(s)", style="dim")
    actors = Text(end="")
    if kpis.bad_actors:
        actors.append("bad actors ", style="dim")
        actors.append(
            ", ".join(
                f"{clean(b.source, single_line=True)} {b.share:.0f} %" for b in kpis.bad_actors[:5]
            )
        )
        actors.append("\n")
    split = " · ".join(
        f"{fmt.SEVERITY_SHORT.get(p, p)} {share:.0f} %" for p, share in kpis.priority_split.items()
    )
    actors.append("priorities ", style="dim")
    actors.append(split or "—")
    actors.append(
        "\nrate, periods, peak and priorities count the alarms annunciated; standing, "
        "chattering and bad actors all raised",
        style="dim",
    )
    return Group(head, KpiTable(rows), actors)


class Pane(VerticalScroll, can_focus=True):
    """A scrolling text pane that ``z`` can zoom to the whole screen."""

    ALLOW_MAXIMIZE = True


class AlarmsScreen(ConsoleScreen, KeyedRedraw):
    BINDINGS = [  # noqa: RUF012
        Binding("slash", "filter", "Filter", id="alarms_screen.filter"),
        Binding("space", "pause", "Pause", key_display="space", id="alarms_screen.pause"),
        Binding("i", "toggle_panel", "KPIs/detail", id="alarms_screen.panel"),
        Binding("z", "zoom", "Zoom pane", show=False, id="alarms_screen.zoom"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._detail_key: tuple[str | None, object] = (None, None)
        self.show_kpis = False
        self.kpis: AlarmKpis | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield AlertFeed(id="alarm-list", classes="pane")
        with Horizontal(id="alarm-lower"):
            with Pane(id="alarm-detail", classes="pane"):
                yield Static(Text("No alarm selected.", style="dim"), id="alarm-detail-text")
            with Pane(id="alarm-kpis", classes="pane"):
                yield Static(Text("KPIs: waiting for the review API…", style="dim"), id="kpi-text")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(StatusBar).screen_title = "4 Alarms"
        set_border_title(self.query_one("#alarm-detail"), "Alarm")
        set_border_title(self.query_one("#alarm-kpis"), "Alarm KPIs (EEMUA 191)")
        self.set_interval(1 / REFRESH_HZ, self.redraw)
        if control(self).settings.connect:
            self.set_interval(KPI_REFRESH_S, self.fetch_kpis)
            self.fetch_kpis()
        self.redraw(force=True)
        self.query_one(AlertFeed).table.focus()

    def on_screen_resume(self) -> None:
        self.query_one(StatusBar).screen_title = "4 Alarms"
        if control(self).settings.connect:
            self.fetch_kpis()
        self.redraw(force=True)

    def selected_alarm(self) -> AlarmRow | None:
        return self.query_one(AlertFeed).selected

    @on(DataTable.RowSelected, "#alert-table")
    def _alarm_selected(self) -> None:
        """Enter on an alarm: into its detail, where the history scrolls."""
        if self.show_kpis and not self.wide:
            self.show_kpis = False
            self.redraw(force=True)
        self.query_one("#alarm-detail").focus()

    def refresh_console(self) -> None:
        self.redraw(force=True)

    @property
    def wide(self) -> bool:
        return self.size.width >= WIDE

    def draw_key(self) -> tuple[object, ...]:
        app = control(self)
        return (app.feed.versions.alerts, app.alarms.version, self.wide, self.show_kpis, app.health)

    def draw(self) -> None:
        app = control(self)
        feed = app.feed
        wide = self.wide
        with app.batch_update():
            self.query_one("#alarm-kpis").display = wide or self.show_kpis
            self.query_one("#alarm-detail").display = wide or not self.show_kpis
            alarms = self.query_one(AlertFeed)
            alarms.show(
                alarm_rows(feed.alerts(), app.alarms),
                compact=alarms.content_region.width < 70,
                truth=False,
            )
            self._draw_detail()
            self.follow_selected_alarm()
            bar = self.query_one(StatusBar)
            bar.health = app.health
            bar.sim_time = feed.latest_ts()
        app.redraws += 1

    # ---------------------------------------------------------------- detail and KPIs

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._draw_detail()
        self.follow_selected_alarm()

    def _draw_detail(self) -> None:
        row = self.selected_alarm()
        key = (row.alarm_id, row.alarm.updated_at if row.alarm else None) if row else (None, None)
        if key == self._detail_key:
            return
        self._detail_key = key
        text = self.query_one("#alarm-detail-text", Static)
        if row is None:
            text.update(Text("No alarm selected.", style="dim"))
        elif row.alarm is None:
            text.update(Text(f"{clean(row.alarm_id)}: not recorded by the review service yet."))
        else:
            text.update(render_alarm(row.alarm))  # without history until the fetch answers
            if control(self).settings.connect:
                self.fetch_detail(row.alarm_id)
        set_border_title(
            self.query_one("#alarm-detail"), f"Alarm {row.alarm_id}" if row else "Alarm"
        )

    @work(group="alarm-detail", exclusive=True)
    async def fetch_detail(self, alarm_id: str) -> None:
        try:
            alarm = await control(self).api.review.alarm(alarm_id)
        except ApiError as exc:
            self.query_one("#alarm-detail-text", Static).update(
                Text(f"{alarm_id}: {clean(exc.detail, single_line=True)}", style="red")
            )
            return
        row = self.selected_alarm()
        if row is not None and row.alarm_id == alarm_id:
            self.query_one("#alarm-detail-text", Static).update(render_alarm(alarm))

    @work(group="kpis", exclusive=True)
    async def fetch_kpis(self) -> None:
        try:
            kpis = await control(self).api.review.kpis()
        except ApiError as exc:
            self.query_one("#kpi-text", Static).update(
                Text(f"KPIs unavailable: {clean(exc.detail, single_line=True)}", style="dim")
            )
            return
        self.show_kpi_panel(kpis)

    def show_kpi_panel(self, kpis: AlarmKpis) -> None:
        self.kpis = kpis
        self.query_one("#kpi-text", Static).update(render_kpis(kpis))

    # ---------------------------------------------------------------- keys

    def action_filter(self) -> None:
        self.query_one(AlertFeed).open_filter()

    def action_pause(self) -> None:
        paused = self.query_one(AlertFeed).toggle_pause()
        self.tell("Alarm list paused (space resumes)." if paused else "Alarm list live.", timeout=2)

    def action_toggle_panel(self) -> None:
        if self.wide:
            self.tell("Both the detail and the KPIs are shown on a wide terminal.", timeout=2)
            return
        self.show_kpis = not self.show_kpis
        self.redraw(force=True)
