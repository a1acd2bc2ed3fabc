"""A read-only table that draws only the rows on screen: for lists of hundreds to thousands of
rows that change every second (the fleet).

``DataTable`` keeps a renderable per cell and re-measures on update, so a 1,000-row table whose
values all change each second costs tens of milliseconds per update. Here an update hands over
the items and two functions (key, cells); cells are built only for the rows in view, when a line
is painted. The cursor stays on the same *key* while rows re-sort under it, and the header row
stays put while the body scrolls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

T = TypeVar("T")


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    """0: takes the remaining width (one such column, the last)."""
    justify: str = "left"


class RowTable(ScrollView, Generic[T], can_focus=True):
    BINDINGS = [  # noqa: RUF012
        Binding("down,j", "move(1)", "Down", show=False, id="rows.down"),
        Binding("up,k", "move(-1)", "Up", show=False, id="rows.up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="rows.pgdn"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="rows.pgup"),
        Binding("g,home", "edge(0)", "Top", show=False, id="rows.top"),
        Binding("G,end", "edge(1)", "Bottom", show=False, id="rows.bottom"),
        Binding("enter", "select", "Open", id="rows.select"),
    ]
    COMPONENT_CLASSES = {"row-table--header", "row-table--cursor", "row-table--empty"}  # noqa: RUF012
    DEFAULT_CSS = """
    RowTable { height: 1fr; overflow-x: hidden; scrollbar-size-vertical: 1; }
    RowTable > .row-table--header { text-style: bold; color: $text-muted; }
    RowTable > .row-table--cursor { background: $panel-lighten-1; }
    RowTable:focus > .row-table--cursor { background: $accent 40%; text-style: bold; }
    RowTable > .row-table--empty { color: $text-muted; }
    """

    class Selected(Message):
        """``enter`` on a row."""

        def __init__(self, table: RowTable[Any], key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> RowTable[Any]:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        empty: str = "nothing to show",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.columns = list(columns)
        self.empty = empty
        self._items: Sequence[T] = ()
        self._keys: list[str] = []
        self._cells: Callable[[T], Sequence[Text]] = lambda _: ()
        self.cursor = 0
        self._cursor_key: str | None = None

    # ---------------------------------------------------------------- data

    def set_rows(
        self,
        items: Sequence[T],
        key: Callable[[T], str],
        cells: Callable[[T], Sequence[Text]],
    ) -> None:
        """Show ``items`` in this order; the cursor follows its key if the key is still there."""
        self._items = items
        self._keys = [key(item) for item in items]
        self._cells = cells
        if self._cursor_key is not None and self._cursor_key in self._keys:
            self.cursor = self._keys.index(self._cursor_key)
        self.cursor = max(0, min(self.cursor, len(self._keys) - 1))
        self._cursor_key = self._keys[self.cursor] if self._keys else None
        self.virtual_size = Size(self.size.width, len(self._keys) + 1)
        self._keep_cursor_visible()
        self.refresh()

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def selected_key(self) -> str | None:
        return self._cursor_key

    def select_key(self, key: str) -> bool:
        if key not in self._keys:
            return False
        self._set_cursor(self._keys.index(key))
        return True

    # ---------------------------------------------------------------- keys

    def _set_cursor(self, index: int) -> None:
        if not self._keys:
            return
        self.cursor = max(0, min(index, len(self._keys) - 1))
        self._cursor_key = self._keys[self.cursor]
        self._keep_cursor_visible()
        self.refresh()

    def _keep_cursor_visible(self) -> None:
        body = max(self.size.height - 1, 1)
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + body:
            self.scroll_to(y=self.cursor - body + 1, animate=False, immediate=True)

    def action_move(self, step: int) -> None:
        self._set_cursor(self.cursor + step)

    def action_page(self, step: int) -> None:
        self._set_cursor(self.cursor + step * max(self.size.height - 2, 1))

    def action_edge(self, end: int) -> None:
        self._set_cursor(len(self._keys) - 1 if end else 0)

    def action_select(self) -> None:
        if self._cursor_key is not None:
            self.post_message(self.Selected(self, self._cursor_key))

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self._keys) + 1)
        self._keep_cursor_visible()

    # ---------------------------------------------------------------- drawing

    def _widths(self, width: int) -> list[int]:
        fixed = sum(c.width for c in self.columns if c.width)
        return [c.width or max(width - fixed, 0) for c in self.columns]

    def _strip(self, cells: Sequence[Text], width: int, style: Style) -> Strip:
        segments: list[Segment] = []
        for column, cell, w in zip(self.columns, cells, self._widths(width), strict=False):
            if w <= 0:
                continue
            text = cell.copy()
            if column.justify == "right" and text.cell_len < w:
                text = Text(" " * (w - text.cell_len)) + text
            text.truncate(w, overflow="ellipsis", pad=True)
            segments.extend(text.render(self.app.console))
        strip = Strip(segments).apply_style(style)
        return strip.adjust_cell_length(width, style)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        base = self.rich_style
        if y == 0:
            header = [Text(c.title, justify="left") for c in self.columns]
            style = base + self.get_component_rich_style("row-table--header")
            return self._strip(header, width, style)
        index = round(self.scroll_y) + y - 1
        if not self._keys:
            if y == 1:
                style = base + self.get_component_rich_style("row-table--empty")
                return Strip([Segment(self.empty[:width], style)]).adjust_cell_length(width, base)
            return Strip.blank(width, base)
        if index >= len(self._keys):
            return Strip.blank(width, base)
        style = base
        if index == self.cursor:
            style = base + self.get_component_rich_style("row-table--cursor")
        return self._strip(self._cells(self._items[index]), width, style)
