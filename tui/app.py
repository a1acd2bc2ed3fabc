"""The Control Room app: two screens (plant, factory) over one bus connection and one HTTP client.

Threads and the event loop meet in exactly two places: the bus client's dispatcher thread calls
``PlantFeed.ingest`` (bounded buffers behind a lock, never a widget), and the factory pipeline's
worker thread posts messages. Everything else runs on Textual's loop; HTTP goes through async
workers. ``connect=False`` (snapshot tests) draws only what a test feeds in, with an injected
clock, so a screenshot is the same on every run.

Why one module of ~510 lines: the app's wiring (bus, HTTP polling, screens, bindings) plus the key-
help table derived from the bindings; each screen and widget has its own module.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen

from engine.bus.acl import tui_credentials
from engine.bus.routing import ALL_TELEMETRY
from engine.heap import fix_mmap_threshold
from engine.http_schemas import ScenarioStatus
from tui.alarms import AlarmBook
from tui.api import ApiError, ControlRoomApi
from tui.feed import PlantFeed
from tui.memory import PAGES, fill_width_cache
from tui.messages import AssetRequested
from tui.problem_log import ProblemLog
from tui.screens.alarms import AlarmsScreen
from tui.screens.factory import FactoryScreen
from tui.screens.fleet import FleetScreen
from tui.screens.help import HelpScreen, Section
from tui.screens.plant import PlantScreen
from tui.settings import UiSettings
from tui.status import (
    HealthState,
    RateMeter,
    ServiceState,
    broker_of,
    read_stack_status,
    service_state,
    with_supervision,
)
from tui.textual_compat import without_reference_cycles

STATUS_POLL_S = 1.0
TICKET_FETCH_LIMIT = 1000
"""The review API's page size for ``GET /tickets`` (a shorter answer is the whole store)."""
TICKET_REFETCH_S = 15.0
ALARM_POLL_S = 1.0
INBOX_LIMIT = 5_000
"""Telemetry the TUI's bus client lets wait for its dispatcher (seconds at a fleet's rate): a
starved TUI shows the latest values late, drops the rest and says how many on the status bar,
instead of queueing up to the services' 100,000 messages (tens of MB)."""
"""Alarm states from the review API: an unchanged list costs a 304 (ETag)."""
ASSET_POLL_EVERY = 5
"""Out-of-service assets are fetched every this many alarm polls (and after any change)."""
TICKET_HINT_S = 0.25
"""How often ticket ids named on the bus are fetched from the store (at most 20 per round)."""
BUS_TOPICS = (ALL_TELEMETRY, "alerts/+", "diagnosis/+", "tickets/+", "feedback/+")


GC_YOUNG_THRESHOLD = 700
"""Allocations between two collections of the youngest generation: CPython's default, set
explicitly because ``controlroom`` raises it to 50,000 while a command starts up
(engine/cli): for a long-running UI, many small collections beat a few big ones."""


GC_FULL_S = 2.0
"""A full collection this often, of what is not frozen (~33,000 objects at the plant screen;
0.75 ms for 22,000 in a bare interpreter, not timed inside the app): the plant
screen at 10 Hz leaves ~2,000 objects a second in reference cycles that outlive the young
collection, and CPython collects the old generation only once it has grown by a quarter, so
without this they piled up as ~2.4 MiB more RssAnon in the first minute (bench/tui_load.py,
10 x 10 Hz: 68.1 -> 70.5 MiB, then flat); with a collection every 2 s, 68.4 -> 68.4. Most
of those cycles were Textual's and are gone (``tui/textual_compat.without_reference_cycles``:
~11 objects a second are left, a finished worker's task and coroutine); the collection stays
for whatever else makes one. Not followed by ``engine.heap.trim`` as in the services: it is
cheap here (0.1 ms p50, 2.9 ms at most; ~130 KiB handed back each time at 10 x 10 Hz), but
the pages come back as the heap is used again, so RssAnon started lower and climbed: +0.044
MiB/min over 5 min against +0.011 without it, the same minutes side by side."""


