"""Snapshots of both screens at 80x24 and 120x40 with deterministic data.

The data comes from a seeded generator (tui_sample), ages from a fixed clock, and the status bar
from an injected health state, so a snapshot changes only when the screen does. Update after a
deliberate change with ``pytest tests/tui --snapshot-update`` and look at the report.
"""

from __future__ import annotations

import pytest
from tui_sample import fixed_clock, sample_feed

from tui.app import ControlRoomApp
from tui.status import HealthState, ServiceState

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
    app.scenario_status = {"name": "chronic_wear", "running": True, "speed": 240, "duration": 28800}
    return app


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_plant_screen(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(plant_app(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_plant_screen_truth_overlay_and_filter(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    app = plant_app()

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("t", "slash", *"pump01", "enter")
        await pilot.pause(0.2)
        app.clear_notifications()  # toasts expire on a timer: not part of a stable picture
        await pilot.pause(0.2)

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
            update={"at": "2025-11-19 06:30:00", "latency_ms": 1 if e.latency_ms else None}
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
