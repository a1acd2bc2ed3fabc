"""Loaded by every service the soak starts with ``--trace-memory`` (this directory is put on
their PYTHONPATH): traces allocations with ``tracemalloc`` and writes, per process, a snapshot
after warm-up (``base``) and again every period (``last``), plus a line of traced bytes per
period. ``bench/soak.py`` diffs ``last`` against ``base`` per service to name what grew.

It lives in bench/ and touches no service code: a service cannot tell it is being traced except
by the cost (tracemalloc roughly doubles allocation time).
"""

from __future__ import annotations

import os
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


_name = _service()
if OUT and _name:
    tracemalloc.start(FRAMES)
    _dir = Path(OUT)
    _dir.mkdir(parents=True, exist_ok=True)
    threading.Thread(
        target=_loop, args=(_dir, f"{_name}-{os.getpid()}"), name="soak-trace", daemon=True
    ).start()
