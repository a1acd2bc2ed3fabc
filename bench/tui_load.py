#!/usr/bin/env python
"""The TUI under load: headless, subscribed to a real broker, while a separate process publishes.

Prints event-loop lag p50/p99 (how late a 10 ms timer on the app's own loop fires: what an
operator feels as key latency), redraws per second, CPU of the TUI process (the publisher runs
in a separate process), and memory. Targets: lag p99 < 50 ms, <= 10 redraws/s, memory flat
from the start.

Memory is sampled every few seconds into preallocated arrays (the bench's own figures do not
count as growth) and printed at 0 s, 1 min, 5 min and every 5 min after: RSS, and RssAnon
(what the process owns; RSS also counts code paged in on first use) split into pymalloc's
arenas (Python objects up to 512 bytes; the part of them holding no object is fragmentation),
C malloc in use and free (glibc ``mallinfo2``: large objects, numpy, pydantic-core, read
buffers) and the rest (thread stacks). Beside it, what fills and is bounded: every
``lru_cache`` alive (Rich's, Textual's), the widgets' Textual caches, the bus's dedup window;
and the **backlog** (messages waiting in the bus inbox and the app's queues), which a starved
process holds in memory: on a machine too busy to keep up, growth that is not a leak. The
verdict is the RssAnon slope over the whole window (flat from the start?) and over the second
half (levelled off?), and beside it the same for the **objects in use** (pymalloc blocks in
use + C malloc in use: data kept, as against allocator space RSS also holds).
``--trace-memory --trace-at S,S,...`` takes tracemalloc snapshots (after a full collection,
tracing from before the app is made) at those seconds and at the end, and prints the traced
Python heap at each, the allocation sites that grew and the gc objects per type between them
(``--trace-from S``: one mark at S).

The TUI's own buffers are preallocated (``tui/trend.py``); what would still fill at first is
taken at start (``tui/memory.py``: Rich's width cache with placeholders as large as a line, its
bytes and the placeholders left printed over time; the bus's dedup window; glibc's thresholds
pinned) or kept to one screenful (``KeyedTable``'s render caches). Before the window the
publisher sends 500 past alarm episodes, so the alert list is full and the window is the steady
state. Textual's paint CPU per screen update is printed too: a stall measured as work, not as
time the process waited for a core.

    python bench/tui_load.py --suite                 # the three issue configurations, 60 s each
    python bench/tui_load.py                         # 10 assets x 10 Hz, plant screen
    python bench/tui_load.py --assets 100 --hz 1 --screen fleet
    python bench/tui_load.py --assets 1000 --hz 1 --screen fleet --seconds 300
    python bench/tui_load.py --broker mqtt://127.0.0.1:1883 --assets 50 --hz 20
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import itertools
import math
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WARMUP_S = 3.0
"""After the screen has caught up (``WARMUP_REDRAWS``), before the window opens."""
WARMUP_REDRAWS = 5
"""Redraws of the screen shown, with the backlog under a second of traffic, before the warm-up:
at load 15 a fixed 3 s was not enough for the plant screen's first full draw (the window
opened with 61 messages waiting and Rich's width cache barely touched, and RssAnon rose 2 MiB
in its first minute as the alert table was drawn: start-up, measured as growth)."""
ALERTS_PER_S = 1.0
"""New alarm episodes per second across the whole fleet (each clears ten seconds later)."""
SAMPLE_S = 2.0
"""RSS sampling period."""
FLAT_MIB_PER_MIN = 0.01
"""RSS moves in pages and allocator chunks: a second-half slope within two standard errors of
zero, or below this (0.6 MiB an hour), counts as flat; anything else is reported as growth."""


def rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pymalloc_kib() -> tuple[int, int]:
    """(KiB of pymalloc arenas mapped, KiB of them not holding an object): CPython's small-object
    allocator takes memory from the system in 1 MiB arenas and returns an arena only once it is
    empty, so its free space is the fragmentation that RSS keeps. Read from
    ``sys._debugmallocstats`` (written to the C stderr, so fd 2 is pointed at a file meanwhile)."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    arenas = used = 0
    for line in text.splitlines():
        if line.startswith("# arenas allocated current"):
            arenas = int(line.split("=")[1].replace(",", ""))
        elif line.startswith("# bytes in allocated blocks"):
            used = int(line.split("=")[1].replace(",", ""))
    return arenas * 1024, (arenas * 1024 * 1024 - used) // 1024


