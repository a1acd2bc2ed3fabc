"""Every key path of the TUI against a real broker and the real services.

One stack per module (simulator, ticket and review services as child processes on free ports,
the session's test broker). Tickets are made the way the plant makes them: a DiagnosisReport on
``diagnosis/{asset}``, which the real ticket service turns into a ticket in its SQLite store. The
app is driven only by keys (``pilot.press``); each review action is then checked in that store,
where the review service wrote it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from textual.command import CommandList
from tui_sample import diagnosis
from tui_screen import record_notifications, screen_text

from engine.review_client import ReviewClient
from engine.schemas import AlertEvent, Ticket
from engine.services.stack import Stack
from engine.settings import process_environ
from engine.tickets.store import TicketStore
from tui.app import ControlRoomApp
from tui.screens.close_ticket import CloseTicketScreen
from tui.screens.edit_ticket import EditTicketScreen
from tui.screens.factory import FactoryScreen
from tui.screens.fleet import FleetScreen
from tui.screens.help import HelpScreen
from tui.screens.plant import PlantScreen
from tui.screens.trend import TrendScreen
from tui.settings import UiSettings
from tui.trend import SPANS
from tui.widgets.alert_feed import AlertFeed
from tui.widgets.row_table import RowTable
from tui.widgets.signal_panel import SignalPanel
from tui.widgets.ticket_table import TicketTable

AUDITED = pwd.getpwuid(os.getuid()).pw_name
"""The review service names the operator it authenticated (this process's login, on its Unix
socket), whatever name the TUI was given."""


@pytest.fixture(scope="module")
def stack(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var = tmp_path_factory.mktemp("tui-stack")
    s = Stack(
        environ=process_environ(),
        broker_url=broker.url,
        ports="auto",
        var=var,
        services=("simulator", "ticket", "review"),
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture
def publisher(stack: Stack, bus_client: Callable[..., Any]) -> Any:
    assert stack.broker is not None
    return bus_client(stack.broker.url, name="tui-test-pub", persistent=False)


def store(stack: Stack) -> TicketStore:
    return TicketStore(stack.var / "controlroom.db")


def app_for(stack: Stack, *, discover: bool = False) -> ControlRoomApp:
    """The app as ``controlroom tui`` builds it, recording every notification it shows (they
    expire on screen, a test must still be able to read them). ``discover``: no broker URL,
    the app asks the simulator's /health (what ``controlroom tui`` does without --broker)."""
    assert stack.broker is not None
    broker = None if discover else stack.broker.url
    app = ControlRoomApp(
        UiSettings(
            broker_url=broker,
            service_urls=stack.urls,
            var=stack.var,
            credentials=stack.credentials_file,
        )
    )
    record_notifications(app)
    return app


async def until(pilot: Any, condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            notes = getattr(pilot.app, "shown", [])
            pytest.fail(
                f"timed out after {timeout:.0f}s waiting for {what}; notifications: {notes}"
            )
        await pilot.pause(0.05)


async def ticket_on(pilot: Any, app: ControlRoomApp, asset: str) -> Ticket:
    """Wait until the app shows a ticket for ``asset`` and put the table cursor on it."""
    ticket = await until(
        pilot,
        lambda: next((t for t in app.feed.tickets() if t.asset == asset), None),
        f"a ticket for {asset} in the app",
    )
    screen = app.screen
    assert isinstance(screen, PlantScreen)
    table = screen.query_one("#tickets", TicketTable)
    await until(
        pilot, lambda: ticket.ticket_id in [r.key.value for r in table.ordered_rows], "the row"
    )
    table.focus()
    await pilot.press("g")
    for _ in range(table.row_count):
        if table.selected_key == ticket.ticket_id:
            break
        await pilot.press("j")
    assert table.selected_key == ticket.ticket_id
    return ticket


async def connected(pilot: Any, app: ControlRoomApp) -> None:
    await until(
        pilot, lambda: app.bus is not None and app.bus.connected, "the TUI's bus connection"
    )
    await until(pilot, lambda: app.health.services.get("review") is not None, "a health poll")


def asset_name() -> str:
    return f"pump-{uuid.uuid4().hex[:6]}"


@contextlib.asynccontextmanager
async def app_with_ticket(
    stack: Stack, publisher: Any, root_cause: str
) -> AsyncIterator[tuple[ControlRoomApp, Any, Ticket]]:
    """The app at 80x24, connected, its cursor on the ticket the ticket service made from a
    ``root_cause`` diagnosis of a fresh asset: where every ticket key path starts."""
    app = app_for(stack)
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot, app)
        asset = asset_name()
        publisher.publish(diagnosis(f"a-{uuid.uuid4().hex[:8]}", asset, 120.0, root_cause, 0.8))
        yield app, pilot, await ticket_on(pilot, app, asset)


