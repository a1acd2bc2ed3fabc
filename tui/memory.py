"""The UI's memory reaches its working size at start, so growth later means something.

Everything the TUI keeps is bounded (``tui/feed.py``, ``tui/trend.py``), but these still
rise for minutes after start and look like a leak on a memory graph until they level off:

- **Rich's cell-width cache** (``rich.cells.cached_cell_len``, an ``lru_cache`` of 4,096
  strings): every distinct string Rich measures — clock readings, rates, values, alert cells,
  whole lines of the status bar — is kept until 4,096 others have come after it; under live
  data they turn over in ~10-20 minutes. ``fill_width_cache`` fills it at start with
  placeholders as large as the largest real entry: measured through ``cell_len`` as Rich
  measures (the cache keeps the same key), each a string as long as a line of the terminal
  in two-byte characters (as a line with a ``°`` or a ``⚠`` is), twice the bound of them so
  the cache's dict is already at the size turnover gives it. A real string replacing one never
  takes more: the cache's memory is taken once, up front (~1.5 MiB at 120 columns; real
  entries average 80-120 bytes, so once they have replaced every placeholder it holds ~0.8
  MiB of that free, never more). The earlier 16-character placeholders left it growing by
  0.1-0.3 MiB over its first 15 minutes, and its dict by 144 KiB once its keys turned over.
- **The bus client's dedup window** (``engine/bus/client.py``: digests of the last 4,096 QoS 1
  messages) fills at the alarm rate, an hour at one alarm a second, ~0.7 MiB in all: the
  TUI's client starts with it full (``dedup_full``).
- **Free memory the C allocator keeps.** Reads from the bus come in 256 KiB buffers (one
  ``recv`` per burst, ``engine/bus/paho_compat.py``). glibc serves a block that large with
  ``mmap`` until one is freed; then it raises its mmap threshold to that size and its trim
  threshold to twice it ("dynamic" thresholds), so from then on every read buffer is carved
  out of a thread's heap and shrunk to what arrived, and up to 512 KiB of free heap is kept
  per arena. The free space left between long-lived blocks kept rising: +3.2 MiB of free
  malloc memory in the first 5 minutes of ``bench/tui_load.py`` (a third of the process's
  growth). ``engine.heap.fix_mmap_threshold`` (the services' fix too) pins the threshold at
  glibc's default, which turns the adjustment off: a large buffer is mapped and unmapped
  whole, the heaps stay small.
- **Pages no object had used yet** (2026-12-01): with everything above bounded, RssAnon still
  crept 0.1-0.2 MiB over the first 5 minutes while the objects in use fell. ``/proc/PID/smaps``
  every 10 s named the mappings: pymalloc's arenas (pools carved for the first time under
  churn), and a little in the bus threads' own glibc heaps. The TUI touches every pool of
  pymalloc's arenas at start and whenever it maps another (``PageToucher``, ``PAGES``):
  **taken at start**, not removed (bounded by the arenas mapped, and reached by the churn
  within minutes anyway).
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from typing import Any

PLACEHOLDER_MARK = "\ue000"
"""First character of every placeholder (private use: no screen shows one)."""
PLACEHOLDER_CHARS = 80
"""Placeholder length when the terminal's width is not known (the narrowest usual one)."""


def fill_width_cache(width: int = PLACEHOLDER_CHARS) -> int:
    """Fill Rich's cell-width cache to its bound with placeholders as long as a ``width``-column
    line in two-byte characters (none of which a screen shows: they carry a private-use
    character); returns how many were added."""
    from rich.cells import cached_cell_len, cell_len

    chars = max(width, PLACEHOLDER_CHARS)
    info = cached_cell_len.cache_info()
    room = (info.maxsize or 0) - info.currsize
    # Twice the bound: the first half is pushed out again, and the cache's dict resizes to the
    # table it keeps under turnover (a dict filled once holds 4,096 keys in 8,192 slots; one
    # whose keys come and go is rebuilt at 16,384: +144 KiB, which real strings would add).
    for i in range(2 * room):
        # Through cell_len, as Rich measures: the cache keeps the same key as for a real string.
        cell_len(f"{PLACEHOLDER_MARK}{i:>{chars - 1}}")
    return max(room, 0)


# ---------------------------------------------------------------- pymalloc's pages

BYTES_HEADER = 33
"""``sys.getsizeof(b"")``: a ``bytes`` of ``n`` bytes is one ``n + 33``-byte block."""


@dataclass
class PymallocState:
    """What ``_PyObject_DebugMallocStats`` reports: per size class (bytes) the blocks free in
    its pools in use, the pools no class uses, the pool size, and arenas mapped so far."""

    avail: dict[int, int]
    unused_pools: int
    pool_bytes: int
    arenas_total: int


