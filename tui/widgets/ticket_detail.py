"""The selected ticket in full: what, why, evidence (the body the ticket agent wrote), history.

All of it is untrusted text (a ticket can be edited by anyone with the review API, or mirrored
from GitHub), so it is assembled from ``clean``-ed strings: markup and escape sequences in a title
or body show as the characters they are. The body is the Markdown the ticket agent writes (and
GitHub shows), so it is rendered as Markdown, with links spelled out rather than made clickable.
Wall times are UTC, written with a ``Z``, because colleagues on an SSH session may sit in other
time zones.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.schemas import Ticket
from tui import format as fmt
from tui.safe import clean, set_border_title


def render_ticket(t: Ticket) -> Group:
    """Header facts, the Markdown body, then the history."""
    parts: list[RenderableType] = [_header(t)]
    body = clean(t.body).strip()
    if body:
        parts += [Text(), Markdown(body, hyperlinks=False)]
    if t.history:
        parts.append(_history(t))
    return Group(*parts)


def _header(t: Ticket) -> Text:
    out = Text(end="")
    out.append(clean(t.ticket_id, single_line=True), style="bold")
    out.append("  ")
    out.append(t.state.upper(), style=fmt.STATE_STYLE.get(t.state, ""))
    out.append("  ")
    out.append(
        fmt.SEVERITY_SHORT.get(t.severity, t.severity), style=fmt.SEVERITY_STYLE.get(t.severity, "")
    )
    out.append("  ")
    out.append(clean(t.asset, single_line=True))
    out.append("\n")
    out.append(clean(t.title, single_line=True), style="bold")
    out.append("\n")
    out.append(
        f"cause {t.root_cause} {fmt.percent(t.confidence)} · {t.category} · ×{t.occurrences}",
        style="dim",
    )
    out.append(
        f" · sim {fmt.sim_clock(t.first_seen_ts)}–{fmt.sim_clock(t.last_seen_ts)}\n", style="dim"
    )
    if t.signals:
        out.append("signals ", style="dim")
        out.append(", ".join(clean(s, single_line=True) for s in t.signals) + "\n")
    if t.labels:
        out.append("labels ", style="dim")
        out.append(", ".join(clean(x, single_line=True) for x in t.labels) + "\n")
    if t.external is not None:
        ext = t.external
        out.append(f"{clean(ext.system, single_line=True)} ", style="dim")
        if ext.url or ext.id:
            out.append(clean(ext.url or ext.id or "", single_line=True))
        if ext.error:
            out.append(f" sync error: {clean(ext.error, single_line=True)}", style="red")
        out.append("\n")
    if t.state == "closed":
        out.append("closed: ", style="dim")
        out.append(
            fmt.CLOSE_REASON_LABEL.get(t.close_reason or "", t.close_reason or "?"), style="bold"
        )
        if t.close_note:
            out.append(f" — {clean(t.close_note, single_line=True)}")
        out.append("\n")
    return out


def _history(t: Ticket) -> Text:
    out = Text(end="")
    out.append("\nHistory\n", style="bold underline")
    for entry in t.history:
        out.append(fmt.wall_time(entry.at) + " ", style="dim")
        out.append(clean(entry.who, single_line=True) + " ", style="cyan")
        out.append(clean(entry.action, single_line=True), style="bold")
        if entry.detail:
            out.append(" " + clean(entry.detail, single_line=True))
        out.append("\n")
    out.rstrip()
    return out


class TicketDetail(VerticalScroll, can_focus=True):
    ALLOW_MAXIMIZE = True  # z: read a long ticket full-screen

    def compose(self) -> ComposeResult:
        yield Static(Text("No ticket selected.", style="dim"), id="ticket-text")

    def show(self, ticket: Ticket | None) -> None:
        body: RenderableType = (
            render_ticket(ticket)
            if ticket is not None
            else Text("No ticket selected.", style="dim")
        )
        self.query_one("#ticket-text", Static).update(body)
        set_border_title(self, f"Ticket {ticket.ticket_id}" if ticket else "Ticket")
