"""The live plant: signals, alarms, and the ticket review queue, driven by the keyboard.

Redraw design: nothing here is called from the bus thread. A 10 Hz timer compares the feed's
version counters with what it last drew and, inside one ``App.batch_update()``, redraws only the
panes whose data changed (tables by row key, the signal panel as strips). Review and scenario
actions are HTTP calls in workers, so the screen keeps moving while a service thinks.

Why one module of ~560 lines: one screen: its layout, its 10 Hz redraw and the key actions on the
selected row, which share the screen's selection and last-drawn versions; its widgets are in
``tui/widgets/`` (one per module).
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Select

from engine.http_schemas import ScenarioStatus
from engine.schemas import Ticket
from tui.access import control
from tui.alarms import AlarmRow, alarm_rows
from tui.api import ApiError
from tui.feed import PlantFeed, Versions
from tui.forecast import Forecast, Hint, forecast
from tui.format import CLOSE_REASON_LABEL
from tui.messages import AssetRequested
from tui.safe import clean, set_border_title
from tui.screens.close_ticket import CloseTicketScreen
from tui.screens.console import ConsoleScreen
from tui.screens.edit_ticket import EditTicketScreen
from tui.screens.picker import PickerScreen
from tui.screens.trend import TrendScreen
from tui.trend import SPANS
from tui.widgets.alert_feed import AlertFeed
from tui.widgets.scenario_bar import ScenarioBar, ScenarioLine
from tui.widgets.signal_panel import SignalPanel
from tui.widgets.status_bar import StatusBar
from tui.widgets.ticket_detail import TicketDetail
from tui.widgets.ticket_table import TicketTable

REFRESH_HZ = 10
AGE_REFRESH_S = 5.0
WIDE = 110
SPEEDS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)
TICKET_ACTIONS = ("approve", "edit", "close_ticket")


class PlantScreen(ConsoleScreen):
    BINDINGS = [  # noqa: RUF012
        Binding("a", "approve", "Approve", id="plant.approve"),
        Binding("e", "edit", "Edit", id="plant.edit"),
        Binding("c", "close_ticket", "Close", id="plant.close"),
        Binding("slash", "filter", "Filter", id="plant.filter"),
        Binding("space", "pause", "Pause", key_display="space", id="plant.pause"),
        Binding("w", "span", "Span", id="plant.span"),
        Binding("v", "trend", "Trend", show=False, id="plant.trend"),
        Binding("t", "truth", "Truth", show=False, id="plant.truth"),
        Binding("l", "load_scenario", "Load scenario", show=False, id="plant.load"),
        Binding("s", "start", "Start scenario", show=False, id="plant.start"),
        Binding("x", "stop", "Stop scenario", show=False, id="plant.stop"),
        Binding("plus,equals_sign", "speed(1)", "Faster", show=False, id="plant.faster"),
        Binding("minus", "speed(-1)", "Slower", show=False, id="plant.slower"),
        Binding(
            "left_square_bracket", "asset(-1)", "Previous asset", show=False, id="plant.prev_asset"
        ),
        Binding(
            "right_square_bracket", "asset(1)", "Next asset", show=False, id="plant.next_asset"
        ),
        Binding("h", "toggle_closed", "Show/hide closed tickets", show=False, id="plant.closed"),
        Binding("r", "refresh_tickets", "Refetch tickets", show=False, id="plant.refresh"),
        Binding("z", "zoom", "Zoom pane", show=False, id="plant.zoom"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.asset: str | None = None
        self.asset_pinned = False
        """False: follow the running scenario's asset; True once the operator picks one."""
        self.truth = False
        self.show_closed = False
        self.pending_speed: float | None = None
        self._drawn = Versions(-1, -1, -1)
        self._drawn_status: tuple[Any, ...] = ()
        self._drawn_alarms = -1
        self._drawn_layout: tuple[Any, ...] = ()
        self._detail_key: tuple[str | None, int] = (None, 0)
        self._last_age = 0.0
        self._forecast: Forecast | None = None
        self._forecast_key: tuple[Any, Any] = (None, None)

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield ScenarioBar(id="scenario-bar")
        with Horizontal(id="upper"):
            with Vertical(id="signals-pane", classes="pane"):
                yield SignalPanel(id="signals")
            yield AlertFeed(id="alerts-pane", classes="pane")
        with Horizontal(id="lower"):
            yield TicketTable(control(self).clock, id="tickets", classes="pane")
            yield TicketDetail(id="detail", classes="pane")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        set_border_title(self.query_one("#signals-pane"), "Signals")
        set_border_title(self.query_one("#tickets"), "Tickets")
        set_border_title(self.query_one("#detail"), "Ticket")
        self.query_one(StatusBar).screen_title = "1 Plant"
        self._take_requested_asset()
        self.set_interval(1 / REFRESH_HZ, self.redraw)
        self.redraw()
        self.query_one("#tickets", TicketTable).focus()

    # ---------------------------------------------------------------- the redraw tick

    def redraw(self, force: bool = False) -> None:
        """Bring every pane up to date with the feed; cheap when nothing changed."""
        if not self.is_current:
            return  # hidden (another screen or mode is shown): redrawn on resume
        app = control(self)
        feed = app.feed
        versions = feed.versions
        wide = self.size.width >= WIDE
        layout = (wide, self.size.height, self.truth, self.show_closed, self.asset, app.span)
        status = (app.health, app.scenario_status, self.pending_speed, app.alarms.version)
        now = app.clock()
        age_due = now - self._last_age >= AGE_REFRESH_S
        layout_changed = layout != self._drawn_layout
        if not (
            force
            or layout_changed
            or age_due
            or versions != self._drawn
            or status != self._drawn_status
        ):
            return
        with app.batch_update():
            if (
                force
                or layout_changed
                or versions.telemetry != self._drawn.telemetry
                or versions.alerts != self._drawn.alerts
                or versions.tickets != self._drawn.tickets
            ):
                self._draw_assets(feed)
            view = feed.asset_view(self.asset) if self.asset else None
            if force or layout_changed or versions.telemetry != self._drawn.telemetry:
                self.query_one(SignalPanel).show(
                    view, asset=self.asset or "", truth=self.truth, span=app.span
                )
                title = f"Signals · {self.asset}" if self.asset else "Signals"
                set_border_title(
                    self.query_one("#signals-pane"), f"{title} · {SPANS[app.span].label} (w)"
                )
            if (
                force
                or layout_changed
                or versions.alerts != self._drawn.alerts
                or app.alarms.version != self._drawn_alarms
            ):
                self.query_one(AlertFeed).show(
                    alarm_rows(feed.alerts(), app.alarms), compact=not wide, truth=self.truth
                )
                self._drawn_alarms = app.alarms.version
                self.follow_selected_alarm()
            if force or layout_changed or age_due or versions.tickets != self._drawn.tickets:
                tickets = feed.tickets()
                table = self.query_one("#tickets", TicketTable)
                table.show(tickets, show_closed=self.show_closed, wide=wide)
                open_count = sum(1 for t in tickets if t.state == "open")
                hidden = "" if self.show_closed else " · closed hidden (h)"
                set_border_title(table, f"Tickets · {open_count} open{hidden}")
                self._draw_detail()
                self._last_age = now
            sim_time = view.ts if view is not None and view.ts is not None else None
            bar = self.query_one(StatusBar)
            bar.health = app.health
            bar.sim_time = sim_time
            self.query_one(ScenarioBar).show(
                ScenarioLine(
                    app.scenario_status,
                    sim_time,
                    view.truth if view is not None else None,
                    self.truth,
                    pending_speed=self.pending_speed,
                    hint=self._hint(app.scenario_status, sim_time),
                )
            )
        self._drawn = versions
        self._drawn_status = status
        self._drawn_layout = layout
        app.redraws += 1

    def _hint(self, status: ScenarioStatus | None, sim_time: float | None) -> Hint | None:
        """What the running scenario is about to show (computed by replay: tui/forecast.py)."""
        if status is None or not status.running or not control(self).settings.connect:
            return None  # (an unconnected app draws only what it is fed: no replay of its own)
        key = (status.name, status.seeds[0] if status.seeds else None)
        if key != self._forecast_key:
            self._forecast_key = key
            self._forecast = None
            if key[0] is not None and "," not in key[0]:
                self.compute_forecast(key[0], key[1])
        forecast = self._forecast
        if forecast is None:
            return None
        now = sim_time if sim_time is not None else status.sim_time
        hint = forecast.hint(now, status.speed)
        if hint and len(status.assets) > 1:
            first = status.assets[0]
            hint = Hint(f"{first}: {hint.long}", f"{first}: {hint.short}")
        return hint

    @work(thread=True, exclusive=True, group="forecast")
    def compute_forecast(self, name: str, seed: int | None) -> None:
        result = forecast(name, seed)
        self.app.call_from_thread(self._forecast_ready, (name, seed), result)

    def _forecast_ready(self, key: tuple[Any, Any], result: Forecast | None) -> None:
        if key == self._forecast_key:
            self._forecast = result
            self.redraw(force=True)

    def _draw_assets(self, feed: PlantFeed) -> None:
        assets = feed.assets()
        if not self.asset_pinned and assets:
            status = control(self).scenario_status
            live = feed.live_assets()
            preferred = status.assets[0] if status is not None and status.assets else None
            if preferred in live:
                self.asset = preferred
            elif self.asset not in live:
                self.asset = (
                    live[0] if live else (self.asset if self.asset in assets else assets[0])
                )
        self.query_one(ScenarioBar).set_assets(assets, self.asset)

    def _draw_detail(self) -> None:
        ticket = self.selected_ticket()
        key = (ticket.ticket_id, ticket.revision) if ticket else (None, 0)
        if key != self._detail_key:
            self.query_one(TicketDetail).show(ticket)
            self._detail_key = key
            self.refresh_bindings()

    # ---------------------------------------------------------------- events

    @on(DataTable.RowHighlighted, "#tickets")
    def _ticket_highlighted(self) -> None:
        self._draw_detail()

    @on(DataTable.RowSelected, "#tickets")
    def _ticket_selected(self) -> None:
        self.query_one(TicketDetail).focus()

    @on(DataTable.RowHighlighted, "#alert-table")
    def _alarm_highlighted(self) -> None:
        self.follow_selected_alarm()

    @on(DataTable.RowSelected, "#alert-table")
    def _alarm_selected(self) -> None:
        """Enter on an alarm: its asset's signals (the fleet table's drill-in)."""
        row = self.selected_alarm()
        if row is None:
            return
        if row.row.asset == self.asset:
            self.tell(f"{row.row.asset}'s signals are shown (v: trend).", timeout=2)
        else:
            control(self).open_asset(row.row.asset)

    @on(Select.Changed, "#asset-select")
    def _asset_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.asset:
            self.asset = event.value
            self.asset_pinned = True
            self.redraw(force=True)

    def on_screen_resume(self) -> None:
        self.query_one(StatusBar).screen_title = "1 Plant"
        self._take_requested_asset()
        self.redraw(force=True)

    def on_asset_requested(self, _: AssetRequested) -> None:
        self._take_requested_asset()
        self.redraw(force=True)

    def _take_requested_asset(self) -> None:
        app = control(self)
        if app.requested_asset is not None:
            self.asset, app.requested_asset = app.requested_asset, None
            self.asset_pinned = True
            self.notify(f"Showing {clean(self.asset, single_line=True)}", timeout=2)

    @on(SignalPanel.Open)
    def _open_trend(self, event: SignalPanel.Open) -> None:
        if self.asset is not None:
            self.app.push_screen(TrendScreen(self.asset, event.signal))

    def why_not(self, action: str) -> str | None:
        """Why ``action`` is disabled right now (the footer dims it; pressing it says this)."""
        if action in ("start", "stop"):
            status = control(self).scenario_status
            if status is None:
                return None  # unknown (simulator down): the request will say what is wrong
            if action == "start" and status.running:
                return "The scenario is already running (x stops it, + / - change the speed)."
            if action == "stop" and not status.running:
                return "The scenario is not running (s starts it)."
            return None
        if action not in TICKET_ACTIONS:
            return super().why_not(action)
        verb = {"approve": "approve", "edit": "edit", "close_ticket": "close"}[action]
        if not self._tickets_focused():
            return f"To {verb} a ticket, select it in the tickets pane first (tab)."
        ticket = self.selected_ticket()
        if ticket is None:
            return "No ticket selected."
        if ticket.state == "open" or (action != "approve" and ticket.state != "closed"):
            return None
        if action == "approve" and ticket.state == "approved":
            return f"{ticket.ticket_id} is already approved (c closes it)."
        return f"{ticket.ticket_id} is {ticket.state}: nothing to {verb}."

    # ---------------------------------------------------------------- tickets

    def selected_ticket(self) -> Ticket | None:
        key = self.query_one("#tickets", TicketTable).selected_key
        return control(self).feed.ticket(key) if key else None

    def _tickets_focused(self) -> bool:
        """The ticket keys apply in the tickets pane and the ticket beside it; elsewhere ``a`` is
        the alarm list's (or nothing) and the footer has no room for keys acting out of view."""
        if self.focused is None:
            return True
        return any(self.query_one(f"#{pane}").has_focus_within for pane in ("tickets", "detail"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in TICKET_ACTIONS:
            if not self._tickets_focused():
                return False  # hidden; pressed, it says where it applies
            return None if self.why_not(action) else True  # dimmed for this ticket's state
        if action in ("start", "stop"):
            return None if self.why_not(action) else True
        return super().check_action(action, parameters)

    def selected_alarm(self) -> AlarmRow | None:
        return self.query_one(AlertFeed).selected

    def refresh_console(self) -> None:
        self.redraw(force=True)

    def action_approve(self) -> None:
        ticket = self.selected_ticket()
        if ticket is not None:
            self.review("approve", ticket.ticket_id, {})

    def action_edit(self) -> None:
        ticket = self.selected_ticket()
        if ticket is None:
            return

        def done(changes: dict[str, Any] | None) -> None:
            if changes:
                self.review("edit", ticket.ticket_id, {"changes": changes})
            elif changes is not None:
                self.notify("Nothing changed.", timeout=2)

        self.app.push_screen(EditTicketScreen(ticket), done)

    def action_close_ticket(self) -> None:
        ticket = self.selected_ticket()
        if ticket is None:
            return

        def done(result: tuple[str, str | None] | None) -> None:
            if result is not None:
                reason, note = result
                self.review("close", ticket.ticket_id, {"reason": reason, "note": note})

        self.app.push_screen(CloseTicketScreen(ticket), done)

    @work(group="review")
    async def review(self, action: str, ticket_id: str, args: dict[str, Any]) -> None:
        """One review action over HTTP. On any error the ticket is refetched, so the table
        shows what the store says, not what we hoped."""
        app = control(self)
        api = app.api.review
        if not app.has_review:
            self.tell("No review service is configured: nothing sent.", severity="error")
            return
        try:
            if action == "approve":
                ticket = await api.approve(ticket_id)
                message = f"{ticket_id} approved"
            elif action == "edit":
                ticket = await api.edit(ticket_id, **args["changes"])
                message = f"{ticket_id} edited ({', '.join(args['changes'])})"
            else:
                ticket = await api.close(ticket_id, args["reason"], args.get("note"))
                message = f"{ticket_id} closed: {CLOSE_REASON_LABEL[args['reason']]}"
        except ApiError as exc:
            self.tell(
                f"{action} {ticket_id} failed: {exc.detail}",
                title="Review",
                severity="error",
                timeout=8,
            )
            await self._refetch(ticket_id)
            return
        app.feed.put_tickets([ticket])
        self.tell(message, title="Review", timeout=4)
        self.redraw(force=True)

    async def _refetch(self, ticket_id: str) -> None:
        app = control(self)
        try:
            app.feed.put_tickets([await app.api.ticket(ticket_id)])
        except ApiError:
            try:
                app.feed.put_tickets(await app.api.tickets())
            except ApiError:
                return
        self.redraw(force=True)

    def action_refresh_tickets(self) -> None:
        self.refetch_all()

    @work(group="refetch", exclusive=True)
    async def refetch_all(self) -> None:
        self.tell("Refetching tickets from the review API…", timeout=2)
        count = await control(self).fetch_tickets().wait()
        if count is None:
            self.tell("Refetch failed: the review API did not answer.", severity="error", timeout=5)
        else:
            self.tell(f"{count} ticket(s) from the store.", timeout=3)
        self.redraw(force=True)

    def action_toggle_closed(self) -> None:
        self.show_closed = not self.show_closed
        self.tell(
            "Closed tickets shown (h hides them)."
            if self.show_closed
            else "Closed tickets hidden.",
            timeout=2,
        )
        self.redraw(force=True)

    # ---------------------------------------------------------------- alerts, assets, overlay

    def action_filter(self) -> None:
        self.query_one(AlertFeed).open_filter()

    def action_pause(self) -> None:
        paused = self.query_one(AlertFeed).toggle_pause()
        self.notify(
            "Alert feed paused (space resumes)." if paused else "Alert feed live.", timeout=2
        )

    def action_truth(self) -> None:
        self.truth = not self.truth
        self.notify(
            "Ground-truth overlay on (demo only)." if self.truth else "Ground-truth overlay off.",
            timeout=2,
        )
        self.redraw(force=True)

    def action_span(self) -> None:
        app = control(self)
        app.span = (app.span + 1) % len(SPANS)
        self.tell(f"History span {SPANS[app.span].label}", timeout=1.5)
        self.redraw(force=True)

    def action_trend(self) -> None:
        panel = self.query_one(SignalPanel)
        if self.asset is None or panel.selected is None:
            self.tell("No signal to trend yet (waiting for telemetry).", timeout=3)
            return
        self.app.push_screen(TrendScreen(self.asset, panel.selected))

    def action_asset(self, step: int) -> None:
        assets = control(self).feed.assets()
        if not assets:
            self.tell("No asset has reported yet.", timeout=2)
            return
        if len(assets) == 1 and self.asset == assets[0]:
            self.tell(f"{assets[0]} is the only asset.", timeout=2)
            return
        i = assets.index(self.asset) if self.asset in assets else -1
        self.asset = assets[(i + step) % len(assets)]
        self.asset_pinned = True
        self.redraw(force=True)

    # ---------------------------------------------------------------- scenario control

    def action_load_scenario(self) -> None:
        self.pick_scenario()

    @work(group="scenario", exclusive=True)
    async def pick_scenario(self) -> None:
        """The simulator's own list (it may run on another host), described from local files
        where they exist."""
        from engine.plant.scenario import list_scenarios, load_scenario

        try:
            names = await control(self).api.scenario_list()
        except ApiError:
            names = list_scenarios()
        entries: list[tuple[str, str]] = []
        for entry in names:
            try:
                description = load_scenario(entry).description
            except Exception:  # not on this host, or broken: listed without a description
                description = ""
            entries.append((entry, description.splitlines()[0] if description else ""))
        if not entries:
            self.tell("No scenarios found.", severity="warning")
            return
        status = control(self).scenario_status
        current = status.name if status is not None else None
        name: str | None = await self.app.push_screen_wait(
            PickerScreen("Load scenario", entries, current)
        )
        if name:
            await self._scenario("load", name=name)

    def action_start(self) -> None:
        self.scenario("start")

    def action_stop(self) -> None:
        self.scenario("stop")

    def action_speed(self, step: int) -> None:
        status = control(self).scenario_status
        speed = float(self.pending_speed or (status.speed if status is not None else 1))
        faster = [s for s in SPEEDS if s > speed]
        slower = [s for s in SPEEDS if s < speed]
        if step > 0:
            new = faster[0] if faster else SPEEDS[-1]
        else:
            new = slower[-1] if slower else SPEEDS[0]
        if status is not None and status.running:
            self.scenario("speed", speed=new)
        else:  # the simulator takes a speed with "start": keep it until then
            self.pending_speed = new
            self.tell(f"Speed ×{new:g} from the next start (s).", timeout=3)
            self.redraw(force=True)

    @work(group="scenario", exclusive=True)
    async def scenario(
        self, action: str, name: str | None = None, speed: float | None = None
    ) -> None:
        await self._scenario(action, name=name, speed=speed)

    async def _scenario(
        self, action: str, name: str | None = None, speed: float | None = None
    ) -> None:
        app = control(self)
        api = app.api
        try:
            if action == "load":
                assert name is not None
                await api.scenario_load(name)
                self.asset_pinned = False  # follow the new scenario's asset
                message = f"Loaded {name} (s starts it)"
            elif action == "start":
                await api.scenario_start(self.pending_speed)
                self.pending_speed = None
                message = "Scenario started"
            elif action == "stop":
                await api.scenario_stop()
                message = "Scenario stopped"
            else:
                await api.scenario_start(speed)
                message = f"Speed ×{speed:g}"
            app.scenario_status = await app.fetch_scenario_status()
        except ApiError as exc:
            self.tell(exc.detail, title=f"Scenario {action}", severity="error", timeout=6)
            return
        self.tell(message, title="Scenario", timeout=3)
        self.redraw(force=True)
