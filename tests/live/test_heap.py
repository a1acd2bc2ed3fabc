"""engine/heap.py: a large buffer, once freed, leaves nothing resident in the heap."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from engine.heap import fix_mmap_threshold

    class MallInfo2(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks",
                    "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold()
    pins = []
    big = bytearray(1 << 20)  # the first large message
    del big
    before = mallinfo2().fordblks
    for i in range(8):  # later ones, each followed by a small long-lived allocation
        big = bytearray((1 << 20) + i * 65536)
        pins.append(bytearray(600))
        del big
    print((mallinfo2().fordblks - before) // 1024)
    """
)


def _held_free_kib(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_large_buffers_freed_leave_no_free_space_held_in_the_heap() -> None:
    # glibc alone raises its threshold after the first large block and carves the next ones from
    # the heap, where the small allocations made meanwhile keep the freed space in it ...
    assert _held_free_kib("dynamic") >= 512
    # ... with the threshold fixed each large block is mapped alone and unmapped when freed.
    assert _held_free_kib("fixed") < 128


TRIM_PROBE = textwrap.dedent(
    """
    from engine.heap import fix_mmap_threshold, trim

    def rss_anon_kib():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1])

    fix_mmap_threshold()  # as the services run
    blocks = [bytearray(1000) for _ in range(50_000)]  # past pymalloc: glibc's own heap
    kept = blocks[::100]  # one live block in every few pages keeps the space below the top
    del blocks
    before = rss_anon_kib()
    released = trim()
    print(released, before - rss_anon_kib())
    """
)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_trim_hands_back_the_free_pages_below_live_blocks() -> None:
    out = subprocess.run(
        [sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, check=True
    )
    released, freed_kib = out.stdout.split()
    # ~49 MB freed under 500 live 1 KB blocks: glibc alone keeps it all resident
    assert released == "True"
    assert int(freed_kib) > 30_000, out.stdout
