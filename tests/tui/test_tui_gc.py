"""The TUI takes its start-up heap out of the cyclic collector once drawn (full collections
of it were the event loop's longest stalls under load: bench/tui_load.py) and gives it back
when it ends, so another app in the same process starts clean."""

from __future__ import annotations

import gc

from tui.app import GC_YOUNG_THRESHOLD, ControlRoomApp
from tui.settings import UiSettings


async def test_start_up_heap_is_frozen_while_the_app_runs() -> None:
    assert gc.get_freeze_count() == 0
    app = ControlRoomApp(UiSettings(connect=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.pause()
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0