class _Mallinfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (every field a size_t)."""

    _FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = tuple((name, ctypes.c_size_t) for name in _FIELDS.split())


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _Mallinfo2
        return libc
    except (OSError, AttributeError):  # not glibc (or older than 2.33)
        return None


LIBC = _libc()


def glibc_kib() -> tuple[int, int]:
    """(KiB the C allocator holds for objects, KiB it holds free), over every malloc arena
    (the main heap and one per thread that allocates) and its mmapped blocks: what Python's
    large objects, numpy, pydantic-core and paho's buffers live in. (-1, -1) without glibc."""
    if LIBC is None:
        return -1, -1
    info = LIBC.mallinfo2()
    return (info.uordblks + info.hblkhd) // 1024, info.fordblks // 1024


def lru_caches() -> list[Any]:
    """Every ``functools.lru_cache`` alive (Rich's and Textual's module-level caches among
    them), to report their fill: a bounded cache still filling is growth with a ceiling."""
    return [
        o for o in gc.get_objects() if type(o).__name__ == "_lru_cache_wrapper"
    ]  # fmt: skip


def width_cache() -> tuple[int, int, list[float]]:
    """Rich's cell-width cache from inside: (bytes its keys hold: the argument tuples and the
    strings measured, placeholders of ``tui/memory.py`` not yet replaced, the size in bytes of
    each real string). The cache's count is always its bound (filled at start); its bytes are
    what moves while real strings replace the placeholders."""
    from rich.cells import cached_cell_len

    from tui.memory import PLACEHOLDER_MARK

    cache = next(
        r
        for r in gc.get_referents(cached_cell_len)
        if isinstance(r, dict) and "__wrapped__" not in r
    )
    total = placeholders = 0
    real: list[float] = []
    for key in list(cache):
        text = key[0] if isinstance(key, tuple) else key
        size = sys.getsizeof(text)
        total += size + (sys.getsizeof(key) if isinstance(key, tuple) else 0)
        if isinstance(text, str) and text.startswith(PLACEHOLDER_MARK):
            placeholders += 1
        else:
            real.append(size)
    return total, placeholders, real


def widget_caches(app: Any) -> tuple[int, int]:
    """(entries, capacity) of every Textual ``LRUCache``/``FIFOCache`` the app's widgets hold
    (DataTable's render caches, box models...): bounded, but they fill as the screen changes."""
    from textual.cache import FIFOCache, LRUCache

    entries = capacity = 0
    for screen in app.screen_stack:
        for widget in screen.walk_children(with_self=True):
            for value in vars(widget).values():
                if isinstance(value, LRUCache | FIFOCache):
                    entries += len(value)
                    capacity += value._maxsize
    return entries, capacity


def asset_names(n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"pump{i:0{width}d}" for i in range(n)]


def publisher(
    url: str,
    assets: int,
    hz: float,
    go: object,
    stop: object,
    episodes: int,
    limit_s: float,
) -> None:
    """Child process: first ``episodes`` past (cleared) alarm episodes as fast as the bus takes
    them, to fill the TUI's alert list; then, until ``stop``, every asset publishes one telemetry
    message per 1/hz s plus an alert episode (active, then cleared) every 10 s, so the alert
    list and the fleet's alarm columns move too."""
    from engine.bus.acl import credentials_path
    from engine.bus.client import BusClient
    from engine.paths import var_dir
    from engine.plant.signals import SIGNALS
    from engine.schemas import AlertEvent, Telemetry

    def client(name: str, identity: str) -> BusClient:
        """A client of this bench process (its environment is the entry's: main sets
        CONTROLROOM_VAR before spawning it), as ``identity``."""
        return BusClient(url, f"bench-tui-{name}-{os.getpid()}", f"bench-{name}", persistent=False,
                         identity=identity, var=var_dir(os.environ),
                         credentials=credentials_path(os.environ))  # fmt: skip

    # Each kind under the identity the broker's ACL lets publish it (as the plant would).
    bus = client("pub", "simulator")
    alarms = client("alarms", "monitor")
    bus.start(wait=10)
    alarms.start(wait=10)
    go.wait(60)  # type: ignore[attr-defined]  # the TUI is connected
    names = asset_names(assets)
    period = 1.0 / hz

    def telemetry(i: int, asset: str, tick: int) -> Telemetry:
        ts = tick * period
        signals = {
            name: spec.lo + (spec.hi - spec.lo) * (0.5 + 0.2 * math.sin(ts / 7 + i + k))
            for k, (name, spec) in enumerate(SIGNALS.items())
        }
        return Telemetry(msg_id=f"{asset}-{tick}", asset=asset, seq=tick, ts=ts, signals=signals)

    def alert(
        alert_id: str, asset: str, status: Literal["active", "cleared"], ts: float
    ) -> AlertEvent:
        return AlertEvent(
            alert_id=alert_id,
            asset=asset,
            status=status,
            ts=ts,
            onset_ts=ts,
            severity="medium",
            score=6.0,
            signals=["vibration"],
            detector="bench",
        )

    for k in range(episodes):
        asset = names[k % assets]
        alarms.publish(alert(f"{asset}-past{k}", asset, "cleared", 0.0))
    alarms.flush(30)

    start = time.monotonic()
    tick = 0
    raised: list[tuple[str, str]] = []
    episode = 0
    while not stop.is_set():  # type: ignore[attr-defined]
        due = start + tick * period
        now = time.monotonic()
        if now - start > limit_s:
            break
        if due > now:
            time.sleep(due - now)
        for i, asset in enumerate(names):
            bus.publish(telemetry(i, asset, tick))
        # Alarms at ALERTS_PER_S whatever the fleet size: each active for ten seconds.
        while episode < (tick + 1) * period * ALERTS_PER_S:
            asset = names[(episode * 7) % assets]
            alert_id = f"{asset}-E{episode}"
            alarms.publish(alert(alert_id, asset, "active", tick * period))
            raised.append((alert_id, asset))
            episode += 1
        while len(raised) > 10 * ALERTS_PER_S:
            alert_id, asset = raised.pop(0)
            alarms.publish(alert(alert_id, asset, "cleared", tick * period))
        tick += 1
    bus.stop(drain=2)
    alarms.stop(drain=2)


