"""The factory key path at 80x24: type the day's plan, Enter runs the real offline pipeline in a
worker, each step shows as it completes (a typed event), then the briefing, a Gantt tab per
scenario and the jobs at risk; the briefing scrolls by keyboard, tabs switch with [ and ], the
footer shows only the keys that apply, a key that cannot act says why; a second run replaces
the results; a bad factory file is a notification, not a crash."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Markdown, TabbedContent
from tui_sample import fixed_clock, sample_feed
from tui_screen import record_notifications, screen_text, settle

from engine.factory.results import StepEvent
from tui.app import ControlRoomApp
from tui.messages import FactoryFailed, FactoryFinished, FactoryStepLogged
from tui.screens.factory import NO_RESULTS, RUNNING, FactoryScreen
from tui.widgets.jobs_at_risk import JobsAtRisk
from tui.widgets.step_log import StepLog

PLAN = "Rush order for J3 today; J1 may slip."


async def results(screen: FactoryScreen) -> None:
    """Wait for the run's results on screen: the screen signals it (no sleeping)."""
    await screen.results_shown.wait()


def briefing_text(screen: FactoryScreen) -> str:
    return screen.query_one("#briefing", Markdown).source


def gantt_tabs(screen: FactoryScreen) -> list[str]:
    tabs = screen.query_one("#results", TabbedContent)
    return [str(pane.id) for pane in tabs.query(".gantt-pane")]


def footer_keys(app: ControlRoomApp) -> str:
    return screen_text(app).splitlines()[-1]


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
        await settle(pilot, lambda: "Leave box" in footer_keys(app), "the footer")
        assert "esc Leave box" in footer_keys(app) and "Next tab" not in footer_keys(app)
        planner.clear()  # type: ignore[attr-defined]
        await pilot.press(*PLAN, "enter")
        await results(screen)
        await pilot.pause()
        assert screen.rendered_run == 1

        # Every step arrived, typed, as its own message before the results, in pipeline order.
        events: list[StepEvent] = [m.event for m in seen if isinstance(m, FactoryStepLogged)]
        assert isinstance(seen[-1], FactoryFinished)
        assert [e.kind for e in events[:2]] == ["intent", "futures"]
        assert events[-2].name == "Briefing Agent" and events[-1].kind == "pipeline"
        assert "rush=J3" in events[0].output and "slip=J1" in events[0].output
        assert screen.query_one("#steps", StepLog).events == events  # shown as they came

        briefing = briefing_text(screen)
        assert "J3" in briefing and "*Type the day" not in briefing
        assert len(gantt_tabs(screen)) == 3  # Baseline, Rush J3, M2 slowdown
        assert screen.query_one("#risk", JobsAtRisk).row_count > 0
        # the log follows the last step (the shrunken log is laid out on a later refresh)
        await settle(pilot, lambda: "Briefing Agent" in screen_text(app), "the step log")
        assert "Rush J3" in screen_text(app)

        # The results took the focus: the briefing scrolls by keyboard.
        scroll = screen.query_one("#briefing-scroll", VerticalScroll)
        assert scroll.has_focus
        # The footer recomposes for the new focus and the briefing lays out in their own time.
        await settle(pilot, lambda: "Next tab" in footer_keys(app), "the footer's result keys")
        await settle(pilot, lambda: scroll.max_scroll_y > 0, "the briefing's layout")
        footer = footer_keys(app)
        assert "Next tab" in footer and "Leave box" not in footer
        await pilot.press("pagedown")
        assert scroll.scroll_y > 0
        await pilot.press("end")
        assert scroll.scroll_y == scroll.max_scroll_y
        await pilot.press("home")
        assert scroll.scroll_y == 0
        await pilot.press("down", "down")
        assert scroll.scroll_y == 2
        # ] and [ switch tabs (named in help); the Gantt pane scrolls too.
        tabs = screen.query_one("#results", TabbedContent)
        await pilot.press("right_square_bracket")
        assert tabs.active == "tab-gantt-0"
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert tabs.active == "tab-risk"
        await pilot.press("right_square_bracket")
        assert tabs.active == "tab-briefing"

        # At 80x24 the step log gave the results its room; focused, it is whole again.
        steps = screen.query_one("#steps", StepLog)
        assert steps.size.height <= 4 < scroll.size.height
        steps.focus()
        await settle(pilot, lambda: steps.size.height > 4, "the step log at full height")

        # ctrl+r runs again: the results are replaced (not appended) and, offline, identical.
        first = briefing
        await pilot.press("ctrl+r")
        await results(screen)
        await pilot.pause()
        assert screen.rendered_run == 2 and briefing_text(screen) == first
        assert len(gantt_tabs(screen)) == 3

        # A factory file that does not exist: the error names it, and the screen stays usable.
        screen.factory_path = "no_such_factory.yaml"
        await pilot.press("ctrl+r")
        await results(screen)
        await pilot.pause()
        assert not screen.running
        assert any("no_such_factory" in m for m in shown)
        assert isinstance(seen[-1], FactoryFailed)
        assert briefing_text(screen) == first  # the last good results stay on screen
        assert app.is_running


