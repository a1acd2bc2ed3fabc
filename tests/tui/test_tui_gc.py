"""The TUI takes its start-up heap out of the cyclic collector once drawn (full collections
of it were the event loop's longest stalls under load: bench/tui_load.py) and gives it back
when it ends, so another app in the same process starts clean."""

from __future__ import annotations

import gc
import time
import weakref

from tui.app import GC_FULL_S, GC_YOUNG_THRESHOLD, ControlRoomApp
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


async def test_a_cycle_that_reached_the_old_generation_is_collected_within_seconds() -> None:
    """Reference cycles that outlive the young collection wait in the old generation, which
    CPython collects only once it has grown by a quarter: the TUI collects it every
    ``GC_FULL_S`` (the plant screen's cycles were +2.4 MiB in a minute otherwise)."""

    class Node:
        other: Node | None = None

    app = ControlRoomApp(UiSettings(connect=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        gc.collect(1)  # alive now: both survive into the old generation
        assert gc.is_tracked(a) and gone() is a
        del a, b
        deadline = time.monotonic() + 4 * GC_FULL_S
        while gone() is not None and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert gone() is None, "the cycle is still there"
