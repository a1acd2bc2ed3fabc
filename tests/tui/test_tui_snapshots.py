"""Snapshots of every screen at 80x24 and 120x40 with deterministic data.

The data comes from a seeded generator (tui_sample), ages from a fixed clock, and the status bar
from an injected health state, so a snapshot changes only when the screen does. Each picture is
taken once the app has processed what the test did (``settle`` waits on the app's own state and
message queues, never on a sleep). Update after a deliberate change with
``pytest tests/tui --snapshot-update`` and look at the report.
"""

from __future__ import annotations

import pytest
from tui_sample import (
    fixed_clock,
    fleet_feed,
    sample_alarm_book,
    sample_feed,
    sample_kpis,
    scenario_status,
)
from tui_screen import settle

from engine.http_schemas import AssetStatus
from tui.app import ControlRoomApp
from tui.screens.alarms import AlarmsScreen
from tui.screens.fleet import FleetScreen
from tui.screens.trend import TrendScreen
from tui.status import HealthState, ServiceState
from tui.widgets.alert_feed import AlertFeed

SIZES = [(80, 24), (120, 40)]


def healthy() -> HealthState:
    services = {n: ServiceState(ok=True) for n in ("simulator", "monitor", "diagnosis", "ticket")}
    services["review"] = ServiceState(ok=False, detail="connection refused")
    return HealthState(
        bus_connected=True,
        broker="mqtt://127.0.0.1:1883",
        services=services,
        own_dead_letters=2,
        rate=104.0,
        telemetry_rate=100.0,
    )


def plant_app() -> ControlRoomApp:
    app = ControlRoomApp(feed=sample_feed(), clock=fixed_clock)
    app.health = healthy()
    app.alarms = sample_alarm_book()
    app.scenario_status = scenario_status()
    return app


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_plant_screen(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(plant_app(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_plant_screen_truth_overlay_and_filter(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    app = plant_app()

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("t", "slash", *"pump01", "enter")
        feed = app.screen.query_one(AlertFeed)
        await settle(pilot, lambda: feed.query_text == "pump01" and feed.table.has_focus, "filter")
        app.clear_notifications()  # toasts expire on a timer: not part of a stable picture
        await settle(pilot, lambda: not app.screen.query("Toast"), "toasts cleared")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("span", [1, 3], ids=["1h", "run"])
def test_trend_view(snap_compare, size: tuple[int, int], span: int) -> None:  # type: ignore[no-untyped-def]
    """pump01's vibration: a knock a quarter in, a rise over the second half, the ISO limits,
    a cleared medium episode at the knock and an active high one on the rise."""
    app = plant_app()

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app.span = span
        await app.push_screen(TrendScreen("pump01", "vibration"))
        await settle(pilot, lambda: isinstance(app.screen, TrendScreen), "the trend screen")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_alarm_list(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """The alarms screen: every state (re-annunciated, unacknowledged, returned to normal,
    shelved, out of service), the selected alarm's trail and the KPI panel (at 80x24 the panel
    shares the space: ``i`` shows it)."""
    app = plant_app()

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("4")
        await settle(pilot, lambda: isinstance(app.screen, AlarmsScreen), "the alarms screen")
        screen = app.screen
        assert isinstance(screen, AlarmsScreen)
        screen.show_kpi_panel(sample_kpis())
        if size[0] < 110:
            await pilot.press("i")
            await settle(pilot, lambda: screen.show_kpis, "the KPI panel")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def fleet_app() -> ControlRoomApp:
    feed, _ = fleet_feed()
    app = ControlRoomApp(feed=feed, clock=fixed_clock)
    app.health = healthy()
    app.alarms.set_assets(
        [AssetStatus(asset="pump05", out_of_service=True, reason="bearing replacement")]
    )
    return app


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("query", ["", "alarm"], ids=["all", "filtered"])
def test_fleet_view(snap_compare, size: tuple[int, int], query: str) -> None:  # type: ignore[no-untyped-def]
    app = fleet_app()

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("3")
        await settle(pilot, lambda: isinstance(app.screen, FleetScreen), "the fleet screen")
        if query:
            await pilot.press("slash", *query, "enter")
            screen = app.screen
            await settle(pilot, lambda: screen.query_text == query, "the filter")  # type: ignore[attr-defined]

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def factory_app(tab: str | None) -> tuple[ControlRoomApp, object]:
    """The app on its factory screen, fed a real offline pipeline run of the spec's example
    text (its typed step events, then its final state) through the messages a run posts. Only
    the wall-clock parts of the events (time stamp, milliseconds) are fixed for the picture."""
    from engine.factory import run_pipeline
    from tui.messages import FactoryFinished, FactoryStepLogged
    from tui.screens.factory import EXAMPLE_TEXT

    events: list = []
    state = run_pipeline(EXAMPLE_TEXT, None, "2025-11-19", llm="off", on_event=events.append)
    steady = [
        e.model_copy(
            update={"at": "2025-11-19 06:30:00", "latency_ms": None if e.latency_ms is None else 1}
        )
        for e in events
    ]
    app = plant_app()

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("2")
        screen = app.screen
        await pilot.press("escape")  # out of the planner box: no blinking cursor in the shot
        for event in steady:
            screen.post_message(FactoryStepLogged(event, 0))
        screen.post_message(FactoryFinished(state, 0))
        await screen.results_shown.wait()  # type: ignore[attr-defined]
        if tab:
            screen.query_one("#results").active = tab  # type: ignore[attr-defined]
        await pilot.wait_for_scheduled_animations()  # the tab underline slides: wait it out
        await pilot.pause()  # then the queue (no delay: it waits for pending messages)

    return app, run_before


@pytest.mark.parametrize(
    "size,tab",
    [((80, 24), None), ((120, 40), None), ((120, 40), "tab-gantt-1"), ((80, 24), "tab-risk")],
    ids=["80x24-briefing", "120x40-briefing", "120x40-gantt", "80x24-risk"],
)
def test_factory_screen(snap_compare, size: tuple[int, int], tab: str | None) -> None:  # type: ignore[no-untyped-def]
    app, run_before = factory_app(tab)
    assert snap_compare(app, terminal_size=size, run_before=run_before)