@functools.cache
def _stats_api() -> tuple[Any, Any, Any, Any] | None:
    """``_PyObject_DebugMallocStats``, ``open_memstream``, ``fclose`` and ``free``, typed once
    (``pymalloc_state`` runs after every periodic collection); None without CPython's or
    glibc's."""
    stats = getattr(ctypes.pythonapi, "_PyObject_DebugMallocStats", None)
    try:
        libc = ctypes.CDLL(None)
        open_memstream, fclose, free = libc.open_memstream, libc.fclose, libc.free
    except (OSError, AttributeError):
        return None
    if stats is None:
        return None
    open_memstream.restype = ctypes.c_void_p
    open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
    fclose.argtypes = [ctypes.c_void_p]
    free.argtypes = [ctypes.c_void_p]
    stats.argtypes = [ctypes.c_void_p]
    stats.restype = ctypes.c_int
    return stats, open_memstream, fclose, free


def pymalloc_state() -> PymallocState | None:
    """pymalloc's own statistics, written into memory (``open_memstream``: no file descriptor,
    so nothing the terminal gets); None where there is no pymalloc or no glibc (0.15 ms for
    45 arenas)."""
    api = _stats_api()
    if api is None:
        return None
    stats, open_memstream, fclose, free = api
    buf, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = open_memstream(ctypes.byref(buf), ctypes.byref(size))
    if not stream:
        return None
    written = stats(stream)
    fclose(stream)
    text = ctypes.string_at(buf, size.value).decode(errors="replace")
    free(buf)
    if not written:
        return None  # PYTHONMALLOC=malloc: no pymalloc
    avail: dict[int, int] = {}
    unused = pool = total = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5 and all(p.isdigit() for p in parts):
            avail[int(parts[1])] = int(parts[4])
        elif "unused pools *" in line:
            unused, pool = int(parts[0]), int(parts[4])
        elif line.startswith("# arenas allocated total"):
            total = int(parts[-1].replace(",", ""))
    if not pool:
        return None
    return PymallocState(avail, unused, pool, total)


class PageToucher:
    """Every pool of every pymalloc arena resident from the arena's first seconds: **filled at
    start** (the growth is bounded by the arenas mapped, so it is taken up front, not removed).

    CPython's small-object allocator maps 1 MiB arenas of 16 KiB pools, but a page becomes
    resident only when first written, and pymalloc carves an arena's pools one at a time, as
    size classes need them. Under the TUI's steady churn (as many objects made as let go) it
    kept reaching pools no object had used yet for minutes after start, so RssAnon crept
    although nothing was kept: in ``bench/tui_load.py`` (100 x 1 Hz, fleet screen), +120 KiB
    in 5 minutes in the pages of one 7-arena mapping (``/proc/PID/smaps`` every 10 s) while the
    objects in use fell by 0.37 MiB; in a bare churn probe, +140 KiB
    (``tests/tui/test_tui_memory.py``). ``touch`` fills every unused pool once with
    largest-class objects (zero-filled ``bytes``, 31 per pool) and lets them go: the pools
    stay resident and the allocator hands them out as before, so the same churn adds ~0. It
    runs at the start-up freeze and, after the periodic collection, whenever pymalloc has mapped
    an arena since (its statistics: 0.15 ms at 45 arenas; carving ~100 pools: ~2 ms). The
    price is the arenas' untouched pools, taken at once (``written``; a few hundred KiB at the
    bench's start) rather than over minutes. Left: the never-used tail pages of a pool in use
    (at most 12 KiB each, only for pools never yet full) and ``POOLS_LEFT``."""

    def __init__(self) -> None:
        self.arenas_total = -1
        self.written = 0

    def touch(self) -> int:
        """Carve every unused pool of pymalloc's arenas if an arena was mapped since the last
        time; returns the bytes written (0: nothing new, or no pymalloc). Safe from any thread
        that holds the GIL; another thread allocating meanwhile only leaves a pool uncarved."""
        state = pymalloc_state()
        if state is None or state.arenas_total == self.arenas_total:
            return 0
        size = max(state.avail)  # the largest class: fewest objects per pool
        per_pool = (state.pool_bytes - POOL_HEADER) // size
        filler: list[list[object]] = []
        filled = 0
        # In rounds, short of the last POOLS_LEFT pools: what else allocates meanwhile (the
        # filler's own list, another thread) takes pools too, and the pool after the last one
        # would be a new arena.
        for _ in range(TOUCH_ROUNDS):
            n = state.avail[size] + max(state.unused_pools - POOLS_LEFT, 0) * per_pool
            if not n:
                break
            filler.append([bytes(size - BYTES_HEADER) for _ in range(n)])  # zero-filled
            filled += n * size
            state = pymalloc_state() or state
            if state.unused_pools <= POOLS_LEFT:
                break
        del filler
        self.arenas_total = (pymalloc_state() or state).arenas_total
        self.written += filled
        return filled


TOUCH_ROUNDS = 4
"""Rounds of ``PageToucher.touch`` at most (the second finds a pool or two, the third none)."""
POOLS_LEFT = 2
"""Unused pools ``PageToucher.touch`` leaves (32 KiB): filling the last could map an arena."""
PAGES = PageToucher()
"""The TUI's: touched at the start-up freeze and after each periodic collection (tui/app.py)."""

POOL_HEADER = 48
"""A pool's header as pymalloc lays it out (``POOL_OVERHEAD``, 64-bit): the rest holds blocks."""