def percentile(values: list[float], q: float) -> float:
    """``q`` in 0..1, through the project's one percentile (NaN without values)."""
    from engine.evaluation.scoring import percentile as linear

    value = linear(values, q * 100)
    return math.nan if value is None else value


def growth(times: list[float], kib: list[float]) -> tuple[float, float]:
    """Least-squares slope of RSS over time and its standard error, both in MiB per minute."""
    n = len(times)
    if n < 3:
        return math.nan, math.nan
    t_mean, y_mean = statistics.fmean(times), statistics.fmean(kib)
    sxx = sum((t - t_mean) ** 2 for t in times)
    slope = sum((t - t_mean) * (y - y_mean) for t, y in zip(times, kib, strict=True)) / sxx
    residuals = [y - y_mean - slope * (t - t_mean) for t, y in zip(times, kib, strict=True)]
    stderr = math.sqrt(sum(r * r for r in residuals) / (n - 2) / sxx)
    per_min = 60 / 1024
    return slope * per_min, stderr * per_min


class Recorder:
    """A fixed-size float buffer: appending never allocates (``list.append`` of fresh floats
    would grow the very RSS being measured, by ~3 KiB/s for the lag timer alone)."""

    def __init__(self, capacity: int) -> None:
        self.values = array("d", bytes(8 * capacity))
        self.n = 0

    def add(self, value: float) -> None:
        if self.n < len(self.values):
            self.values[self.n] = value
            self.n += 1

    def clear(self) -> None:
        self.n = 0

    def list(self) -> list[float]:
        return self.values[: self.n].tolist()


MEMORY_SERIES = (
    "t",
    "rss",
    "anon",
    "py_arenas",
    "py_free",
    "c_used",
    "c_free",
    "lru",
    "widths",
    "widths_kib",
    "placeholders",
    "widget",
    "dedup",
    "backlog",
)
"""What ``MemoryLog`` records per sample: seconds into the window, then KiB (RSS, RssAnon,
pymalloc arenas and their free part, C malloc in use and free) and cache fills (entries)."""


