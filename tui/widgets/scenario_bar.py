"""Asset selector plus the running scenario: name, state, speed, simulated time, and (when the
truth overlay is on) the fault the simulator is injecting right now."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Select

from engine.http_schemas import ScenarioStatus
from engine.schemas import Truth
from tui import format as fmt
from tui.forecast import Hint
from tui.safe import clean
from tui.widgets.text_line import TextLine


@dataclass(frozen=True)
class ScenarioLine:
    """What the scenario line is drawn from. ``overlay``: the truth overlay is on (``truth`` is
    what the simulator injects now); ``pending_speed``: a speed chosen before the run starts."""

    status: ScenarioStatus | None
    sim_time: float | None
    truth: Truth | None
    overlay: bool
    pending_speed: float | None = None
    hint: Hint | None = None


def scenario_text(line: ScenarioLine, width: int = 0) -> Text:
    """The scenario line, as complete as ``width`` allows (0: no limit).

    ``hint``: what is about to happen (the forecast's "bearing wear developing; first alarm
    expected in ~15 s"); it is kept when the line is short, the run's details give way.

    Run time: while the run plays, the asset's own telemetry time (smooth at 10 Hz); otherwise
    the simulator's (a just-loaded scenario is at 00:00:00, not where the last run ended).
    Less important parts give way first on a narrow line: the names of a fleet's scenarios
    (``demo --assets N`` runs one per pump) after the first, then the duration, then the words
    beside the state and speed symbols; the truth overlay's fault is kept."""
    several = line.status is not None and len(line.status.scenarios) > 1
    names = (False, True) if several else (False,)  # the whole list, then the first "+N more"
    for level in range(6 if line.hint else 3):
        for short in names if level == 0 else names[-1:]:
            out = _scenario_text(line, level, short)
            if not width or out.cell_len <= width:
                return out
    return out


def _run_name(status: ScenarioStatus, short: bool) -> str:
    if short and len(status.scenarios) > 1:
        return f"{status.scenarios[0]} +{len(status.scenarios) - 1} more"
    return status.name or "none"


def _scenario_text(line: ScenarioLine, level: int, short: bool = False) -> Text:
    status, sim_time, truth, hint = line.status, line.sim_time, line.truth, line.hint
    out = Text(end="", no_wrap=True, overflow="ellipsis")
    if status is None:
        out.append("scenario —", style="dim")
    elif level >= 3 and hint:  # a short line: what is about to happen, the name if it fits
        if level != 4:
            out.append(clean(_run_name(status, short), single_line=True), style="bold")
            out.append(" · ")
        out.append(hint.short if level == 5 else hint.long, style="bold yellow")
        return out
    else:
        out.append(clean(_run_name(status, short), single_line=True), style="bold")
        running = status.running
        if running:
            state, style = "▶ running", "green"
        elif status.done:
            state, style = "■ finished", "cyan"
        elif not status.loaded:
            state, style = "■ not loaded", "yellow"
        else:
            state, style = "■ stopped", "yellow"
        out.append("  " + (state if level < 2 else state[0]), style=style)
        if line.pending_speed is not None and not running:
            out.append(f"  ×{line.pending_speed:g}", style="bold")
            out.append(" at start" if level < 2 else "", style="dim")
        else:
            out.append(f"  ×{status.speed:g}")
        if not running or sim_time is None:
            sim_time = status.sim_time
        out.append(f"  {fmt.sim_clock(sim_time)}")
        if status.duration is not None and level < 1:
            out.append(f"/{fmt.sim_clock(status.duration)}", style="dim")
        if hint:
            out.append(f"  {hint.long}", style="bold yellow")
    if line.overlay:
        out.append("  │ truth " if level < 2 else " │ ", style="dim")
        if truth is None:
            out.append("—", style="magenta")
        else:
            out.append(f"{truth.fault} {truth.severity:.2f}", style="bold magenta")
    return out


class ScenarioBar(Horizontal):
    DEFAULT_CSS = """
    ScenarioBar { height: 1; }
    ScenarioBar > Select { width: 18; }
    ScenarioBar > #scenario-info { width: 1fr; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._assets: list[str] = []
        self._line: ScenarioLine | None = None

    def compose(self) -> ComposeResult:
        yield Select[str]([], prompt="asset", compact=True, allow_blank=True, id="asset-select")
        yield TextLine(id="scenario-info")

    def set_assets(self, assets: list[str], selected: str | None) -> None:
        select = self.query_one("#asset-select", Select)
        options = [(Text(clean(a, single_line=True)), a) for a in assets]
        if self._assets != assets:
            self._assets = list(assets)
            with select.prevent(Select.Changed):
                select.set_options(options)
                if selected in assets:
                    select.value = selected
        elif selected in assets and select.value != selected:
            with select.prevent(Select.Changed):
                select.value = selected

    def show(self, line: ScenarioLine) -> None:
        self._line = line
        info = self.query_one("#scenario-info", TextLine)
        info.set(scenario_text(line, info.content_region.width))

    def on_resize(self) -> None:
        """Fit the line again: the first one may be drawn before the layout gave it a width."""
        self.call_after_refresh(self._refit)

    def _refit(self) -> None:
        if self._line is not None:  # the latest line, not the one shown when the size changed
            self.show(self._line)