async def test_approve_round_trip(stack: Stack, publisher: Any) -> None:
    async with app_with_ticket(stack, publisher, "bearing_wear") as (app, pilot, ticket):
        await pilot.press("a")
        stored = await until(
            pilot,
            lambda: (t := store(stack).get(ticket.ticket_id)).state == "approved" and t,
            "approval in the store",
        )
        assert stored.history[-1].who == AUDITED
        await until(
            pilot,
            lambda: app.feed.ticket(ticket.ticket_id).state == "approved",
            "the table to follow",
        )
        assert "appr" in screen_text(app)
        # Approving again is refused by the service (409): shown, and the table stays true.
        screen = app.screen
        assert isinstance(screen, PlantScreen)
        screen.review("approve", ticket.ticket_id, {})
        await until(pilot, lambda: any("failed" in m for m in app.shown), "the error")
        assert store(stack).get(ticket.ticket_id).state == "approved"


async def test_edit_round_trip_and_escape_cancels(stack: Stack, publisher: Any) -> None:
    async with app_with_ticket(stack, publisher, "clogging") as (app, pilot, ticket):
        before = len(store(stack).get(ticket.ticket_id).history)

        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditTicketScreen), "the edit form")
        await pilot.press("x", "y", "escape")  # typed into the title, then cancelled
        await until(pilot, lambda: isinstance(app.screen, PlantScreen), "the form to close")
        assert len(store(stack).get(ticket.ticket_id).history) == before

        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditTicketScreen), "the edit form")
        await pilot.press("home", "ctrl+k", *"Strainer clogged", "tab")  # title, then labels
        await pilot.press("end", *", urgent", "tab")  # severity
        await pilot.press("enter", "down", "enter")  # high -> critical
        await pilot.press("ctrl+s")
        stored = await until(
            pilot,
            lambda: (t := store(stack).get(ticket.ticket_id)).title == "Strainer clogged" and t,
            "the edit in the store",
        )
        assert stored.severity == "critical"
        assert "urgent" in stored.labels
        assert stored.history[-1].who == AUDITED

        # An empty title is refused in the form itself: nothing is sent.
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditTicketScreen), "the edit form")
        await pilot.press("home", "ctrl+k", "ctrl+s")
        assert isinstance(app.screen, EditTicketScreen)
        assert "title: may not be empty" in screen_text(app)
        await pilot.press("escape")
        assert store(stack).get(ticket.ticket_id).title == "Strainer clogged"