class MemoryLog:
    """Memory every ``SAMPLE_S`` over the window, in preallocated buffers, and its report:
    RssAnon and where it lives at 0 s, 1 min, 5 min and every 5 min after, and its slope over
    the whole window (flat from the start?) and over the second half (levelled off?)."""

    def __init__(self, samples: int) -> None:
        self.series = {name: Recorder(samples) for name in MEMORY_SERIES}
        self.cache_start: list[int] = []
        """Each lru cache's fill at the first sample (to name those that grew)."""

    def add(self, **values: float) -> None:
        for name, value in values.items():
            self.series[name].add(value)

    def __getitem__(self, name: str) -> list[float]:
        return self.series[name].list()

    def marks(self, elapsed: float) -> list[int]:
        """Sample indices nearest 0 s, 1 min, 5 min, every 5 min after, and the end."""
        times = self["t"]
        wanted = [0.0, 60.0, *range(300, int(elapsed), 300), elapsed]
        return sorted(
            {
                min(range(len(times)), key=lambda i: abs(times[i] - w))
                for w in wanted
                if w <= elapsed
            }
        )

    def slope(self, name: str, since: float) -> tuple[float, float]:
        times, values = self["t"], self[name]
        kept = [i for i, t in enumerate(times) if t >= since]
        return growth([times[i] for i in kept], [values[i] for i in kept])

    def report(self, elapsed: float, dedup_max: int, caches: list[Any], widget_max: int) -> None:
        times, marks = self["t"], self.marks(elapsed)

        def row(label: str, values: list[float], scale: float = 1024, fmt: str = ".1f") -> None:
            cells = "".join(f"{values[i] / scale:>8{fmt}}" for i in marks)
            print(f"    {label:<22}{cells}")

        heads = "".join(
            f"{(f'{times[i]:.0f} s' if times[i] < 60 else f'{times[i] / 60:.0f} min'):>8}"
            for i in marks
        )
        print(f"  memory, MiB           {heads}")
        anon, py, py_free = self["anon"], self["py_arenas"], self["py_free"]
        c_used, c_free = self["c_used"], self["c_free"]
        row("RSS", self["rss"])
        row("RssAnon", anon)
        if py[0] > 0:  # (tracemalloc's hooks hide pymalloc's statistics)
            row("  pymalloc arenas", py)
            row("    of which free", py_free)
        if c_used[0] >= 0 and py[0] > 0:
            row("  C malloc in use", c_used)
            row("  C malloc free", c_free)
            rest = [a - p - u - f for a, p, u, f in zip(anon, py, c_used, c_free, strict=True)]
            row("  rest (stacks, ...)", rest)
            in_use = [p - f + u for p, f, u in zip(py, py_free, c_used, strict=True)]
            row("objects in use", in_use)
        else:
            in_use = []
        bounded = sum(c.cache_info().maxsize or 0 for c in caches)
        row(f"lru caches (/{bounded})", self["lru"], 1, ".0f")
        row("  Rich cell widths", self["widths"], 1, ".0f")
        row("    their keys, KiB", self["widths_kib"], 1, ".0f")
        row("    placeholders left", self["placeholders"], 1, ".0f")
        row(f"widget caches (/{widget_max})", self["widget"], 1, ".0f")
        row(f"bus dedup (/{dedup_max})", self["dedup"], 1, ".0f")
        row("backlog (messages)", self["backlog"], 1, ".0f")
        print(f"    peak RSS {rss_kib('VmHWM') / 1024:.1f} MiB")
        whole, whole_err = self.slope("anon", 0.0)
        half, half_err = self.slope("anon", elapsed / 2)

        def verdict(slope: float, stderr: float) -> str:
            if abs(slope) <= max(2 * stderr, FLAT_MIB_PER_MIN):
                return "flat"
            return "GROWING" if slope > 0 else "shrinking"

        filling = [
            f"{c.__module__}.{c.__qualname__} {fill}/{c.cache_info().maxsize}"
            for c, start in zip(caches, self.cache_start, strict=True)
            if start < (fill := c.cache_info().currsize) < (c.cache_info().maxsize or math.inf)
        ]
        rise = (anon[-1] - anon[0]) / 1024
        print(
            f"  RssAnon growth      {rise:+.1f} MiB over the window; {whole:+.3f} ± {whole_err:.3f}"
            f" MiB/min over all of it ({verdict(whole, whole_err)} from the start), "
            f"{half:+.3f} ± {half_err:.3f} over the second half ({elapsed / 2:.0f}-{elapsed:.0f} "
            f"s: {verdict(half, half_err)})"
        )
        if in_use:
            # What the process's objects take (pymalloc blocks in use + C malloc in use), beside
            # RssAnon: growth here is data kept; RssAnon growth without it is allocator space
            # (free blocks in arenas, free heap) the objects passed through.
            kept = [i for i, t in enumerate(times) if t >= elapsed / 2]
            used_half, used_half_err = growth([times[i] for i in kept], [in_use[i] for i in kept])
            used_whole, used_whole_err = growth(times, in_use)
            print(
                f"  objects in use      {(in_use[-1] - in_use[0]) / 1024:+.2f} MiB over the window;"
                f" {used_whole:+.3f} ± {used_whole_err:.3f} MiB/min over all of it "
                f"({verdict(used_whole, used_whole_err)} from the start), {used_half:+.3f} ± "
                f"{used_half_err:.3f} over the second half ({verdict(used_half, used_half_err)})"
            )
        if filling:
            print(f"  lru caches filling  {', '.join(filling[:6])}")


