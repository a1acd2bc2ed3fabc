"""The TUI takes its working memory at start (tui/memory.py): Rich's width cache full from the
first screen, and glibc's thresholds pinned so large buffers do not leave the heaps growing."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import pytest
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


_PROBE = """
import ctypes, json, sys
sys.path.insert(0, {root!r})
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split())]
libc.mallinfo2.restype = Info
if {fix}:
    from tui.memory import fix_malloc_thresholds
    assert fix_malloc_thresholds()
libc.free(libc.malloc(1 << 20))  # a mapped block freed: glibc's dynamic threshold would rise
before = libc.mallinfo2().hblkhd
block = libc.malloc(200 * 1024)
print(json.dumps(libc.mallinfo2().hblkhd - before >= 200 * 1024))
"""


def _mapped(fix: bool) -> bool:
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(root=root, fix=fix)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return bool(json.loads(out.stdout))


def test_pinned_thresholds_keep_large_blocks_out_of_the_heap() -> None:
    """After a 1 MiB mapped block is freed, glibc serves the next 200 KiB from its heap (the
    threshold moved); with the thresholds pinned it still maps it (and unmaps it on free)."""
    try:
        ctypes.CDLL(None).mallinfo2  # noqa: B018  (present on glibc >= 2.33 only)
    except AttributeError:
        pytest.skip("not glibc")
    assert _mapped(fix=False) is False
    assert _mapped(fix=True) is True
