"""The factory day: planner text in, steps live, then the briefing, a Gantt per scenario (and
one for the recommended plan) and the jobs at risk.

The pipeline runs in a worker *thread* (its agents may wait on the Claude API for seconds), so
the screen stays responsive; each completed step comes back as a ``FactoryStepLogged`` message
carrying its typed ``StepEvent``, and the final state as ``FactoryFinished``. A run id on every
message lets a late message from an earlier run be ignored. Open plant work orders are read
from the review API (when it is up) in the same worker, so a ticket on a machine's asset
becomes a scenario of the day.

Keys: the result panes scroll with the arrows, PageUp/PageDown and Home/End when focused
(PageUp/PageDown scroll the shown pane from anywhere but the plan box); ``[`` / ``]`` switch
tabs; the footer shows only the keys that do something now, and a key that cannot act says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Markdown, Static, TabbedContent, TabPane

from engine.factory.llm import has_api_key
from tui.messages import FactoryFailed, FactoryFinished, FactoryStepLogged
from tui.safe import clean, set_border_title
from tui.screens.picker import PickerScreen
from tui.widgets.jobs_at_risk import JobsAtRisk
from tui.widgets.status_bar import StatusBar
from tui.widgets.step_log import StepLog

if TYPE_CHECKING:
    from tui.app import ControlRoomApp

EXAMPLE_TEXT = (
    "We have a rush order for J2 today. J3 is also important. "
    "I can accept some delay on J1 if needed. What should I expect?"
)
"""The planner text of the spec's end-to-end example (section 13)."""

LLM_MODES = ("auto", "off", "on")
BRIEFING_PLACEHOLDER = (
    "*Type the day's priorities above and press **enter** to run the factory day.*"
)
NO_RESULTS = "Run the factory day first (enter in the plan box, or ctrl+r)."
RUNNING = "The pipeline is already running."
RESULT_KEYS = ("left_square_bracket", "right_square_bracket", "pageup", "pagedown")


def effective_llm(mode: str, environ: Mapping[str, str]) -> str:
    if mode == "off":
        return "offline"
    if mode == "on":
        return "claude"
    return "claude" if has_api_key(environ) else "offline"