class MemoryMark:
    """One tracemalloc snapshot (after a full collection) and the count of gc-tracked objects
    per type at that moment: successive marks say which allocation sites and which kinds of
    object grew between them. Python's heap only: what tracemalloc does not see (free space in
    pymalloc's arenas and glibc's heaps, C libraries' own allocations) is RSS-only growth.
    The counts leave out the start-up heap the app froze (``gc.freeze``: ``gc.get_objects``
    does not list it), so a frozen object replaced by a new one counts +1 (the 500 alert rows
    made before the window show as ``AlertRow`` rising to +500 while the alarms replace them)."""

    def __init__(self, t: float, snapshot: Any, types: dict[str, int], backlog: int) -> None:
        self.t, self.snapshot, self.types, self.backlog = t, snapshot, types, backlog
        self.traced = sum(trace.size for trace in snapshot.traces)
        """Bytes traced, less the bench's own (earlier marks, its buffers)."""

    @classmethod
    def take(cls, t: float, backlog: int) -> MemoryMark:
        import tracemalloc

        gc.collect()
        types: dict[str, int] = {}
        for o in gc.get_objects():
            name = type(o).__qualname__
            types[name] = types.get(name, 0) + 1
        snapshot = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__))
        )
        return cls(t, snapshot, types, backlog)

    @staticmethod
    def where(stat: Any) -> str:
        frames = list(stat.traceback)  # oldest first
        here = frames[-1]
        ours = next((f for f in reversed(frames) if str(ROOT) in f.filename), None)
        place = f"{Path(here.filename).name}:{here.lineno}"
        if ours is not None and ours is not here:
            place += f" (from {Path(ours.filename).name}:{ours.lineno})"
        return place

    @classmethod
    def report(cls, marks: list[MemoryMark], top: int = 8) -> None:
        def at(t: float) -> str:
            return f"{t:.0f} s" if t < 120 else f"{t / 60:.1f} min"

        cells = "  ".join(f"{at(m.t)} {m.traced / 2**20:.2f}" for m in marks)
        print(f"  Python heap (tracemalloc, after gc, MiB): {cells}")
        cells = "  ".join(f"{at(m.t)} {m.backlog}" for m in marks)
        print(f"    backlog then (messages, in the heap above): {cells}")
        for a, b in itertools.pairwise(marks):
            diff = b.snapshot.compare_to(a.snapshot, "traceback")
            grew = sum(s.size_diff for s in diff)
            print(f"  {at(a.t)} -> {at(b.t)}: {grew / 1024:+.1f} KiB traced; top sites:")
            for stat in diff[:top]:
                print(f"    {stat.size_diff / 1024:+8.1f} KiB  {stat.count_diff:+6d} blocks  "
                      f"{cls.where(stat)}")  # fmt: skip
            names = set(a.types) | set(b.types)
            moved = sorted(((b.types.get(n, 0) - a.types.get(n, 0), n) for n in names),
                           key=lambda dn: -abs(dn[0]))  # fmt: skip
            objects = ", ".join(f"{n} {d:+d}" for d, n in moved[:top] if d)
            print(f"    gc objects (not frozen): {objects or 'no change'}")


class StallSampler(threading.Thread):
    """Where the event loop is when it stalls: every ``period`` s this thread looks at the time
    the lag loop last ticked; when that is more than ``threshold`` s ago it records the main
    thread's stack (innermost frames in the project, Textual or Rich first). Counts per place
    name what makes the lag tail; a stall with no Python frame of note is GIL or scheduling."""

    def __init__(self, threshold: float = 0.02, period: float = 0.002) -> None:
        super().__init__(name="stall-sampler", daemon=True)
        self.threshold, self.period = threshold, period
        self.beat = time.perf_counter()
        self.main = threading.main_thread().ident
        self.places: dict[str, int] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.period):
            if time.perf_counter() - self.beat < self.threshold:
                continue
            frame = sys._current_frames().get(self.main or 0)
            names: list[str] = []
            while frame is not None and len(names) < 4:
                code = frame.f_code
                path = code.co_filename
                if any(k in path for k in (str(ROOT), "textual", "rich", "pydantic", "numpy")):
                    short = path.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
                    names.append(f"{short}:{frame.f_lineno} {code.co_name}")
                frame = frame.f_back
            place = " < ".join(names) or "(no project/Textual frame: GIL or scheduler)"
            self.places[place] = self.places.get(place, 0) + 1

    def stop(self) -> None:
        self.halt.set()
        self.join(1)