def collect_cycles() -> None:
    """A full collection (of what is not frozen): see ``GC_FULL_S``; then the pages of any
    arena pymalloc mapped since are made resident at once (``tui.memory.PageToucher``)."""
    gc.collect()
    PAGES.touch()


def freeze_startup(width: int) -> None:
    """Once the first screen is drawn: everything alive (Textual's DOM, styles, imported
    modules) leaves the cyclic collector (``gc.freeze``), and the young generation is collected
    often and cheaply again.

    Why: a full collection traversed the whole start-up heap, ~90-100 ms of CPU every few
    seconds under load, and a young generation of 50,000 objects took 30-45 ms: the event
    loop's longest stalls (bench/tui_load.py, paint CPU p99). Cycles made later are still
    collected; a start-up object that becomes cyclic garbage later is kept (a one-off, bounded
    by what start-up built)."""
    fill_width_cache(width)  # before the freeze: its placeholders are start-up heap too
    gc.collect()
    gc.freeze()
    PAGES.touch()  # pymalloc's arenas resident whole (tui/memory.py)
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, second, third)


class ControlRoomApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "Control Room"
    MODES = {  # noqa: RUF012
        "plant": PlantScreen,
        "factory": FactoryScreen,
        "fleet": FleetScreen,
        "alarms": AlarmsScreen,
    }
    DEFAULT_MODE = "plant"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]  # noqa: RUF012
    BINDINGS = [  # noqa: RUF012
        Binding("1", "show_screen('plant')", "Plant", show=False, id="app.plant"),
        Binding("2", "show_screen('factory')", "Factory", show=False, id="app.factory"),
        Binding("3", "show_screen('fleet')", "Fleet", show=False, id="app.fleet"),
        Binding("4", "show_screen('alarms')", "Alarms", show=False, id="app.alarms"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        settings: UiSettings | None = None,
        *,
        feed: PlantFeed | None = None,
        clock: Callable[[], float] = time.time,
        exit_on_signals: bool = False,
    ) -> None:
        super().__init__()
        self.exit_on_signals = exit_on_signals
        self.settings = settings or UiSettings(connect=False)
        self.feed = feed or PlantFeed()
        self.clock = clock
        self.operator: str | None = None
        """Whom the review service recognises on this connection (``GET /whoami``): the name
        its audit trail records for what this TUI does."""
        self.api = ControlRoomApi(dict(self.settings.service_urls), environ=self.settings.environ)
        self.problems = ProblemLog(self.settings.var if self.settings.connect else None)
        """Why a fetch or call failed, on record in ``var/logs/tui.log``."""
        self.health = HealthState()
        self.scenario_status: ScenarioStatus | None = None
        """The simulator's ``GET /scenario/status``, typed (None: not known)."""
        self.redraws = 0
        """Screen redraws that changed something (the load benchmark reports the rate)."""
        self.span = 0
        """Index into ``tui.trend.SPANS``: the history span sparklines and trends show (w)."""
        self.alarms = AlarmBook()
        """Alarm states from the review API (acknowledged, shelved, out of service)."""
        self._asset_polls = 0
        self.requested_asset: str | None = None
        """An asset the fleet screen drilled into, for the plant screen to show."""
        self.bus: Any = None
        self._rate = RateMeter()
        self._gave_up = ""
        self._telemetry_rate = RateMeter()

    # ---------------------------------------------------------------- lifecycle

    def on_mount(self) -> None:
        fix_mmap_threshold()  # before the bus's threads allocate (tui/memory.py)
        without_reference_cycles()  # Textual's renders freed by refcount (tui/textual_compat.py)
        self.call_after_refresh(lambda: freeze_startup(self.size.width))
        self.set_interval(GC_FULL_S, collect_cycles)
        if self.exit_on_signals:
            # SIGTERM (a supervisor) and SIGHUP (the SSH session dropped) end the app like 'q',
            # so `demo` gets to stop its services and broker.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, self.exit)
        if not self.settings.connect:
            return
        self.connect_bus()
        self.poll_status()
        self._every(STATUS_POLL_S, self.poll_status, "poll")
        if not self.has_review:
            return  # no review service named: nothing to poll
        self.fetch_whoami()
        self.fetch_tickets()
        self._every(TICKET_REFETCH_S, self.fetch_tickets, "tickets")
        self._every(TICKET_HINT_S, self.fetch_hinted_tickets, "ticket-hints")
        self.poll_alarms()
        self._every(ALARM_POLL_S, self.poll_alarms, "alarms")

    def _every(self, seconds: float, poll: Callable[[], object], group: str) -> None:
        """Run ``poll`` every ``seconds``, skipping a turn while its last run is still going.
        Each poll is an exclusive worker, and a new one cancels the old: a service slower than
        the period would never be heard from (the status bar stayed at "services —" while the
        review service was stalled), and a hint fetch cancelled midway lost the hints it took."""

        def tick() -> None:
            if not any(w.group == group and not w.is_finished for w in self.workers):
                poll()

        self.set_interval(seconds, tick)

    async def on_unmount(self) -> None:
        # Workers first: a poll still running would otherwise call a client closed below.
        self.workers.cancel_all()
        gc.unfreeze()  # another app in this process (tests) starts from a collectable heap
        if self.bus is not None:
            bus, self.bus = self.bus, None
            await asyncio.to_thread(bus.stop, 1.0)
        await self.api.aclose()
        self.problems.close()

    def warn(self, text: str) -> None:
        """A failure the screen shows only by its effect: to Textual's log and ``tui.log``."""
        self.log.warning(text)
        self.problems.warning(text)

    # ---------------------------------------------------------------- bus

    def _discover_broker(self, body: dict[str, Any] | None) -> str:
        """The broker the services use (from the simulator's /health), as reachable from here.
        A broker with a password cannot be discovered (/health redacts it): pass --broker."""
        from engine.bus.broker import DEFAULT_URL

        url, _ = broker_of(body) if body else ("", None)
        if not url:
            return DEFAULT_URL
        if "***" in url:
            self.notify(
                "The services' broker needs a password: start the TUI with --broker URL.",
                title="Bus",
                severity="warning",
                timeout=10,
            )
            return url.replace(":***@", "@")
        parts = urlsplit(url)
        api_host = urlsplit(self.settings.service_urls.get("simulator", "")).hostname
        local = (None, "127.0.0.1", "localhost", "::1")
        if parts.hostname in local and api_host not in local:
            # The stack's broker listens on the stack's loopback: reach it via the API host.
            netloc = f"{api_host}:{parts.port}" if parts.port else str(api_host)
            url = urlunsplit((parts.scheme, netloc, "", "", ""))
        return url

    @work(group="bus", exclusive=True)
    async def connect_bus(self) -> None:
        from engine.bus.broker import BrokerError
        from engine.bus.client import BusClient

        url = self.settings.broker_url
        if url is None:
            try:
                url = self._discover_broker(await self.api.health("simulator"))
            except ApiError:
                url = self._discover_broker(None)
        client_id = (
            f"controlroom-tui-{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        if self.settings.var is None:
            self.notify("no runtime-state directory given: bus not connected", title="Bus",
                        severity="error", markup=False, timeout=10)  # fmt: skip
            return
        try:
            bus = BusClient(
                url,
                client_id,
                "tui",
                persistent=False,
                on_event=lambda *_: None,
                var=self.settings.var,
                credentials=self.settings.credentials
                and tui_credentials(self.settings.credentials),
                inbox_limit=INBOX_LIMIT,
                dedup_full=True,  # memory flat from the start (tui/memory.py)
            )
        except (BrokerError, ValueError) as exc:
            self.notify(str(exc), title="Bus", severity="error", markup=False, timeout=10)
            return
        for pattern in BUS_TOPICS:
            bus.subscribe(pattern, self.feed.ingest)
        bus.start()
        self.bus = bus

    # ---------------------------------------------------------------- HTTP polling

    @work(group="tickets", exclusive=True)
    async def fetch_tickets(self) -> int | None:
        """Every ticket from the store; returns how many (None if the review API failed)."""
        if not self.has_review:
            return None
        mark = self.feed.ticket_mark()
        try:
            tickets = await self.api.tickets()
        except ApiError as exc:  # the status bar already shows the review service as down
            self.warn(f"ticket fetch failed: {exc.detail}")
            return None
        complete = len(tickets) < TICKET_FETCH_LIMIT
        self.feed.put_tickets(tickets, complete_since=mark if complete else None)
        return len(tickets)

    @work(group="whoami", exclusive=True)
    async def fetch_whoami(self) -> None:
        try:
            self.operator = (await self.api.review.whoami()).operator
        except ApiError as exc:
            self.warn(f"whoami failed: {exc.detail}")
            return
        self.update_health()

    @property
    def has_review(self) -> bool:
        """A review service is configured (``service_urls``): never fall back to a default
        address, where another stack's service may listen."""
        return "review" in self.api.urls

    @work(group="ticket-hints", exclusive=True)
    async def fetch_hinted_tickets(self) -> None:
        """Tickets the bus says changed, fetched from the store: a ``tickets/{asset}`` message
        is a hint, never the state shown (anyone on the broker could forge one)."""
        for ticket_id in self.feed.take_ticket_hints():
            try:
                self.feed.put_tickets([await self.api.ticket(ticket_id)])
            except ApiError as exc:
                if exc.status is None:
                    return  # the review API is down: the periodic fetch catches up later
                # 404: the bus named a ticket the store does not have (forged or foreign)
                self.warn(f"ticket {ticket_id} named on the bus: {exc.detail}")

    @work(group="alarms", exclusive=True)
    async def poll_alarms(self) -> None:
        """The open alarms (when they changed) and the out-of-service assets, from the store."""
        book = self.alarms
        try:
            etag, alarms = await self.api.review.alarms_if_changed(book.etag)
            self._asset_polls += 1
            if alarms is not None or self._asset_polls >= ASSET_POLL_EVERY or not book.available:
                self._asset_polls = 0
                book.set_assets(await self.api.review.assets())
        except ApiError as exc:  # the status bar shows the review service as down
            self.warn(f"alarm poll failed: {exc.detail}")
            return
        book.etag = etag
        if alarms is None:
            return
        for event in book.replace(alarms):
            self.bell()
            self.notify(
                f"{event.asset}: alarm {event.alarm_id} rose to {event.priority.upper()} while "
                "acknowledged; it needs acknowledging again.",
                title="Alarm re-annunciated",
                severity="warning",
                markup=False,
                timeout=10,
            )

    def open_asset(self, asset: str) -> None:
        """Show ``asset`` on the plant screen (the fleet table's drill-in)."""
        self.requested_asset = asset
        if self.current_mode != "plant":
            self.switch_mode("plant")
        else:
            self.screen.post_message(AssetRequested())

    @work(group="poll", exclusive=True)
    async def poll_status(self) -> None:
        names = list(self.api.urls)
        results = await asyncio.gather(*(self.api.health(n) for n in names), return_exceptions=True)
        services = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, dict):
                services[name] = service_state(result)
            else:
                detail = result.detail if isinstance(result, ApiError) else type(result).__name__
                services[name] = ServiceState(ok=False, detail=detail)
        services, self._gave_up = with_supervision(
            services, read_stack_status(self.settings.stack_file)
        )
        status = None
        if (
            "simulator" in self.api.urls
            and services.get("simulator")
            and services["simulator"].ok is not None
        ):
            try:
                status = await self.fetch_scenario_status()
            except ApiError:
                status = None
        self.scenario_status = status
        self.update_health(services)

    async def fetch_scenario_status(self) -> ScenarioStatus:
        """The simulator's status as its typed contract (an unreadable one is an ApiError)."""
        return await self.api.scenario_status()

    def update_health(self, services: dict[str, Any] | None = None) -> None:
        """Recompute the status bar's figures (rates need a clock; the bus is read directly)."""
        now = time.monotonic()
        counts = self.feed.counts()
        bus = self.bus
        own = bus.counters.snapshot() if bus is not None else {}
        from engine.bus.broker import redact_url

        self.health = HealthState(
            bus_connected=(bus.connected if bus is not None else None),
            broker=redact_url(bus.url) if bus is not None else "",
            services=services if services is not None else self.health.services,
            own_dead_letters=own.get("dead_letters", 0),
            behind_dropped=own.get("inbox_dropped", 0),
            rate=self._rate.update(now, sum(counts.values())),
            operator=self.operator or "",
            telemetry_rate=self._telemetry_rate.update(now, counts["telemetry"]),
            gave_up=self._gave_up,
        )

    # ---------------------------------------------------------------- screens, help, palette

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While a form is open its keys win, and 'q' must not quit mid-edit.
        return not (
            action in ("show_screen", "help", "quit") and isinstance(self.screen, ModalScreen)
        )

    def action_show_screen(self, name: str) -> None:
        if self.current_mode != name:
            self.switch_mode(name)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(key_sections()))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Plant screen",
            "Live signals, alerts and ticket review (1)",
            lambda: self.action_show_screen("plant"),
        )
        yield SystemCommand(
            "Factory screen",
            "Factory-day briefing and Gantt (2)",
            lambda: self.action_show_screen("factory"),
        )
        yield SystemCommand(
            "Fleet screen",
            "Every asset, worst first (3)",
            lambda: self.action_show_screen("fleet"),
        )
        yield SystemCommand(
            "Alarms screen",
            "Every alarm with its history, and the alarm KPIs (4)",
            lambda: self.action_show_screen("alarms"),
        )
        yield SystemCommand("Keys", "Every key of the app (?)", self.action_help)
        if isinstance(screen, PlantScreen | AlarmsScreen):
            for title, help_text, action in (
                (
                    "Acknowledge alarm",
                    "Acknowledge the selected alarm, with a note (a)",
                    "alarm_ack",
                ),
                (
                    "Shelve alarm",
                    "Shelve the selected alarm for a time or until clear (s)",
                    "alarm_shelve",
                ),
                ("Unshelve alarm", "Unshelve the selected alarm (u)", "alarm_unshelve"),
                (
                    "Out of service",
                    "Take the selected alarm's asset out of service, or back (o)",
                    "alarm_oos",
                ),
            ):
                yield SystemCommand(title, help_text, _screen_action(screen, action))
        if isinstance(screen, PlantScreen):
            for title, help_text, action in (
                ("History span", "Cycle 10 min / 1 h / 8 h / run (w)", "span"),
                ("Trend", "Full-width trend of the selected signal (v)", "trend"),
                ("Approve ticket", "Approve the selected ticket (a)", "approve"),
                ("Edit ticket", "Edit title, body, labels, severity (e)", "edit"),
                ("Close ticket", "Close with a reason (c)", "close_ticket"),
                ("Filter alarms", "Filter the alarm list (/)", "filter"),
                ("Pause alarm list", "Pause / resume the alarm list (space)", "pause"),
                ("Truth overlay", "Show / hide the injected fault (t)", "truth"),
                ("Load scenario", "Pick a scenario for the simulator (l)", "load_scenario"),
                ("Start scenario", "Start the loaded scenario (s)", "start"),
                ("Stop scenario", "Stop the simulator (x)", "stop"),
                ("Faster", "Raise the simulation speed (+)", "speed(1)"),
                ("Slower", "Lower the simulation speed (-)", "speed(-1)"),
                ("Next asset", "Show the next asset's signals (])", "asset(1)"),
                (
                    "Show/hide closed tickets",
                    "Toggle closed tickets in the table (h)",
                    "toggle_closed",
                ),
                ("Refetch tickets", "Reload tickets from the review API (r)", "refresh_tickets"),
            ):
                yield SystemCommand(title, help_text, _screen_action(screen, action))
        if isinstance(screen, FleetScreen):
            yield SystemCommand(
                "Out of service",
                "Take the selected asset out of service, or back (o)",
                screen.action_out_of_service,
            )
        if isinstance(screen, FactoryScreen):
            yield SystemCommand(
                "Run factory day", "Run the pipeline on the planner text (enter)", screen.action_run
            )
            yield SystemCommand(
                "Factory config",
                "Pick a factory from scenarios/factory (f)",
                screen.action_choose_factory,
            )
            yield SystemCommand("LLM mode", "Cycle auto / off / on (m)", screen.action_cycle_llm)
        yield SystemCommand("Quit", "Quit Control Room (q)", self.action_quit)


