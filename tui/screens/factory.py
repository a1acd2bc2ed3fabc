"""The factory day: planner text in, steps live, then the briefing, a Gantt per scenario and the
jobs at risk.

The pipeline runs in a worker *thread* (its agents may wait on the Claude API for seconds), so
the screen stays responsive; each completed step comes back as a ``FactoryStepLogged`` message
and the final state as ``FactoryFinished``. A run id on every message lets a late message from
an earlier run be ignored.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Markdown, Static, TabbedContent, TabPane

from tui.messages import FactoryFailed, FactoryFinished, FactoryStepLogged
from tui.safe import clean, set_border_title
from tui.screens.picker import PickerScreen
from tui.widgets.jobs_at_risk import JobsAtRisk
from tui.widgets.status_bar import StatusBar
from tui.widgets.step_log import StepLog

EXAMPLE_TEXT = (
    "We have a rush order for J2 today. J3 is also important. "
    "I can accept some delay on J1 if needed. What should I expect?"
)
"""The planner text of the spec's end-to-end example (section 13)."""

LLM_MODES = ("auto", "off", "on")
BRIEFING_PLACEHOLDER = (
    "*Type the day's priorities above and press **enter** to run the factory day.*"
)


def effective_llm(mode: str) -> str:
    if mode == "off":
        return "offline"
    if mode == "on":
        return "claude"
    return "claude" if os.environ.get("ANTHROPIC_API_KEY") else "offline"


