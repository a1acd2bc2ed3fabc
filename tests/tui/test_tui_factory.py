"""The factory key path at 80x24: type the day's plan, Enter runs the real offline pipeline in a
worker, each step shows as it completes, then the briefing, a Gantt tab per scenario and the jobs
at risk; a second run replaces the results; a bad factory file is a notification, not a crash."""

from __future__ import annotations

import time
from typing import Any

import pytest
from textual.message import Message
from textual.widgets import Markdown, TabbedContent
from tui_sample import fixed_clock, sample_feed
from tui_screen import record_notifications, screen_text

from tui.app import ControlRoomApp
from tui.messages import FactoryFailed, FactoryFinished, FactoryStepLogged
from tui.screens.factory import FactoryScreen
from tui.widgets.jobs_at_risk import JobsAtRisk

PLAN = "Rush order for J3 today; J1 may slip."


async def until(pilot: Any, condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def briefing_text(screen: FactoryScreen) -> str:
    return screen.query_one("#briefing", Markdown).source


def gantt_tabs(screen: FactoryScreen) -> list[str]:
    tabs = screen.query_one("#results", TabbedContent)
    return [str(pane.id) for pane in tabs.query(".gantt-pane")]


async def test_factory_run_from_the_keyboard() -> None:
    app = ControlRoomApp(feed=sample_feed(), clock=fixed_clock)
    shown = record_notifications(app)
    seen: list[Message] = []

    def hook(message: Message) -> None:
        # The hook sees a message at each node that handles it: keep each one once.
        kinds = FactoryStepLogged | FactoryFinished | FactoryFailed
        if isinstance(message, kinds) and not any(m is message for m in seen):
            seen.append(message)

    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, FactoryScreen)
        planner = screen.query_one("#planner")
        assert planner.has_focus  # the plan box takes the keys straight away
        assert "T --:--:--" not in screen_text(app)  # the plant's simulated time stays in view
        planner.clear()  # type: ignore[attr-defined]
        await pilot.press(*PLAN, "enter")
        await until(pilot, lambda: screen.rendered_run == 1, "the first run's results")

        # Every step arrived (as its own message) before the results, in pipeline order.
        steps = [m.line for m in seen if isinstance(m, FactoryStepLogged)]
        assert isinstance(seen[-1], FactoryFinished)
        names = [s.split(" | ")[1] for s in steps[:-1]]
        assert names[0] == "Intent Agent" and names[1] == "Futures Agent"
        assert names[-1] == "Briefing Agent" and steps[-1].startswith("Pipeline completed")
        assert "rush=J3" in steps[0] and "slip=J1" in steps[0]  # the typed plan, not the example

        briefing = briefing_text(screen)
        assert "J3" in briefing and "*Type the day" not in briefing
        assert len(gantt_tabs(screen)) == 3  # Baseline, Rush J3, M2 slowdown
        assert screen.query_one("#risk", JobsAtRisk).row_count > 0
        text = screen_text(app)
        assert "Briefing Agent" in text and "Rush J3" in text  # the log follows the last step

        # ctrl+r runs again: the results are replaced (not appended) and, offline, identical.
        first = briefing
        await pilot.press("escape", "ctrl+r")
        await until(pilot, lambda: screen.rendered_run == 2, "the second run's results")
        assert briefing_text(screen) == first
        assert len(gantt_tabs(screen)) == 3

        # A factory file that does not exist: the error names it, and the screen stays usable.
        screen.factory_path = "no_such_factory.yaml"
        await pilot.press("ctrl+r")
        await until(pilot, lambda: not screen.running, "the failed run to end")
        await until(
            pilot,
            lambda: any("no_such_factory" in m for m in shown),
            "a notification naming the factory file",
        )
        assert isinstance(seen[-1], FactoryFailed)
        assert briefing_text(screen) == first  # the last good results stay on screen
        assert app.is_running
