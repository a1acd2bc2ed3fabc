"""The factory pipeline's steps as they complete: step, latency, status, what it produced.

Each row is one ``engine.factory.StepEvent``, shown from its typed fields (the same event the
log line is rendered from): nothing is parsed back out of text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from tui.safe import safe_text
from tui.widgets.keyed_table import KeyedTable

if TYPE_CHECKING:
    from engine.factory.results import StepEvent

STATUS_STYLE = {
    "ok": "green",
    "valid": "green",
    "fallback": "yellow",
    "invalid": "bold yellow",
    "error": "bold red",
    "halted": "bold red",
}


def status_of(event: StepEvent) -> str:
    """What the status column says: the event's status, a fallback made visible, and the
    error count on the closing line."""
    if event.kind == "pipeline":
        if event.status == "halted":
            return "halted"
        return f"{event.errors} errors" if event.errors else "ok"
    if event.fallback and event.status == "valid":
        return "fallback"
    return event.status


class StepLog(KeyedTable):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._events: list[StepEvent] = []
        self._width = -1

    def on_resize(self) -> None:
        """The summary takes the rest of the row: cropped, never scrolled sideways. The log
        follows its last step at any height: it shrinks when the results arrive (at 80×24
        they take its room), and a shrink alone does not scroll a table to its cursor."""
        width = self.content_region.width
        if width == self._width:
            self._follow()
            return
        self._width = width
        self.reset()
        self.clear(columns=True)
        step = 26 if width >= 100 else 22  # "Simulation [M2 slowdown]" whole when there is room
        self.add_column("step", key="step", width=step)
        self.add_column("ms", key="ms", width=5)
        self.add_column("status", key="status", width=10)
        used = step + 5 + 10 + 2 * 4
        self.add_column("summary", key="summary", width=max(width - used - 1, 10))
        self._show()

    @property
    def events(self) -> list[StepEvent]:
        return list(self._events)

    def clear_steps(self) -> None:
        self._events = []
        self.sync([])

    def add_event(self, event: StepEvent) -> None:
        self._events.append(event)
        self._show()

    def _show(self) -> None:
        if not self.ordered_columns:
            return
        rows = []
        for i, e in enumerate(self._events):
            ms = "" if e.latency_ms is None else str(e.latency_ms)
            status = status_of(e)
            mark = "✓ " if status in ("ok", "valid") else "! "
            rows.append(
                (
                    f"step{i}",
                    [
                        safe_text(e.name, "bold" if e.kind == "pipeline" else ""),
                        Text(ms, justify="right"),
                        Text(mark + status, style=STATUS_STYLE.get(status, "yellow")),
                        safe_text(e.output, "dim"),  # an agent's input is the row above
                    ],
                )
            )
        self.sync(rows)
        self._follow()

    def _follow(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)