async def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def run(args: argparse.Namespace, url: str, go: object) -> None:
    import rich.cells

    from engine.bus.acl import credentials_path
    from engine.paths import var_dir
    from engine.settings import process_environ
    from tui.app import ControlRoomApp
    from tui.screens.fleet import FleetScreen
    from tui.screens.plant import REFRESH_HZ, PlantScreen
    from tui.screens.trend import TrendScreen
    from tui.settings import UiSettings

    # Every figure goes into a preallocated buffer: the 10 ms timer at most 100 times a second,
    # redraws at most REFRESH_HZ (plus a few forced ones), RSS every SAMPLE_S.
    lags = Recorder(int(args.seconds * 100) + 100)
    redraw_ms = Recorder(int(args.seconds * REFRESH_HZ * 2) + 100)
    redraw_cpu_ms = Recorder(int(args.seconds * REFRESH_HZ * 2) + 100)
    memory = MemoryLog(int(args.seconds / SAMPLE_S) + 2)
    caches = lru_caches()  # every module's, imported by now

    def backlog() -> int:
        """Messages waiting: the bus inbox (for the dispatcher) and the app's and screen's
        Textual queues. A starved process holds its backlog in memory: growth, not a leak."""
        waiting = app.bus._inbox.qsize() if app.bus is not None else 0
        return waiting + app._message_queue.qsize() + app.screen._message_queue.qsize()

    def sample_memory(t: float) -> None:
        arenas, arenas_free = pymalloc_kib()
        c_used, c_free = glibc_kib()
        fills = [c.cache_info().currsize for c in caches]
        if not memory.cache_start:
            memory.cache_start = fills
        lru = sum(fills)
        widget, _ = widget_caches(app)
        width_bytes, placeholders, _ = width_cache()
        memory.add(
            t=t, rss=rss_kib(), anon=rss_kib("RssAnon"), py_arenas=arenas, py_free=arenas_free,
            c_used=c_used, c_free=c_free, lru=lru, widget=widget,
            widths=rich.cells.cached_cell_len.cache_info().currsize,
            widths_kib=width_bytes / 1024, placeholders=placeholders,
            dedup=len(app.bus._seen) if app.bus is not None else 0, backlog=backlog(),
        )  # fmt: skip

    # Time the screen's own redraw work separately from the loop lag, which on a busy machine
    # also contains time the process simply did not get a core.
    screens: dict[str, type[PlantScreen] | type[FleetScreen] | type[TrendScreen]] = {
        "plant": PlantScreen,
        "fleet": FleetScreen,
        "trend": TrendScreen,
    }
    screen_cls = screens[args.screen]
    original = screen_cls.redraw

    def timed_redraw(self: Any, force: bool = False) -> None:
        t, c = time.perf_counter(), time.thread_time()
        changed = self.app.redraws
        original(self, force)
        if self.app.redraws != changed:
            redraw_ms.add((time.perf_counter() - t) * 1000)
            redraw_cpu_ms.add((time.thread_time() - c) * 1000)

    screen_cls.redraw = timed_redraw  # type: ignore[method-assign]

    # Textual's paint of what changed (layout when asked, then the compositor), after our
    # redraw: its CPU per update, so a stall shows as work even when the machine is busy.
    from textual.screen import Screen

    paint_cpu_ms = Recorder(int(args.seconds * 200) + 100)
    original_paint = getattr(Screen, "_on_timer_update", None)
    if original_paint is not None:

        def timed_paint(self: Any) -> None:
            c = time.thread_time()
            original_paint(self)
            paint_cpu_ms.add((time.thread_time() - c) * 1000)

        Screen._on_timer_update = timed_paint  # type: ignore[method-assign]
    if args.trace_memory:
        import tracemalloc

        tracemalloc.start(8)
    environ = process_environ()  # (this bench stands in for the entry)
    app = ControlRoomApp(
        UiSettings(
            broker_url=url,
            service_urls={},
            var=var_dir(environ),
            credentials=credentials_path(environ),
        )
    )
    feed = app.feed
    assets = asset_names(args.assets)

    def buffers_full() -> bool:
        return (
            len(feed.live_assets()) >= min(args.assets, feed.max_assets)
            and len(feed.alerts()) >= feed.max_alerts
        )

    async with app.run_test(headless=True, size=(args.width, args.height)) as pilot:
        while app.bus is None or not app.bus.connected:
            await pilot.pause(0.05)
        go.set()  # type: ignore[attr-defined]
        full = await wait_for(buffers_full, timeout=60)
        if not feed.live_assets():
            raise SystemExit("tui_load: no telemetry arrived in 60 s (did the publisher start?)")
        if args.screen == "fleet":
            await pilot.press("3")
        elif args.screen == "trend":
            await app.push_screen(TrendScreen(assets[0], "bearing_temp"))
        shown, warm0 = app.redraws, time.perf_counter()
        caught_up = await wait_for(
            lambda: (
                app.redraws >= shown + WARMUP_REDRAWS and backlog() < max(args.assets * args.hz, 10)
            ),
            timeout=120,
        )
        await asyncio.sleep(WARMUP_S)
        warmup = time.perf_counter() - warm0

        redraw_ms.clear()
        redraw_cpu_ms.clear()
        paint_cpu_ms.clear()
        # Snapshots at --trace-at (default: --trace-from, or half-way) and at the end; tracing
        # started before the app was made, so an object made at start and replaced later shows
        # as the replacement's size minus its own (not as growth).
        trace_at = sorted(args.trace_at or [args.seconds / 2 if args.trace_from is None
                                            else args.trace_from])  # fmt: skip
        traces: list[MemoryMark] = []
        sampler = StallSampler() if args.stalls else None
        if sampler is not None:
            sampler.start()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        received0 = sum(feed.counts().values())
        redraws0 = app.redraws
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        next_sample = t0
        while (now := time.perf_counter()) - t0 < args.seconds:
            if now >= next_sample:
                sample_memory(now - t0)
                next_sample += SAMPLE_S
                tracing = args.trace_memory and len(traces) < len(trace_at)
                if tracing and now - t0 >= trace_at[len(traces)]:
                    traces.append(MemoryMark.take(now - t0, backlog()))
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.add((time.perf_counter() - before - 0.01) * 1000)
            if sampler is not None:
                sampler.beat = time.perf_counter()
        elapsed = time.perf_counter() - t0
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        if sampler is not None:
            sampler.stop()
        cpu = time.process_time() - cpu0
        redraws = app.redraws - redraws0
        received = sum(feed.counts().values()) - received0
        sample_memory(elapsed)
        _, widget_max = widget_caches(app)
        if args.trace_memory:
            traces.append(MemoryMark.take(elapsed, backlog()))
            tracemalloc.stop()
        _, _, real_widths = width_cache()
        kept_assets = len(feed.live_assets())
        per_asset = feed.memory_per_asset()
        kept_alerts = len(feed.alerts())
        refused = feed.counters.assets_refused

    from engine.bus.client import DEDUP_WINDOW as dedup_max

    offered = args.assets * args.hz
    lag_ms, redraw = lags.list(), redraw_ms.list() or [math.nan]
    redraw_cpu = redraw_cpu_ms.list() or [math.nan]
    lag = f"p50 {statistics.median(lag_ms):.1f} ms   p99 {percentile(lag_ms, 0.99):.1f} ms"
    print(
        f"TUI under load: {args.assets} assets x {args.hz:g} Hz = {offered:g} telemetry msg/s "
        f"+ {ALERTS_PER_S:g} alarm/s for {elapsed:.0f} s, {args.screen} screen, "
        f"{args.width}x{args.height} headless, broker {args.broker_label}"
    )
    print(
        f"  buffers             {'full' if full else 'NOT FULL'} before the window: "
        f"{kept_assets} assets x {per_asset / 1024:.0f} KiB of history each "
        f"({refused} samples of assets over the cap refused), "
        f"{kept_alerts}/{feed.max_alerts} alert episodes"
    )
    print(
        f"  warm-up             {warmup:.0f} s after the screen was shown "
        + ("(caught up: " if caught_up else "(NOT caught up in 120 s: ")
        + f"{WARMUP_REDRAWS} redraws, backlog under a second of traffic, then {WARMUP_S:g} s)"
    )
    print(f"  received            {received} messages ({received / elapsed:.0f}/s)")
    print(f"  event-loop lag      {lag}   max {max(lag_ms):.1f} ms   (target p99 < 50 ms)")
    print(
        f"  redraws             {redraws / elapsed:.1f}/s (target <= 10/s); screen redraw "
        f"wall p50 {statistics.median(redraw):.1f} ms p99 {percentile(redraw, 0.99):.1f} ms, "
        f"CPU p50 {statistics.median(redraw_cpu):.1f} ms p99 {percentile(redraw_cpu, 0.99):.1f} ms"
    )
    paint = paint_cpu_ms.list() or [math.nan]
    print(
        f"  Textual paint CPU   p50 {statistics.median(paint):.1f} ms   p99 "
        f"{percentile(paint, 0.99):.1f} ms   max {max(paint):.1f} ms per screen update "
        "(layout + compositor; load-independent)"
    )
    load1, load5, _ = os.getloadavg()
    print(f"  load average        {load1:.1f} (5 min {load5:.1f}) on {os.cpu_count()} cores")
    print(f"  CPU (TUI process)   {100 * cpu / elapsed:.0f}% of one core")
    memory.report(elapsed, dedup_max, caches, widget_max)
    if real_widths:
        print(
            f"  Rich width cache    {len(real_widths)} real strings, each p50 "
            f"{percentile(real_widths, 0.5):.0f} B  p90 {percentile(real_widths, 0.9):.0f} B  "
            f"max {max(real_widths):.0f} B, {sum(real_widths) / len(real_widths):.0f} B on average"
        )

    if args.trace_memory:
        MemoryMark.report(traces)
    if sampler is not None:
        total = sum(sampler.places.values())
        print(f"  stalls > 20 ms      {total} samples of 2 ms; where the loop was (top 8):")
        for place, n in sorted(sampler.places.items(), key=lambda kv: -kv[1])[:8]:
            print(f"    {n:6d}  {place}")


