"""The work-order queue: open tickets first, then approved, then (if shown) closed; within a state
the most severe and then the newest first.

Ages are computed from an injected clock so that snapshot tests are reproducible and a paused
screen does not drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.text import Text

from engine.schemas import Ticket
from tui import format as fmt
from tui.safe import safe_text
from tui.widgets.keyed_table import KeyedTable


def order(tickets: Iterable[Ticket], *, show_closed: bool) -> list[Ticket]:
    shown = [t for t in tickets if show_closed or t.state != "closed"]
    shown.sort(key=lambda t: -t.created_at.timestamp())
    shown.sort(key=lambda t: (fmt.STATE_RANK.get(t.state, 9), fmt.SEVERITY_RANK.get(t.severity, 9)))
    return shown


class TicketTable(KeyedTable):
    def __init__(
        self, clock: Callable[[], float], *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.clock = clock
        self._wide: bool | None = None
        self._width = 0
        self._last: tuple[list[Ticket], bool, bool] | None = None

    def set_wide(self, wide: bool) -> None:
        width = self.content_region.width
        if (self._wide, self._width) == (wide, width):
            return
        self._wide, self._width = wide, width
        self.reset()
        self.clear(columns=True)
        self.add_column("state", key="state", width=6)
        self.add_column("sev", key="sev", width=4)
        self.add_column("asset", key="asset", width=8 if wide else 6)
        self.add_column("root cause", key="cause", width=12)
        if wide:
            self.add_column("conf", key="conf", width=4)
        self.add_column("age", key="age", width=4)
        self.add_column("occ", key="occ", width=4)
        if wide:  # the title takes the rest of the row (cropped, never scrolled sideways)
            used = 6 + 4 + 8 + 12 + 4 + 4 + 4 + 2 * 8
            self.add_column(
                "title", key="title", width=max(width - used - 1, 10) if width else None
            )

    def _cells(self, t: Ticket, now: float) -> list[Text]:
        closed = t.state == "closed"
        dim = "dim" if closed else ""
        state = "appr" if t.state == "approved" else t.state
        cells = [
            Text(state, style=fmt.STATE_STYLE.get(t.state, "")),
            Text(
                fmt.SEVERITY_SHORT.get(t.severity, t.severity),
                style="dim" if closed else fmt.SEVERITY_STYLE.get(t.severity, ""),
            ),
            safe_text(t.asset, dim),
            Text(t.root_cause, style=dim),
        ]
        if self._wide:
            cells.append(Text(fmt.percent(t.confidence), style=dim))
        cells += [
            Text(fmt.age(now - t.created_at.timestamp()), style=dim, justify="right"),
            Text(f"×{t.occurrences}", style=dim, justify="right"),
        ]
        if self._wide:
            cells.append(safe_text(t.title, dim))
        return cells

    def on_resize(self) -> None:
        if self._last is not None:
            self.show(*self._last)

    def show(self, tickets: Iterable[Ticket], show_closed: bool, wide: bool) -> None:
        tickets = list(tickets)
        self._last = (tickets, show_closed, wide)
        self.set_wide(wide)
        now = self.clock()
        rows = [(t.ticket_id, self._cells(t, now)) for t in order(tickets, show_closed=show_closed)]
        self.sync(rows)
