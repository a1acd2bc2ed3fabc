"""The one-line bar at the top of every screen: where am I, is everything up, how busy is it.

Rendered to fit the width it has: at 80 columns services are initials (``S M D T R``, each green
or red); on a wide terminal they get their short names, the broker address and the telemetry
rate. Colour is never the only signal: a service that is down is also shown as ``✗``. Telemetry
the TUI itself dropped because it fell behind the bus follows the rate (``⚠N``; spelled out
when wide).
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui import format as fmt
from tui.safe import clean
from tui.status import SERVICE_SHORT, HealthState, ServiceState


def _service_mark(state: ServiceState | None) -> tuple[str, str]:
    """The mark after a service's name: ● ok, ✗ down, ↻ being restarted by the supervisor,
    ↻N restarted N times (then ● or ✗ for now), ✗✗ given up (crash loop)."""
    if state is None or state.ok is None:
        return "?", "dim"
    if state.supervisor == "crash-loop":
        return "✗✗", "bold red"
    if state.supervisor == "restarting":
        return f"↻{state.restarts}" if state.restarts else "↻", "bold yellow"
    mark, style = ("●", "green") if state.ok else ("✗", "bold red")
    if state.restarts:
        return f"{mark}↻{state.restarts}", "yellow" if state.ok else style
    return mark, style


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        dock: top;
        background: $panel;
    }
    """

    health: reactive[HealthState] = reactive(HealthState, layout=False)
    screen_title: reactive[str] = reactive("")
    sim_time: reactive[float | None] = reactive(None)

    def render(self) -> Text:
        h = self.health
        wide = self.size.width >= 110
        huge = self.size.width >= 150
        sep = Text(" │ ", style="dim")
        out = Text(end="")
        out.append(" CONTROL ROOM ", style="bold reverse")
        if self.screen_title:
            out.append(" ")
            out.append(self.screen_title, style="bold")
        out.append_text(sep)

        if h.bus_connected is None:
            out.append("MQTT ?", style="dim")
        elif h.bus_connected:
            out.append("MQTT ")
            out.append("●", style="green")
        else:
            out.append("MQTT ")
            out.append("✗ down", style="bold red")
        if huge and h.broker:
            out.append(f" {clean(h.broker, single_line=True)}", style="dim")
        out.append_text(sep)

        if not h.services:
            out.append("services —", style="dim")
        for i, (name, short) in enumerate(SERVICE_SHORT.items()):
            if not h.services:
                break
            mark, style = _service_mark(h.services.get(name))
            if i:
                out.append(" ")
            if wide:
                out.append(f"{short}{mark}", style=style)
            else:  # initials; a problem still shows as a mark, not only as a colour
                out.append(short[0].upper() + mark.removeprefix("●"), style=style)
        if h.gave_up:
            out.append(" stack stopped: crash loop", style="bold red")
        out.append_text(sep)

        n = h.behind_dropped  # this screen fell behind the bus: not every value was shown
        narrow_and_behind = n and not wide
        out.append(
            fmt.rate(h.rate) if narrow_and_behind else fmt.rate(h.rate).replace("/s", " msg/s")
        )
        if huge:
            out.append(f" (telemetry {fmt.rate(h.telemetry_rate)})", style="dim")
        if n:
            short = f"{n / 1000:.0f}k" if n >= 10_000 else str(n)
            out.append(f" behind: {n} dropped" if wide else f" ⚠{short}", style="bold yellow")
        out.append_text(sep)
        out.append("T ")
        out.append(fmt.sim_clock(self.sim_time), style="bold")
        out.append_text(sep)
        dlq = h.dead_letters
        out.append(f"DLQ {dlq}", style="bold yellow" if dlq else "")
        if wide and h.operator:
            out.append_text(sep)
            out.append(clean(h.operator, single_line=True), style="cyan")
        out.truncate(max(self.size.width, 1), overflow="ellipsis")
        return out