SUITE = (
    ("--assets", "10", "--hz", "10", "--screen", "plant"),
    ("--assets", "100", "--hz", "1", "--screen", "fleet"),
    ("--assets", "100", "--hz", "1", "--screen", "plant"),
    ("--assets", "1000", "--hz", "1", "--screen", "fleet"),
)
"""Issue 13 (10 x 10 Hz and 100 x 1 Hz) and issue 14 (the fleet table at 1,000 x 1 Hz)."""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--assets", type=int, default=10)
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=120)
    parser.add_argument("--height", type=int, default=40)
    parser.add_argument("--broker", default="embedded", help="broker URL, or 'embedded' (default)")
    parser.add_argument(
        "--screen", choices=("plant", "fleet", "trend"), default="plant", help="screen shown"
    )
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="also list the allocation sites that grew in the window (tracemalloc: slower)",
    )
    parser.add_argument(
        "--trace-from",
        type=float,
        metavar="S",
        help="with --trace-memory: the first snapshot at S s into the window (default: half-way)",
    )
    parser.add_argument(
        "--trace-at",
        type=lambda text: [float(x) for x in text.split(",")],
        metavar="S,S,...",
        help="with --trace-memory: snapshots at these seconds into the window (and the end); "
        "prints the traced heap at each and what grew between consecutive ones",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="cProfile the event-loop thread over the window into FILE (read with pstats)",
    )
    parser.add_argument(
        "--stalls",
        action="store_true",
        help="also sample where the event loop is whenever it stalls over 20 ms",
    )
    parser.add_argument(
        "--suite",
        action="store_true",
        help="run every configuration of SUITE, one process each (other options apply to all)",
    )
    args, _ = parser.parse_known_args()
    if args.suite:
        rest = [a for a in sys.argv[1:] if a != "--suite"]
        status = 0
        for config in SUITE:
            print(flush=True)
            status |= subprocess.call([sys.executable, __file__, *rest, *config])
        return status
    args = parser.parse_args()
    os.environ.setdefault("CONTROLROOM_VAR", tempfile.mkdtemp(prefix="bench-tui-"))

    from engine.bus.acl import credentials_path
    from engine.bus.broker import ensure_broker
    from engine.settings import process_environ
    from tui.feed import PlantFeed

    caps = PlantFeed()
    info, handle = ensure_broker(args.broker, credentials_file=credentials_path(process_environ()))
    args.broker_label = str(info)
    # The publisher process starts before the app: Textual replaces stdio, which spawn needs.
    ctx = mp.get_context("spawn")
    go, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(
        target=publisher,
        args=(
            info.url,
            args.assets,
            args.hz,
            go,
            stop,
            caps.max_alerts,
            args.seconds + WARMUP_S + 120,  # a bound in case this process dies uncleanly
        ),
        daemon=True,
    )
    proc.start()
    try:
        asyncio.run(run(args, info.url, go))
    finally:
        stop.set()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
