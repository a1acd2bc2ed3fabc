"""Keep large, short-lived buffers out of a long-running process's heap (glibc only): the services
and the TUI.

glibc's ``malloc`` serves a block of 128 KiB or more with its own ``mmap`` and unmaps it when it
is freed, but it raises that threshold, for the rest of the process's life, to the size of every
such block freed (up to 32 MiB). After the first large message a service receives (a 300 KiB
junk payload, a big JSON body, a long listing), every later one is carved from the heap instead,
and a small long-lived allocation made meanwhile pins the space once it is freed: the heap keeps
it, resident and unused. In the soak that was most of the ticket and review services' growth
(RssAnon rising by 0.2-0.3 MiB/min while the bytes malloc had handed out stayed flat, its free
list growing from 1 to 7 MiB; the monitor's and diagnosis' to 15-32 MiB).

``fix_mmap_threshold`` sets the threshold back to glibc's default and fixes it there (an explicit
``mallopt`` turns the raising off, and with it the matching raise of the heap's trim threshold):
a large buffer costs an ``mmap`` and ``munmap`` (tens of microseconds, at message rates) and is
returned the moment it is freed. Elsewhere (musl, macOS) it does nothing.

``trim`` hands back to the system the whole free pages inside the heap (``malloc_trim``): glibc
returns only the free space at the *top* of each heap by itself, so space freed below a live
block, and the per-thread heaps of a service's HTTP and bus threads, stayed resident — the
review service's slow rise in the soak after every Python-level cause was fixed (docs/live.md).
The services call it after each periodic collection (``engine.services.base.tune_gc``).
"""

from __future__ import annotations

import ctypes
import functools
import platform

M_MMAP_THRESHOLD = -3
"""``mallopt`` parameter number in glibc's ``malloc.h``."""
MMAP_THRESHOLD_BYTES = 128 * 1024
"""glibc's own initial threshold: blocks this size or larger are mapped and unmapped alone."""


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, once: ``platform.libc_ver`` reads the interpreter's binary to tell."""
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at its default (no dynamic raising); True when applied. Safe
    to call more than once, from any thread."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def trim() -> bool:
    """Return every whole free page of every heap to the system; True when glibc released
    some. A few milliseconds on a service's heap; safe from any thread (glibc locks each heap)."""
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    if malloc_trim is None:
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return bool(malloc_trim(0))
