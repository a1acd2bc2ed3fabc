"""The one-line bar at the top of every screen: where am I, is everything up, how busy is it.

Rendered to fit the width it has: at 80 columns services are initials (``S M D T R``, each green
or red); on a wide terminal they get their short names, the broker address and the telemetry
rate. Colour is never the only signal: a service that is down is also shown as ``✗``.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui import format as fmt
from tui.safe import clean
from tui.status import SERVICE_SHORT, HealthState, ServiceState


def _service_mark(state: ServiceState | None) -> tuple[str, str]:
    if state is None or state.ok is None:
        return "?", "dim"
    return ("●", "green") if state.ok else ("✗", "bold red")


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
                out.append(short[0].upper() + ("" if mark == "●" else mark), style=style)
        out.append_text(sep)

        out.append(fmt.rate(h.rate).replace("/s", " msg/s"))
        if huge:
            out.append(f" (telemetry {fmt.rate(h.telemetry_rate)})", style="dim")
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
