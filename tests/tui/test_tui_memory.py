"""The TUI takes its working memory at start (tui/memory.py): Rich's width cache full from the
first screen, the bus client's dedup window full, the feed's buffers fixed once an asset is
known (tracemalloc: nothing more after thousands of samples), every pool of pymalloc's arenas
resident from the touch at start (so first use later adds no page). (glibc's pinned mmap threshold,
which the TUI shares with the services, is tested in tests/live/test_heap.py.)"""

from __future__ import annotations

import gc
import hashlib
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
from rich.cells import cached_cell_len, cell_len
from tui_sample import alert, telemetry

from engine.bus.client import DEDUP_WINDOW, BusClient
from tui.app import ControlRoomApp
from tui.feed import PlantFeed
from tui.memory import fill_width_cache, pymalloc_state
from tui.settings import UiSettings


def test_the_width_cache_is_full_and_still_measures() -> None:
    fill_width_cache()
    info = cached_cell_len.cache_info()
    assert info.maxsize and info.currsize == info.maxsize
    assert fill_width_cache() == 0  # nothing more to add: it stays at its bound
    assert cell_len("héllo 世界") == 10  # a placeholder never stands in for a real string
    assert cached_cell_len.cache_info().currsize == info.maxsize


def test_real_strings_replacing_the_placeholders_never_take_more_memory() -> None:
    """The width cache's memory is taken at start: three times its bound of real strings (cells
    and whole 120-column lines, some with two-byte characters as the screens draw them) pass
    through it, and what it holds afterwards is no more than the placeholders took."""
    cached_cell_len.cache_clear()
    tracemalloc.start()
    try:
        fill_width_cache(120)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(3 * 4096):
            cell_len(f"{i % 97:>5.1f} °C" if i % 3 else f"│ pump{i:04d} ⚠ vib {i}".ljust(119, "─"))
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after <= before, f"{after - before} bytes more"


