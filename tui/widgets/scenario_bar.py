"""Asset selector plus the running scenario: name, state, speed, simulated time, and (when the
truth overlay is on) the fault the simulator is injecting right now."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Select

from engine.schemas import Truth
from tui import format as fmt
from tui.safe import clean
from tui.widgets.text_line import TextLine


def scenario_text(
    status: dict[str, Any] | None, sim_time: float | None, truth: Truth | None, overlay: bool
) -> Text:
    out = Text(end="")
    if not status:
        out.append("scenario —", style="dim")
    else:
        name = clean(status.get("name") or status.get("scenario") or "none", single_line=True)
        out.append(name, style="bold")
        running = bool(status.get("running"))
        out.append(
            "  ▶ running" if running else "  ■ stopped", style="green" if running else "yellow"
        )
        speed = status.get("speed")
        if isinstance(speed, int | float):
            out.append(f"  ×{speed:g}")
        duration = status.get("duration") or status.get("duration_s")
        if sim_time is None and isinstance(status.get("sim_time"), int | float):
            sim_time = float(status["sim_time"])
        if sim_time is not None:
            out.append(f"  {fmt.sim_clock(sim_time)}")
            if isinstance(duration, int | float):
                out.append(f"/{fmt.sim_clock(float(duration))}", style="dim")
    if overlay:
        out.append("  │ truth ", style="dim")
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

    def show(
        self,
        status: dict[str, Any] | None,
        sim_time: float | None,
        truth: Truth | None,
        overlay: bool,
    ) -> None:
        self.query_one("#scenario-info", TextLine).set(
            scenario_text(status, sim_time, truth, overlay)
        )