class FactoryScreen(Screen[None]):
    BINDINGS = [  # noqa: RUF012
        Binding("ctrl+r", "run", "Run", id="factory.run"),
        Binding("f", "choose_factory", "Factory", id="factory.file"),
        Binding("m", "cycle_llm", "LLM", id="factory.llm"),
        Binding("p", "focus_planner", "Plan", id="factory.plan"),
        Binding("escape", "leave_input", "Leave box", id="factory.leave"),
    ]

    def __init__(self) -> None:
        super().__init__()
        settings = self.app.settings  # type: ignore[attr-defined]
        self.llm_mode = settings.llm
        self.factory_path: str | None = settings.factory
        self.running = False
        self.run_id = 0
        self.state: Any = None
        self.rendered_run = -1
        """The run whose results are on screen (tests wait on it)."""

    def compose(self) -> ComposeResult:
        yield StatusBar()
        with Horizontal(id="factory-controls"):
            yield Label("Plan ", classes="form-label")
            yield Input(EXAMPLE_TEXT, id="planner", compact=True, max_length=10_000)
        yield Static("", id="factory-info")
        with Vertical(id="factory-body"):
            yield StepLog(id="steps", classes="pane")
            with TabbedContent(id="results"):
                with TabPane("Briefing", id="tab-briefing"):
                    yield Markdown(BRIEFING_PLACEHOLDER, id="briefing", open_links=False)
                with TabPane("Jobs at risk", id="tab-risk"):
                    yield JobsAtRisk(id="risk")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        set_border_title(self.query_one("#steps"), "Steps")
        self.query_one(StatusBar).screen_title = "2 Factory"
        self._show_info()
        self._refresh_status()
        self.set_interval(1.0, self._refresh_status)
        self.query_one("#planner", Input).focus()

    def _refresh_status(self) -> None:
        if self.is_current:
            bar = self.query_one(StatusBar)
            bar.health = self.app.health  # type: ignore[attr-defined]
            bar.sim_time = self.app.feed.latest_ts()  # type: ignore[attr-defined]

    def _show_info(self, extra: str = "") -> None:
        factory = Path(self.factory_path).name if self.factory_path else "toy world (default)"
        text = Text.assemble(
            ("factory ", "dim"),
            (clean(factory, single_line=True), "bold"),
            ("  llm ", "dim"),
            (f"{self.llm_mode} → {effective_llm(self.llm_mode)}", "bold"),
        )
        if self.running:
            text.append("  running…", style="yellow")
        if extra:
            text.append("  " + clean(extra, single_line=True), style="dim")
        self.query_one("#factory-info", Static).update(text)

    # ---------------------------------------------------------------- actions

    @on(Input.Submitted, "#planner")
    def _planner_submitted(self) -> None:
        self.action_run()

    def action_focus_planner(self) -> None:
        self.query_one("#planner", Input).focus()

    def action_leave_input(self) -> None:
        self.query_one("#steps", StepLog).focus()

    def action_cycle_llm(self) -> None:
        self.llm_mode = LLM_MODES[(LLM_MODES.index(self.llm_mode) + 1) % len(LLM_MODES)]
        self._show_info()

    def action_choose_factory(self) -> None:
        from engine.factory import list_factories, load_factory

        entries = []
        for name in list_factories():
            try:
                description = load_factory(name).description.splitlines()[0]
            except Exception as exc:  # listed with its problem rather than hidden
                description = f"invalid: {exc}"
            entries.append((name, description))
        if not entries:
            self.notify("No factory configs in scenarios/factory/.", severity="warning")
            return

        def done(name: str | None) -> None:
            if name:
                self.factory_path = name
                self._show_info()

        current = self.factory_path
        self.app.push_screen(PickerScreen("Factory config", entries, current), done)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run" and self.running:
            return None
        return True

    def action_run(self) -> None:
        if self.running:
            self.notify("The pipeline is already running.", timeout=2)
            return
        text = self.query_one("#planner", Input).value
        self.run_id += 1
        self.running = True
        self.query_one("#steps", StepLog).clear_steps()
        self._show_info()
        self.refresh_bindings()
        date = datetime.fromtimestamp(self.app.clock(), UTC).date().isoformat()  # type: ignore[attr-defined]
        self.run_pipeline(text, self.factory_path, self.llm_mode, date, self.run_id)

    @work(thread=True, exclusive=True, group="factory")
    def run_pipeline(self, text: str, factory: str | None, llm: str, date: str, run: int) -> None:
        from engine.factory import run_pipeline

        try:
            state = run_pipeline(
                text,
                factory=factory,
                date=date,
                llm=llm,
                on_log=lambda line: self.post_message(FactoryStepLogged(line, run)),
            )
        except Exception as exc:  # shown to the operator; the screen stays usable
            self.post_message(FactoryFailed(f"{type(exc).__name__}: {exc}", run))
            return
        self.post_message(FactoryFinished(state, run))

    # ---------------------------------------------------------------- results

    def on_factory_step_logged(self, message: FactoryStepLogged) -> None:
        if message.run == self.run_id:
            self.query_one("#steps", StepLog).add_line(message.line)

    def on_factory_failed(self, message: FactoryFailed) -> None:
        if message.run != self.run_id:
            return
        self.running = False
        self._show_info()
        self.refresh_bindings()
        self.notify(
            clean(message.error, single_line=True),
            title="Factory day",
            severity="error",
            markup=False,
            timeout=10,
        )

    async def on_factory_finished(self, message: FactoryFinished) -> None:
        if message.run != self.run_id:
            return
        self.running = False
        await self.show_state(message.state)
        self.refresh_bindings()
        self.rendered_run = message.run

    async def show_state(self, state: Any) -> None:
        """Render a FactoryState: briefing, one Gantt tab per scenario, jobs at risk."""
        from engine.factory import render_gantt

        self.state = state
        errors = list(getattr(state, "pipeline_errors", ()) or ())
        self._show_info(f"{len(errors)} pipeline error(s)" if errors else f"done · {state.llm}")
        await self.query_one("#briefing", Markdown).update(
            clean(state.briefing_markdown or "*No briefing.*")
        )
        tabs = self.query_one("#results", TabbedContent)
        for pane in list(tabs.query(".gantt-pane")):
            await tabs.remove_pane(pane.id or "")
        width = max(self.query_one("#results").size.width - 4, 60)
        for i, spec in enumerate(state.scenarios):
            result = state.sim_results.get(spec.label)
            if result is None:
                continue
            chart = render_gantt(result, state.factory, width=width)
            pane = TabPane(
                clean(spec.label, single_line=True),
                ScrollableContainer(Static(Text(clean(chart)), classes="gantt")),
                id=f"tab-gantt-{i}",
                classes="gantt-pane",
            )
            await tabs.add_pane(pane, before="tab-risk")
        self.query_one("#risk", JobsAtRisk).show(state)