async def test_the_app_starts_with_the_width_cache_full() -> None:
    cached_cell_len.cache_clear()
    app = ControlRoomApp(UiSettings(connect=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.pause()
        info = cached_cell_len.cache_info()
        assert info.currsize == info.maxsize


def _held_by_tui() -> int:
    """Bytes traced as allocated by the TUI's own code: the process's other threads (an xdist
    worker's leftovers) allocate meanwhile and are not the feed's."""
    only = [tracemalloc.Filter(True, "*/tui/*", all_frames=True)]
    snap = tracemalloc.take_snapshot().filter_traces(only)
    return sum(stat.size for stat in snap.statistics("filename"))


def test_the_feed_holds_the_same_memory_however_many_samples_follow() -> None:
    """Fixed buffers: once each asset has sent its first sample and the alert list is at its
    bound, eight more hours of samples (every span's ring wraps, the run span re-buckets) and
    hundreds more alarm episodes leave the feed's whole Python heap where it was — every
    object tracemalloc sees, not only the arrays ``memory_per_asset`` counts."""
    feed = PlantFeed(max_alerts=50)
    first = {f"pump{i}": telemetry(f"pump{i}", 1, seed=i)[0] for i in range(5)}

    def tick(n: int) -> None:
        """Every asset's sample at n x 10 s; an episode raised, and the one of 5 ticks ago
        cleared (revisions of a kept row, as the monitor publishes them)."""
        for sample in first.values():
            feed.ingest(sample.model_copy(update={"ts": 10.0 * n, "seq": n}))
        asset = f"pump{n % 5}"
        feed.ingest(alert(f"e{n}", asset, 10.0 * n + 10, "high", ["vibration"]))
        if n >= 5:
            feed.ingest(alert(f"e{n - 5}", asset, 10.0 * n + 10, "high", ["vibration"], "cleared"))

    tracemalloc.start(25)  # whole stacks: what the feed's code had a library allocate counts
    try:
        for n in range(100):  # every asset seen, the alert list full (50)
            tick(n)
        gc.collect()
        before = _held_by_tui()
        for n in range(100, 3_000):  # 8 simulated hours more
            tick(n)
        gc.collect()
        after = _held_by_tui()
    finally:
        tracemalloc.stop()
    assert len(feed.alerts()) == 50 and len(feed.live_assets()) == 5
    assert after - before < 4 * 1024, f"{after - before} bytes more"


def test_the_tuis_dedup_window_takes_its_memory_at_start(tmp_path: Path) -> None:
    """The bus client the TUI makes (``dedup_full``) starts with its dedup window full: three
    windows' worth of real digests later it holds what it held before the first (without it,
    ~0.7 MiB arrives over the hour the window takes to fill at one alarm a second)."""
    tracemalloc.start()  # before the placeholders: their freeing counts too
    try:
        bus = BusClient("mqtt://127.0.0.1:1", "tui-dedup", "tui", persistent=False, var=tmp_path,
                        dedup_full=True)  # fmt: skip
        assert len(bus._seen) == DEDUP_WINDOW
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(3 * DEDUP_WINDOW):
            bus._remember(hashlib.blake2b(b"alerts/p1\0%d" % i, digest_size=16).digest())
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(bus._seen) == DEDUP_WINDOW
    assert after - before < 4 * 1024, f"{after - before} bytes more"


POOLS_PROBE = textwrap.dedent(
    """
    import sys
    from tui.memory import PageToucher, pymalloc_state

    def rss_anon_kib():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1])

    kept = []
    first = pymalloc_state().arenas_total
    while pymalloc_state().arenas_total == first:  # up to a new arena: its pools all unused
        kept.extend(bytes(479) for _ in range(31))  # one 16 KiB pool of 512-byte blocks
    pages = PageToucher()
    touched = pages.touch() if sys.argv[1] == "touch" else 0
    pools = pymalloc_state().unused_pools - 4
    before = rss_anon_kib()
    kept.extend(bytes(479) for _ in range(31 * pools))  # what the churn reaches minutes later
    print(touched, pools, rss_anon_kib() - before)
    """
)


def _pools(mode: str) -> tuple[int, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", POOLS_PROBE, mode], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    touched, pools, grown = out.stdout.split()
    return int(touched), int(pools), int(grown)


@pytest.mark.skipif(pymalloc_state() is None, reason="CPython's pymalloc and glibc only")
def test_pymalloc_pools_not_used_yet_are_resident_from_the_touch() -> None:
    """A pool pymalloc has not carved yet is not resident: the first objects put in it, minutes
    later under churn, raise RssAnon by its 16 KiB although nothing more is kept overall. After
    ``PageToucher.touch`` every pool of the arenas mapped is resident, and filling them adds
    (almost) nothing."""
    _, pools, grown = _pools("plain")
    assert pools > 20 and grown >= 16 * pools * 3 // 4  # a new arena: ~60 pools not touched
    touched, pools, grown = _pools("touch")
    assert touched >= 20 * 16 * 1024 and grown < 16 * 4, f"{grown} KiB for {pools} pools"


@pytest.mark.skipif(pymalloc_state() is None, reason="CPython's pymalloc and glibc only")
async def test_the_app_touches_pymalloc_arenas_at_start_and_after_a_new_one() -> None:
    """Touched at the start-up freeze, then after any collection that finds an arena mapped
    since (the periodic ``collect_cycles``)."""
    from tui.app import collect_cycles
    from tui.memory import PAGES

    PAGES.arenas_total = -1
    app = ControlRoomApp(UiSettings(connect=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.pause()
        assert PAGES.arenas_total > 0  # touched at the start-up freeze
        # Until pymalloc maps an arena: in a worker that ran other tests first, the free pools
        # of their arenas took a fixed 8 MiB without one.
        held: list[bytes] = []
        before = pymalloc_state()
        assert before is not None
        while (now := pymalloc_state()) and now.arenas_total == before.arenas_total:
            held += [bytes(400) for _ in range(200)]  # ~87 KB: the new arena mostly unused
            assert len(held) < 1_000_000, "no arena mapped for 400 MB"
        assert PAGES.touch() > 0  # what collect_cycles does after collecting
        assert PAGES.touch() == 0  # nothing mapped since
        more = [bytes(400) for _ in range(5_000)]
        collect_cycles()
        state = pymalloc_state()
        assert state is not None and PAGES.arenas_total == state.arenas_total
        del held, more
