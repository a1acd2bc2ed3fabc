"""The TUI takes its working memory at start (tui/memory.py): Rich's width cache full from the
first screen. (glibc's pinned mmap threshold, which the TUI shares with the services, is tested
in tests/live/test_heap.py.)"""

from __future__ import annotations

from rich.cells import cached_cell_len, cell_len

from tui.app import ControlRoomApp
from tui.memory import fill_width_cache
from tui.settings import UiSettings


def test_the_width_cache_is_full_and_still_measures() -> None:
    fill_width_cache()
    info = cached_cell_len.cache_info()
    assert info.maxsize and info.currsize == info.maxsize
    assert fill_width_cache() == 0  # nothing more to add: it stays at its bound
    assert cell_len("héllo 世界") == 10  # a placeholder never stands in for a real string
    assert cached_cell_len.cache_info().currsize == info.maxsize


async def test_the_app_starts_with_the_width_cache_full() -> None:
    cached_cell_len.cache_clear()
    app = ControlRoomApp(UiSettings(connect=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.pause()
        info = cached_cell_len.cache_info()
        assert info.currsize == info.maxsize