@pytest.mark.parametrize(
    "reason_index,reason", [(0, "resolved"), (1, "false_positive"), (2, "duplicate")]
)
async def test_close_with_each_reason(
    stack: Stack, publisher: Any, reason_index: int, reason: str
) -> None:
    async with app_with_ticket(stack, publisher, "noise_burst") as (app, pilot, ticket):
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CloseTicketScreen), "the close form")
        await pilot.press(*["down"] * reason_index, "enter", *f"note {reason}", "enter")
        stored = await until(
            pilot,
            lambda: (t := store(stack).get(ticket.ticket_id)).state == "closed" and t,
            "the close in the store",
        )
        assert stored.close_reason == reason
        assert stored.close_note == f"note {reason}"
        # Closed tickets leave the queue (h shows them).
        await until(
            pilot,
            lambda: (
                ticket.ticket_id
                not in [
                    r.key.value for r in app.screen.query_one("#tickets", TicketTable).ordered_rows
                ]
            ),
            "the row to go",
        )
        await pilot.press("h")
        await until(
            pilot,
            lambda: (
                ticket.ticket_id
                in [r.key.value for r in app.screen.query_one("#tickets", TicketTable).ordered_rows]
            ),
            "closed rows shown",
        )


async def test_ticket_closed_by_another_operator(stack: Stack, publisher: Any) -> None:
    async with app_with_ticket(stack, publisher, "valve_stuck") as (app, pilot, ticket):
        # Someone else closes it over HTTP; the TUI may not have seen the update yet.
        app.bus.stop(0.5)  # make sure the TUI cannot learn it from the bus first
        async with ReviewClient(stack.urls["review"]) as other:
            await other.close(ticket.ticket_id, "duplicate")
        await pilot.press("a")
        await until(pilot, lambda: any("failed" in m for m in app.shown), "the 409 notification")
        await until(
            pilot, lambda: app.feed.ticket(ticket.ticket_id).state == "closed", "the refetch"
        )
        assert store(stack).get(ticket.ticket_id).state == "closed"
        app.bus = None


async def test_alert_filter_and_pause(stack: Stack, publisher: Any) -> None:
    app = app_for(stack, discover=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot, app)
        assert stack.broker is not None and app.bus.address.port == stack.broker.port
        a, b = asset_name(), asset_name()

        def alert(asset: str, n: int) -> AlertEvent:
            return AlertEvent(
                alert_id=f"{asset}-{n}",
                asset=asset,
                ts=10.0 + n,
                onset_ts=10.0,
                severity="medium",
                score=5.0,
                signals=["flow"],
                detector="test",
            )

        publisher.publish(alert(a, 1))
        publisher.publish(alert(b, 1))
        feed = app.screen.query_one(AlertFeed)
        shown = lambda: [r.key.value for r in feed.table.ordered_rows]  # noqa: E731
        await until(pilot, lambda: {f"{a}-1", f"{b}-1"} <= set(shown()), "both alerts")

        await pilot.press("slash", *a, "enter")
        await until(pilot, lambda: shown() == [f"{a}-1"], "the filter")
        assert feed.table.has_focus
        await pilot.press("slash", "escape")
        await until(pilot, lambda: len(shown()) >= 2, "the filter cleared")

        await pilot.press("space")
        publisher.publish(alert(a, 2))
        await until(
            pilot,
            lambda: any(r.alert_id == f"{a}-2" for r in app.feed.alerts()),
            "the alert in the feed",
        )
        # the title and the rows are drawn by one render: once it counts the alert as new,
        # that render left its row out
        await until(pilot, lambda: "PAUSED · 1 new" in screen_text(app), "the alert counted")
        assert f"{a}-2" not in shown()
        await pilot.press("space")
        await until(pilot, lambda: shown()[0] == f"{a}-2", "the feed to resume, newest first")


