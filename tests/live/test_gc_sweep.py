"""engine/services/base.py ``tune_gc``: cyclic garbage is collected within ``GC_SWEEP_S`` even
when the allocation count never reaches the young generation's threshold (a quiet service)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import threading, weakref
    import engine.services.base as base

    base.GC_SWEEP_S = 0.2
    base.tune_gc()

    class Node:  # what a closed connection leaves: objects that only reference each other
        pass

    collected = threading.Event()
    for _ in range(50):
        a, b = Node(), Node()
        a.peer, b.peer = b, a
        weakref.finalize(a, collected.set)
        del a, b
    print("collected" if collected.wait(10) else "kept")
    """
)


def test_cycles_are_collected_in_a_quiet_service_within_the_sweep():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "collected"