class FactoryScreen(Screen[None]):
    BINDINGS = [  # noqa: RUF012
        Binding("ctrl+r", "run", "Run", id="factory.run"),
        Binding("f", "choose_factory", "Factory", id="factory.file"),
        Binding("m", "cycle_llm", "LLM", id="factory.llm"),
        Binding("p", "focus_planner", "Plan", id="factory.plan"),
        Binding("left_square_bracket", "tab(-1)", "Prev tab", id="factory.prev_tab"),
        Binding("right_square_bracket", "tab(1)", "Next tab", id="factory.next_tab"),
        Binding("pageup", "page(-1)", "Scroll the results up a page", show=False, id="factory.up"),
        Binding(
            "pagedown",
            "page(1)",
            "Scroll the results down a page",
            show=False,  # at 80 columns the footer keeps ? Help and q Quit instead
            id="factory.page_down",
        ),
        Binding(
            "up,down,home,end",
            "focus_results",
            "In the results: scroll by line, to the top, to the end",
            show=False,
            id="factory.lines",
        ),
        Binding("escape", "leave_input", "Leave box", id="factory.leave"),
    ]

    def __init__(self) -> None:
        super().__init__()
        settings = self.control_room.settings
        self.llm_mode = settings.llm
        self.environ = settings.environ
        self.factory_path: str | None = settings.factory
        self.running = False
        self.run_id = 0
        self.state: Any = None
        self.rendered_run = -1
        """The run whose results are on screen (tests wait on it)."""
        self.results_shown = asyncio.Event()
        """Set each time a run's results are on screen (tests await it, never sleep)."""
        self.tickets_note = ""
        self.gantt_panes: list[str] = []

    @property
    def control_room(self) -> ControlRoomApp:
        """The app, typed (this screen only ever runs inside the Control Room app)."""
        return cast("ControlRoomApp", self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar()
        with Horizontal(id="factory-controls"):
            yield Label("Plan ", classes="form-label")
            yield Input(EXAMPLE_TEXT, id="planner", compact=True, max_length=10_000)
        yield Static("", id="factory-info")
        with Vertical(id="factory-body"):
            yield StepLog(id="steps", classes="pane")
            with TabbedContent(id="results"):
                with (
                    TabPane("Briefing", id="tab-briefing"),
                    VerticalScroll(id="briefing-scroll", classes="result-scroll"),
                ):
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
            bar.health = self.control_room.health
            bar.sim_time = self.control_room.feed.latest_ts()

    def _show_info(self, extra: str = "") -> None:
        factory = Path(self.factory_path).name if self.factory_path else "toy world (default)"
        text = Text.assemble(
            ("factory ", "dim"),
            (clean(factory, single_line=True), "bold"),
            ("  llm ", "dim"),
            (f"{self.llm_mode} → {effective_llm(self.llm_mode, self.environ)}", "bold"),
        )
        if self.running:
            text.append("  running…", style="yellow")
        if extra:
            text.append("  " + clean(extra, single_line=True), style="dim")
        self.query_one("#factory-info", Static).update(text)

    # ---------------------------------------------------------------- keys

    @on(Input.Submitted, "#planner")
    def _planner_submitted(self) -> None:
        self.action_run()

    def on_key(self, event: events.Key) -> None:
        """A result key pressed before there are results, or ctrl+r during a run: say why
        nothing happens (the binding is hidden or dimmed in the footer until it applies)."""
        if self.state is None and event.key in RESULT_KEYS and not self._planner_focused():
            self.notify(NO_RESULTS, timeout=3)
        elif event.key == "ctrl+r" and self.running:  # dimmed while a run is on
            self.notify(RUNNING, timeout=2)

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()  # the footer follows the focus (esc only in the plan box)

    def on_descendant_blur(self) -> None:
        self.refresh_bindings()

    def _planner_focused(self) -> bool:
        return self.focused is self.query_one("#planner", Input)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide what cannot act now; a key pressed anyway explains itself (see the actions)."""
        if action == "run" and self.running:
            return None  # shown dimmed: it will say the pipeline is running
        if action == "leave_input":
            return self._planner_focused()
        if action in ("tab", "page", "focus_results"):
            return self.state is not None  # hidden until there are results (see on_key)
        return True

    def action_focus_planner(self) -> None:
        self.query_one("#planner", Input).focus()

    def action_leave_input(self) -> None:
        self._focus_active_pane()

    def action_cycle_llm(self) -> None:
        self.llm_mode = LLM_MODES[(LLM_MODES.index(self.llm_mode) + 1) % len(LLM_MODES)]
        self._show_info()

    def action_tab(self, step: int) -> None:
        if self.state is None:
            self.notify(NO_RESULTS, timeout=3)
            return
        tabs = self.query_one("#results", TabbedContent)
        panes = ["tab-briefing", *self.gantt_panes, "tab-risk"]  # the tab bar's order
        now = panes.index(tabs.active) if tabs.active in panes else 0
        tabs.active = panes[(now + step) % len(panes)]
        self._focus_active_pane()

    def action_focus_results(self) -> None:
        """Arrow or Home/End outside the results: they take the keys from now on."""
        if self.state is None:
            self.notify(NO_RESULTS, timeout=3)
            return
        self._focus_active_pane()

    def action_page(self, step: int) -> None:
        if self.state is None:
            self.notify(NO_RESULTS, timeout=3)
            return
        pane = self._active_scroller()
        if pane is None:
            return
        if step > 0:
            pane.scroll_page_down(animate=False)
        else:
            pane.scroll_page_up(animate=False)

    def _active_scroller(self) -> Any:
        tabs = self.query_one("#results", TabbedContent)
        if tabs.active == "tab-risk":
            return self.query_one("#risk", JobsAtRisk)
        pane = tabs.get_pane(tabs.active) if tabs.active else None
        if pane is None:
            return None
        found = pane.query(".result-scroll")
        return found.first() if found else None

    def _focus_active_pane(self) -> None:
        target = self._active_scroller()
        (target or self.query_one("#steps", StepLog)).focus()

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

    def action_run(self) -> None:
        if self.running:
            self.notify(RUNNING, timeout=2)
            return
        text = self.query_one("#planner", Input).value
        self.run_id += 1
        self.running = True
        self.results_shown.clear()
        self.query_one("#steps", StepLog).clear_steps()
        self._show_info()
        self.refresh_bindings()
        date = datetime.fromtimestamp(self.control_room.clock(), UTC).date().isoformat()
        self.run_pipeline(text, self.factory_path, self.llm_mode, date, self.run_id)

    def _review_url(self) -> str | None:
        """The review API, when the status bar last saw it healthy (else no work orders)."""
        review = self.control_room.health.services.get("review")
        if review is None or not review.ok:
            return None
        return dict(self.control_room.settings.service_urls).get("review")

    @work(thread=True, exclusive=True, group="factory")
    def run_pipeline(self, text: str, factory: str | None, llm: str, date: str, run: int) -> None:
        from engine.factory import run_pipeline
        from engine.factory.llm import resolve_llm
        from engine.factory.plant_feed import TicketSourceError, fetch_tickets

        tickets: list[Any] = []
        url = self._review_url()
        self.tickets_note = ""
        if url is not None:
            try:
                tickets = fetch_tickets(url, timeout=3.0, environ=self.environ)
            except TicketSourceError as exc:
                self.tickets_note = f"work orders not read: {exc}"
        try:
            state = run_pipeline(
                text,
                factory=factory,
                date=date,
                llm=resolve_llm(llm, self.environ) or "off",
                on_event=lambda event: self._step_done(event, run),
                tickets=tickets,
            )
        except Exception as exc:  # shown to the operator; the screen stays usable
            self.post_message(FactoryFailed(f"{type(exc).__name__}: {exc}", run))
            return
        self.post_message(FactoryFinished(state, run))

    # ---------------------------------------------------------------- results

    def _step_done(self, event: Any, run: int) -> None:
        """Called from the worker thread: hand the event to the UI thread as a message."""
        self.post_message(FactoryStepLogged(event, run))

    def on_factory_step_logged(self, message: FactoryStepLogged) -> None:
        if message.run == self.run_id:
            self.query_one("#steps", StepLog).add_event(message.event)

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
        self.results_shown.set()

    async def on_factory_finished(self, message: FactoryFinished) -> None:
        if message.run != self.run_id:
            return
        self.running = False
        await self.show_state(message.state)
        self.refresh_bindings()
        self.rendered_run = message.run
        if self._planner_focused():
            self._focus_active_pane()  # the results take the keys: arrows scroll at once
        self.results_shown.set()

    async def show_state(self, state: Any) -> None:
        """Render a FactoryState: briefing, one Gantt tab per scenario (and for the plan when it
        beats the planned sequence), jobs at risk."""
        from engine.factory import render_gantt

        self.state = state
        self.add_class("-results")
        errors = list(getattr(state, "pipeline_errors", ()) or ())
        info = f"{len(errors)} pipeline error(s)" if errors else f"done · {state.llm}"
        if state.tickets:
            info += f" · {len(state.tickets)} work order(s)"
        if self.tickets_note:
            info += f" · {self.tickets_note}"
        self._show_info(info)
        await self.query_one("#briefing", Markdown).update(
            clean(state.briefing_markdown or "*No briefing.*")
        )
        tabs = self.query_one("#results", TabbedContent)
        for pane in list(tabs.query(".gantt-pane")):
            await tabs.remove_pane(pane.id or "")
        self.gantt_panes = []
        width = max(self.query_one("#results").size.width - 2, 60)  # its scrollbar
        charts = [
            (spec.label, state.sim_results[spec.label])
            for spec in state.scenarios
            if spec.label in state.sim_results
        ]
        plan = getattr(state, "plan", None)
        if plan is not None and plan.improves:
            charts.append((plan.label, plan.result))
        for i, (label, result) in enumerate(charts):
            chart = render_gantt(result, state.factory, width=width)
            pane = TabPane(
                clean(label, single_line=True),
                ScrollableContainer(
                    Static(Text(clean(chart)), classes="gantt"), classes="result-scroll"
                ),
                id=f"tab-gantt-{i}",
                classes="gantt-pane",
            )
            await tabs.add_pane(pane, before="tab-risk")
            self.gantt_panes.append(f"tab-gantt-{i}")
        self.query_one("#risk", JobsAtRisk).show(state)
