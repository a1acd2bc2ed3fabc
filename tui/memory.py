"""The UI's memory reaches its working size at start, so growth later means something.

Everything the TUI keeps is bounded (``tui/feed.py``, ``tui/trend.py``), but two things still
rise for minutes after start and look like a leak on a memory graph until they level off:

- **Rich's cell-width cache** (``rich.cells.cached_cell_len``, an ``lru_cache`` of 4,096
  strings): every distinct string Rich measures — clock readings, rates, values, alert cells —
  is kept until 4,096 others have come after it. Under live data it takes ~10 minutes to fill.
  ``fill_width_cache`` fills it at start with placeholder strings; real strings then replace
  them one for one, so the cache's memory is taken once, up front.
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
"""

from __future__ import annotations

PLACEHOLDER_CHARS = 16
"""Length of a placeholder string: about what the screens measure (a value with its unit, a
timestamp, an asset name), so a real string replacing one takes about the same memory."""


def fill_width_cache() -> int:
    """Fill Rich's cell-width cache to its bound with placeholder strings (none of which a
    screen shows: they carry a private-use character); returns how many were added."""
    from rich.cells import cached_cell_len

    info = cached_cell_len.cache_info()
    room = (info.maxsize or 0) - info.currsize
    for i in range(room):
        cached_cell_len(f"\ue000{i:>{PLACEHOLDER_CHARS - 1}}")
    return max(room, 0)