def _screen_action(screen: Screen[Any], action: str) -> Callable[[], Any]:
    def run() -> Any:
        return screen.run_action(action)

    return run


def key_sections() -> list[Section]:
    """Every key, by where it applies, straight from the bindings (plus Textual's built-ins)."""
    from textual.widgets import DataTable

    from tui.screens.alarm_action import AlarmActionScreen
    from tui.screens.close_ticket import CloseTicketScreen
    from tui.screens.edit_ticket import EditTicketScreen
    from tui.screens.trend import TrendScreen
    from tui.widgets.alert_feed import AlertFeed
    from tui.widgets.filter_input import FilterInput
    from tui.widgets.keyed_table import KeyedTable
    from tui.widgets.row_table import RowTable
    from tui.widgets.signal_panel import SignalPanel

    def rows(*classes: type[Any]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for cls in classes:
            for b in cls.BINDINGS:
                if not isinstance(b, Binding):
                    b = Binding(*b)
                if b.id in HELP_ROWS:  # one footer entry for a pair of keys: help names each
                    out.append(HELP_ROWS[b.id])
                    continue
                keys = ", ".join(k.strip() for k in b.key.split(","))
                label = b.key_display or keys
                out.append((_pretty_keys(label), b.description or b.action))
        return out

    everywhere = [
        *rows(ControlRoomApp),
        ("tab / shift+tab", "Next / previous pane"),
        ("ctrl+p", "Command palette"),
        ("ctrl+q", "Quit immediately"),
    ]
    tables = rows(KeyedTable) + [
        (_pretty_keys(b.key), b.description)
        for b in DataTable.BINDINGS
        if isinstance(b, Binding)
        and b.action in ("cursor_up", "cursor_down", "page_up", "page_down", "select_cursor")
    ]
    return [
        ("Everywhere", everywhere),
        ("Plant screen (1)", rows(PlantScreen)),
        (
            "Alarm list (plant and alarms screens)",
            [*rows(AlertFeed), ("enter", "Its asset (plant) / its detail (alarms)")],
        ),
        ("Signals (focused)", rows(SignalPanel)),
        ("Trend view (v, or enter on a signal)", rows(TrendScreen)),
        ("Fleet screen (3)", rows(FleetScreen)),
        ("Alarms screen (4)", rows(AlarmsScreen)),
        ("Filter boxes", rows(FilterInput)),
        ("Tables", tables),
        ("Fleet table", rows(RowTable)),
        ("Factory screen (2)", rows(FactoryScreen)),
        ("Edit ticket form", rows(EditTicketScreen)),
        ("Close ticket form", rows(CloseTicketScreen)),
        ("Alarm forms (ack, shelve, out of service)", rows(AlarmActionScreen)),
    ]


HELP_ROWS = {
    # The footer's "↓↑ Signal" and "[] Asset" name a pair; the other half of each is a hidden
    # binding that help lists on its own line ("up, k  Previous signal").
    "trend.next": ("down, j", "Next signal"),
    "trend.next_asset": ("]", "Next asset"),
}

_KEY_NAMES = {
    "slash": "/",
    "question_mark": "?",
    "plus": "+",
    "minus": "-",
    "equals_sign": "=",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
}


def _pretty_keys(keys: str) -> str:
    return ", ".join(_KEY_NAMES.get(k.strip(), k.strip()) for k in keys.split(","))
