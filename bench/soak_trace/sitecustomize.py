"""Loaded by every service the soak starts with ``--trace-memory`` (this directory is put on
their PYTHONPATH): traces allocations with ``tracemalloc`` and writes, per process, a snapshot
after warm-up (``base``) and again every period (``last``), plus a line of traced bytes per
period. ``bench/soak.py`` diffs ``last`` against ``base`` per service to name what grew.

With ``SOAK_PROBE_DIR`` (``--probe-memory``, no tracemalloc, cheap) it instead writes a JSON
line every period saying where RssAnon is: glibc malloc (in use, free, mapped alone; from
``mallinfo2``, which covers every arena), SQLite's own allocations (``sqlite3_memory_used``: page
caches, statements; part of malloc's "in use"), Python's allocated blocks, and thread stacks
(from ``/proc/self/smaps``); the rest of RssAnon is Python's object arenas. What malloc holds
free grows with fragmentation, not with anything the program keeps.

It lives in bench/ and touches no service code: a service cannot tell it is being traced except
by the cost (tracemalloc roughly doubles allocation time).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

OUT = os.environ.get("SOAK_TRACE_DIR")
PERIOD_S = float(os.environ.get("SOAK_TRACE_PERIOD_S", "30"))
WARMUP_S = float(os.environ.get("SOAK_TRACE_WARMUP_S", "60"))
FRAMES = 12


def _service() -> str:
    """``python -m engine serve NAME``: NAME (argv is not set yet when this runs)."""
    try:
        argv = Path("/proc/self/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    if b"serve" in argv:
        i = argv.index(b"serve")
        if i + 1 < len(argv):
            return argv[i + 1].decode(errors="replace")
    return ""


def _dump(snapshot: tracemalloc.Snapshot, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    snapshot.dump(str(tmp))
    tmp.replace(path)


def _loop(out: Path, stem: str) -> None:
    t0 = time.monotonic()
    time.sleep(WARMUP_S)
    _dump(tracemalloc.take_snapshot(), out / f"{stem}.base.snap")
    with (out / f"{stem}.traced").open("a") as log:
        while True:
            log.write(f"{time.monotonic() - t0:.1f} {tracemalloc.get_traced_memory()[0]}\n")
            log.flush()
            time.sleep(PERIOD_S)
            _dump(tracemalloc.take_snapshot(), out / f"{stem}.last.snap")


MALLINFO2_FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in MALLINFO2_FIELDS.split()]


def _anon_kib() -> dict[str, int]:
    """RssAnon, and the part of it in thread stacks (8 MiB mappings), in KiB."""
    out = {"rss_anon": 0, "stacks": 0}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            out["rss_anon"] = int(line.split()[1])
    size = 0
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                size = (hi - lo) // 1024
            elif head[0] == "Anonymous:" and size == 8192:
                out["stacks"] += int(head[1])
    return out


def _probe(out: Path, stem: str) -> None:
    libc = ctypes.CDLL(None)
    mallinfo2 = libc.mallinfo2
    mallinfo2.restype = _MallInfo2
    lib = ctypes.util.find_library("sqlite3")
    sqlite = ctypes.CDLL(lib) if lib else None
    if sqlite is not None:
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    t0 = time.monotonic()
    with (out / f"{stem}.probe").open("a") as log:
        while True:
            time.sleep(PERIOD_S)
            m = mallinfo2()
            rec = {
                "t": round(time.monotonic() - t0, 1),
                "malloc_used": m.uordblks // 1024,
                "malloc_free": m.fordblks // 1024,
                "malloc_mmapped": m.hblkhd // 1024,
                "sqlite": (sqlite.sqlite3_memory_used() // 1024) if sqlite else -1,
                "py_blocks": sys.getallocatedblocks(),
                "threads": threading.active_count(),
                **_anon_kib(),
            }
            log.write(json.dumps(rec) + "\n")
            log.flush()


_name = _service()
PROBE = os.environ.get("SOAK_PROBE_DIR")
if PROBE and _name:
    _pdir = Path(PROBE)
    _pdir.mkdir(parents=True, exist_ok=True)
    threading.Thread(
        target=_probe, args=(_pdir, f"{_name}-{os.getpid()}"), name="soak-probe", daemon=True
    ).start()
if OUT and _name:
    tracemalloc.start(FRAMES)
    _dir = Path(OUT)
    _dir.mkdir(parents=True, exist_ok=True)
    threading.Thread(
        target=_loop, args=(_dir, f"{_name}-{os.getpid()}"), name="soak-trace", daemon=True
    ).start()
