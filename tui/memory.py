"""The UI's memory reaches its working size at start, so growth later means something.

Everything the TUI keeps is bounded (``tui/feed.py``, ``tui/trend.py``), but three things still
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
"""

from __future__ import annotations

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
