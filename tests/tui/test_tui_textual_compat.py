"""Fails loudly when a Textual upgrade breaks one of the internals tui/textual_compat.py uses."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

from tui.textual_compat import (
    DATATABLE_RENDER_CACHES,
    layout_requests,
    problems,
    render_cache_entries,
    screen_text,
)
from tui.widgets.keyed_table import _RENDER_CACHES, KeyedTable, Row


def test_textual_internals_still_hold() -> None:
    assert problems() == [], "update tui/textual_compat.py for this Textual:\n" + "\n".join(
        problems()
    )


def test_keyed_table_gets_its_small_caches() -> None:
    table = KeyedTable()
    assert set(_RENDER_CACHES) <= set(DATATABLE_RENDER_CACHES)
    for name, size in _RENDER_CACHES.items():
        assert getattr(table, name).maxsize == size, name


class _Feed(App[None]):
    CSS = "KeyedTable { height: 1fr; }"

    def compose(self) -> ComposeResult:
        yield Static("above")
        yield KeyedTable()


def _rows(first: int, count: int) -> list[Row]:
    return [(f"k{i}", [Text(f"alarm {i}")]) for i in range(first + count - 1, first - 1, -1)]


async def _measured(pilot: Pilot[None], table: KeyedTable, rows: int) -> None:
    """Until the table has measured ``rows`` rows (plus its header) on an idle pass and the
    layouts that follow (its scrollbar appearing) are done: three quiet passes in a row."""
    quiet, seen = 0, layout_requests(table)
    while quiet < 3:
        await pilot.pause()
        now = layout_requests(table)
        quiet = quiet + 1 if now == seen and table.virtual_size.height == rows + 1 else 0
        seen = now


async def test_a_full_feed_scrolls_on_without_reflowing_the_screen() -> None:
    """A full list drops its oldest row for each new one: DataTable.remove_row asks for a layout
    of the whole screen every time (~40 ms at 120x40, the TUI's worst stall under load). The
    table's size comes from its container, so KeyedTable repaints instead; a change in the row
    count still lays out (the scrollable size changed)."""
    app = _Feed()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(KeyedTable)
        table.add_column("what", key="what")
        table.sync(_rows(0, 30), follow_top=True)
        await _measured(pilot, table, 30)  # its size known (that layout is the one expected)
        before = layout_requests(table)
        for k in range(1, 6):
            assert table.sync(_rows(k, 30), follow_top=True)
            await pilot.pause()
        assert layout_requests(table) == before
        assert table.row_count == 30
        assert table.get_row("k34") == [Text("alarm 34")]
        assert "k0" not in table.rows
        assert table.cursor_row == 0 and table.selected_key == "k34"

        table.sync(_rows(5, 31), follow_top=True)  # one more row: the virtual size grows
        await _measured(pilot, table, 31)
        assert layout_requests(table) > before


async def test_a_table_updated_every_second_keeps_one_screenful_of_renders() -> None:
    """Every DataTable render-cache key holds the table's update count, so each update leaves
    the last screenful dead in the caches until they fill to their limits (megabytes, minutes
    after start). KeyedTable drops them on update: after many updates the caches hold what
    one paint of the current rows needs, as after the first."""
    app = _Feed()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(KeyedTable)
        table.add_column("what", key="what")
        table.sync(_rows(0, 30), follow_top=True)
        await _measured(pilot, table, 30)
        assert "alarm 29" in screen_text(app)
        first = render_cache_entries(table)
        assert first > 0
        for k in range(1, 21):
            assert table.sync(_rows(k, 30), follow_top=True)
            await pilot.pause()
            assert f"alarm {k + 29}" in screen_text(app)
        assert render_cache_entries(table) <= first
