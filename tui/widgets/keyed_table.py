"""A DataTable that is kept in sync by row key, with vi keys.

Clearing and refilling a table on every update loses the operator's cursor and scroll position
and repaints every cell. ``sync`` instead diffs the wanted rows against what is shown: removes
rows that went away, adds new ones, rewrites only the cells whose text changed, and restores the
row order, keeping the cursor on the same *row key* (the same ticket or alert) rather than the
same index. Cells must be ``rich.text.Text`` (built with ``tui.safe.safe_text`` for anything
untrusted): a plain ``str`` would be parsed as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region
from textual.widgets import DataTable

from tui.textual_compat import bound_datatable_caches, drop_render_caches, update_generation

Row = tuple[str, Sequence[Text]]
CELL_CACHE = 1000
LINE_CACHE = 200
_RENDER_CACHES = {
    "_cell_render_cache": CELL_CACHE,
    "_row_render_cache": LINE_CACHE,
    "_row_renderable_cache": LINE_CACHE,
    "_line_cache": LINE_CACHE,
}


def _signature(cell: Text) -> tuple[object, ...]:
    return (cell.plain, str(cell.style), tuple(cell.spans))


class KeyedTable(DataTable[Text]):
    _syncing = False
    """Inside ``sync`` (``refresh`` is called from DataTable's own constructor, hence here)."""

    BINDINGS = [  # noqa: RUF012 (Textual reads it as a class attribute)
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("g", "scroll_top", "Top", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="table.bottom"),
    ]

    def __init__(
        self, *, id: str | None = None, classes: str | None = None, cell_padding: int = 1
    ) -> None:
        super().__init__(
            id=id,
            classes=classes,
            cursor_type="row",
            zebra_stripes=False,
            show_row_labels=False,
            cell_padding=cell_padding,
        )
        # A screenful is a few hundred cells: smaller render caches plateau sooner and lower
        # (why, and the check on upgrades: tui/textual_compat.py).
        bound_datatable_caches(self, _RENDER_CACHES)
        self._shown: dict[str, tuple[tuple[object, ...], ...]] = {}
        self._given: dict[str, Sequence[Text]] = {}
        """The cells object last synced per key: a caller that reuses it for an unchanged row
        (the alert feed does) spares re-comparing hundreds of rows every tick."""
        self._first_cells: dict[str, Text] = {}
        self._order: list[str] = []
        self._restore_key: str | None = None

    @property
    def selected_key(self) -> str | None:
        """Key of the row under the cursor, or None when the table is empty."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # the cursor can briefly point past a just-removed last row
            return None

    def sync(self, rows: Sequence[Row], *, follow_top: bool = False) -> bool:
        """Make the table show exactly ``rows``, in that order. Returns True if anything changed.

        ``follow_top``: when the cursor sits on the first row, keep it on the first row (a
        newest-first feed keeps showing the newest entry); otherwise it stays on its key.
        """
        self._syncing = True
        generation = update_generation(self)
        try:
            return self._sync(rows, follow_top=follow_top)
        finally:
            self._syncing = False
            if update_generation(self) != generation:
                # Every cached render holds the old generation in its key: dead from now on.
                drop_render_caches(self)

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        """A repaint where ``DataTable.remove_row`` asks for a layout of the whole screen.

        A full feed drops its oldest row for every new one: each such removal reflowed and
        repainted every widget on the screen (~40 ms at 120x40, the event loop's worst stall
        at 1 alarm/s). The table's own size comes from its container, never its rows; when
        the row count does change, the new virtual size asks for the layout itself (a reactive
        with ``layout=True``) once the table has measured it."""
        if self._syncing and layout and not self.styles.is_auto_height:
            layout = False
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _sync(self, rows: Sequence[Row], *, follow_top: bool) -> bool:
        keep = self.selected_key or self._restore_key
        self._restore_key = None
        at_top = self.cursor_row == 0
        wanted = {key for key, _ in rows}
        changed = False
        for key in [k for k in self._shown if k not in wanted]:
            self.remove_row(key)
            del self._shown[key]
            del self._given[key]
            del self._first_cells[key]
            changed = True
        column_keys = [c.key for c in self.ordered_columns]
        for key, cells in rows:
            if self._given.get(key) is cells:
                continue
            self._given[key] = cells
            sig = tuple(_signature(c) for c in cells)
            old = self._shown.get(key)
            if old == sig:
                continue
            if old is None:
                self.add_row(*cells, key=key)
                self._first_cells[key] = cells[0]
            else:
                for col, cell, before, after in zip(column_keys, cells, old, sig, strict=False):
                    if before != after:
                        self.update_cell(key, col, cell)
                if old[0] != sig[0]:
                    self._first_cells[key] = cells[0]  # the object the table now holds
            self._shown[key] = sig
            changed = True
        order = [key for key, _ in rows]
        if order != self._order:
            rank = {id(self._first_cells[k]): i for i, k in enumerate(order)}
            first_col = column_keys[0]
            self.sort(first_col, key=lambda cell: rank[id(cell)])
            self._order = order
            changed = True
        if changed and self.row_count:
            if follow_top and at_top:
                target = 0
            elif keep is not None and keep in wanted:
                target = self.get_row_index(keep)
            else:
                target = min(self.cursor_row, self.row_count - 1)
            if target != self.cursor_row:
                self.move_cursor(row=target)
        return changed

    def reset(self) -> None:
        """Forget every row (e.g. before changing the columns); the next ``sync`` puts the
        cursor back on the row it was on."""
        self._restore_key = self.selected_key
        self.clear()
        self._shown.clear()
        self._given.clear()
        self._first_cells.clear()
        self._order = []
