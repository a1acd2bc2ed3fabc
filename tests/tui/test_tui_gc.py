"""The TUI takes its start-up heap out of the cyclic collector once drawn (full collections
of it were the event loop's longest stalls under load: bench/tui_load.py) and gives it back
when it ends, so another app in the same process starts clean."""

from __future__ import annotations

import gc
import time
import weakref
from collections import Counter
from collections.abc import Callable

from rich.segment import Segment
from textual.cache import LRUCache
from textual.strip import Strip
from tui_sample import alert, telemetry

from tui.app import GC_FULL_S, GC_YOUNG_THRESHOLD, ControlRoomApp
from tui.feed import PlantFeed
from tui.settings import UiSettings
from tui.textual_compat import without_reference_cycles


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


def _left_in_cycles(make: Callable[[], object]) -> Counter[str]:
    """What ``make`` leaves for the cyclic collector: every object a collection finds
    unreachable after it ran (kept aside by ``gc.DEBUG_SAVEALL``), counted per type."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.garbage.clear()
        make()
        gc.collect()
        return Counter(type(o).__qualname__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_a_strip_divided_at_its_own_length_is_freed_without_the_collector() -> None:
    """The compositor divides every line it paints at its cuts; a line that fits its cut
    whole came back as ``[self]``, kept in the strip's own cache: a cycle per line painted
    (~2,000 a second at the plant screen). Fails without ``without_reference_cycles``."""
    assert without_reference_cycles()

    def paint() -> None:
        strip = Strip([Segment("pump01 "), Segment("41.7 °C")])
        assert strip.divide([strip.cell_length]) == [strip]
        assert strip.divide([3, strip.cell_length])[0].text == "pum"  # the rest as Textual's

    assert _left_in_cycles(paint)["Strip"] == 0


def test_a_cleared_lru_cache_frees_what_it_held_without_the_collector() -> None:
    """``DataTable`` clears its render caches on most updates (``KeyedTable`` after each sync):
    Textual's ``LRUCache`` dropped its ring of links whole, a cycle holding every render.
    Fails without ``without_reference_cycles``."""
    assert without_reference_cycles()

    class Render:
        pass

    cache: LRUCache[int, Render] = LRUCache(8)
    for key in range(12):  # full, and past it (evictions)
        cache.set(key, Render())
    last = Render()
    cache.set(12, last)
    held = weakref.ref(last)
    del last
    gc.disable()  # (a collection meanwhile would free the old ring and hide the cycle)
    try:
        cache.clear()
        assert held() is None, "the cleared cache's renders wait for the cyclic collector"
    finally:
        gc.enable()
    cache.set(1, Render())
    assert cache.get(1) is not None and len(cache) == 1


async def test_the_plant_screen_under_live_data_leaves_no_render_in_a_cycle() -> None:
    """The plant screen redrawn with new telemetry and alarms for dozens of frames: what it
    leaves for the cyclic collector holds no strip, segment or table row (it was ~5,000
    objects a second at 10 x 10 Hz: bench/tui_load.py). Fails without
    ``without_reference_cycles``."""
    feed = PlantFeed(max_alerts=50)
    history = {f"pump{i}": telemetry(f"pump{i}", 60, seed=i) for i in range(3)}
    app = ControlRoomApp(UiSettings(connect=False), feed=feed)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()

        async def frames() -> None:
            for n in range(60):
                for samples in history.values():
                    feed.ingest(samples[n])
                feed.ingest(alert(f"e{n}", f"pump{n % 3}", 3000.0 + n, "high", ["vibration"]))
                drawn = app.redraws
                while app.redraws == drawn:
                    await pilot.pause()

        left = Counter[str]()
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.garbage.clear()
            await frames()
            gc.collect()
            left.update(type(o).__qualname__ for o in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    # (Not FIFOCache: every widget has one, and a widget removed meanwhile, a toast that timed
    # out, say, is freed by the collector with it; a strip left in a cycle takes seven.)
    renders = {n: left[n] for n in ("Strip", "RowRenderables", "Segment") if left[n]}
    assert not renders, f"left for the collector: {renders} (all: {left.most_common(8)})"