async def test_keys_that_cannot_act_yet_say_why() -> None:
    app = ControlRoomApp(feed=sample_feed(), clock=fixed_clock)
    shown = record_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, FactoryScreen)
        await pilot.press("escape")  # out of the plan box: esc's key leaves the footer
        footer = lambda: footer_keys(app)  # noqa: E731
        await settle(pilot, lambda: "Run" in footer() and "Leave box" not in footer(), "esc gone")
        await pilot.press("right_square_bracket", "pagedown")
        assert shown.count(NO_RESULTS) == 2
        await pilot.press("p")
        assert screen.query_one("#planner").has_focus
        await pilot.press("right_square_bracket")  # typed into the plan, not a tab switch
        assert shown.count(NO_RESULTS) == 2
        # ctrl+r while a run is on (dimmed in the footer): it says so instead of nothing
        screen.running = True
        screen.refresh_bindings()
        for focus in ("p", "escape"):  # in the plan box and out of it
            await pilot.press(focus, "ctrl+r")
        await settle(pilot, lambda: shown.count(RUNNING) == 2, "why ctrl+r does nothing")


async def test_jobs_at_risk_keeps_every_scenario_at_80_columns() -> None:
    app = ControlRoomApp(feed=sample_feed(), clock=fixed_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, FactoryScreen)
        await pilot.press("enter")
        await results(screen)
        # The results take the focus (the briefing); then [ goes to the last tab, as a user would.
        scroll = screen.query_one("#briefing-scroll", VerticalScroll)
        await settle(pilot, lambda: scroll.has_focus, "the briefing's focus")
        await pilot.press("left_square_bracket")
        table = screen.query_one("#risk", JobsAtRisk)
        tabs = screen.query_one("#results", TabbedContent)
        await settle(
            pilot,
            lambda: tabs.active == "tab-risk" and table.content_region.width > 0,
            lambda: f"the table's layout (tab {tabs.active}, table {table.region})",
        )
        assert [c.label.plain for c in table.ordered_columns] == [
            "job",
            "Baseline",
            "Rush J2",
            "M2 slowdown",
        ]
        region = table.content_region.width
        used = sum(c.get_render_width(table) for c in table.ordered_columns)
        assert used <= region, (used, region)  # the 4th column is not cut off
        text = screen_text(app)
        assert "M2 slowdown" in text and "4h late" in text


async def test_the_step_log_keeps_its_last_step_in_view_when_it_shrinks() -> None:
    """At 80×24 the results take the log's room after the last step arrived: the log must
    still show that step (a table does not scroll to its cursor on a shrink by itself)."""
    from textual.app import App, ComposeResult

    class Holder(App[None]):
        def compose(self) -> ComposeResult:
            yield StepLog(id="steps")

    app = Holder()
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(StepLog)
        log.styles.height = 20
        await pilot.pause()
        for i in range(12):
            log.add_event(StepEvent(kind="simulation", name=f"Step {i}", latency_ms=i))
        await pilot.pause()
        assert log.scroll_y == log.max_scroll_y
        log.styles.height = 4  # the results arrive and take the room
        await pilot.pause()
        await pilot.pause()
        assert log.max_scroll_y > 0
        assert log.scroll_y == log.max_scroll_y, (log.scroll_y, log.max_scroll_y)