async def test_screens_help_and_palette(stack: Stack) -> None:
    app = app_for(stack)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        assert isinstance(app.screen, FactoryScreen)
        # The planner box takes the focus once mounted (a call later): an escape sent before
        # that left it focused under load, and the "1" was typed into it.
        await until(pilot, lambda: app.focused is app.screen.query_one("#planner"), "the box")
        await pilot.press("escape")  # leave the planner text box, then switch
        await until(pilot, lambda: app.focused is not app.screen.query_one("#planner"), "esc")
        await pilot.press("1")
        await until(pilot, lambda: isinstance(app.screen, PlantScreen), "the plant screen")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for key in ("Approve", "Edit", "Close", "Filter", "Pause", "Span"):
            assert key in text
        await pilot.press("escape")
        assert isinstance(app.screen, PlantScreen)
        await pilot.press("ctrl+p")
        await pilot.press(*"Factory screen")

        def found() -> bool:  # the palette adds its hits in batches (0.25 s), then highlights
            hits = list(app.screen.query(CommandList))
            i = hits[0].highlighted if hits else None
            return i is not None and "Factory" in str(hits[0].get_option_at_index(i).prompt)

        await until(pilot, found, "the palette's hit")
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, FactoryScreen), "the palette to switch screens"
        )
        await pilot.press("escape", "q")
        await until(pilot, lambda: not app.is_running, "q to quit")


async def test_scenario_control(stack: Stack) -> None:
    app = app_for(stack)
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot, app)
        await pilot.press("l")
        await until(
            pilot, lambda: app.screen.__class__.__name__ == "PickerScreen", "the scenario picker"
        )
        await pilot.press(*"chronic_wear"[:0], "home")
        names = [o.id for o in app.screen.query_one("OptionList").options]  # type: ignore[attr-defined]
        await pilot.press(*["down"] * names.index("chronic_wear"), "enter")
        await until(
            pilot,
            lambda: app.scenario_status is not None and app.scenario_status.name == "chronic_wear",
            "the load",
        )
        await pilot.press("plus", "plus")  # not running yet: remembered for the start
        await pilot.press("s")
        await until(pilot, lambda: app.scenario_status and app.scenario_status.running, "start")
        assert app.scenario_status is not None and app.scenario_status.speed == 5
        await until(
            pilot, lambda: app.feed.asset_view("pump01").values, "telemetry from the simulator"
        )
        await until(
            pilot,
            lambda: "Flow" in screen_text(app) and "m³/h" in screen_text(app),
            "the signal panel",
        )
        await pilot.press("x")
        await until(
            pilot,
            lambda: app.scenario_status is not None and not app.scenario_status.running,
            "the stop",
        )


async def test_trend_span_cycling_and_fleet_drill_in_on_live_telemetry(stack: Stack) -> None:
    """The simulator's telemetry through the broker: the trend view of a signal, ``w`` through
    every span (the chart and its title follow), then the fleet view and enter back into the
    asset."""
    app = app_for(stack)
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot, app)
        api = app.api
        await api.scenario_load("chronic_wear")
        await api.scenario_start(600)
        try:
            await until(pilot, lambda: app.feed.asset_view("pump01").values, "telemetry")
            screen = app.screen
            assert isinstance(screen, PlantScreen)
            await until(pilot, lambda: screen.asset == "pump01", "the plant screen on pump01")
            screen.query_one(SignalPanel).focus()
            await pilot.press("down", "down", "down", "enter")  # Bearing T
            await until(pilot, lambda: isinstance(app.screen, TrendScreen), "the trend view")
            trend = app.screen
            assert isinstance(trend, TrendScreen) and trend.signal == "bearing_temp"
            for label in ("1 h", "8 h", "run", "10 min"):
                await pilot.press("w")
                wanted = f"· {label} (w)"
                await until(pilot, lambda w=wanted: w in screen_text(app), f"span {label}")
                assert SPANS[app.span].label == label
            text = screen_text(app)
            assert "Bearing T" in text and "min–max per" in text and "alarms" in text
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, PlantScreen), "back to plant")
            await pilot.press("3")
            await until(pilot, lambda: isinstance(app.screen, FleetScreen), "the fleet")
            table = app.screen.query_one(RowTable)
            await until(pilot, lambda: table.select_key("pump01"), "pump01 in the fleet")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, PlantScreen), "the drill-in")
            assert app.screen.asset == "pump01" and app.screen.asset_pinned  # type: ignore[attr-defined]
        finally:
            await api.scenario_stop()
