#!/usr/bin/env python
"""The TUI under load: headless, subscribed to a real broker, while 10 assets publish at 10 Hz.

Prints event-loop lag p50/p99 (how late a 10 ms timer on the app's own loop fires: what an
operator feels as key latency), redraws per second, CPU of the TUI process (the publisher runs
in a separate process), and memory: RSS at the start and end of the measured window plus peak,
sampled every few seconds so growth would be visible. Targets: lag p99 < 50 ms, memory flat.

    python bench/tui_load.py                   # 10 assets x 10 Hz for 60 s, embedded broker
    python bench/tui_load.py --seconds 15      # shorter
    python bench/tui_load.py --assets 50 --hz 20 --broker mqtt://127.0.0.1:1883
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WARMUP_S = 3.0


def rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def publisher(url: str, assets: int, hz: float, seconds: float, go: object) -> None:
    """Child process: every asset publishes one telemetry message per 1/hz s, plus an alert
    episode (active, then cleared) per asset every 10 s so the alert feed moves too."""
    from engine.bus.client import BusClient
    from engine.plant.signals import SIGNALS
    from engine.schemas import AlertEvent, Telemetry

    bus = BusClient(url, f"bench-tui-pub-{os.getpid()}", "bench-pub", persistent=False)
    bus.start(wait=10)
    go.wait(60)  # type: ignore[attr-defined]  # the TUI is connected
    names = [f"pump{i:02d}" for i in range(assets)]
    period = 1.0 / hz
    start = time.monotonic()
    tick = 0
    while True:
        due = start + tick * period
        now = time.monotonic()
        if now - start > seconds:
            break
        if due > now:
            time.sleep(due - now)
        ts = tick * period
        for i, asset in enumerate(names):
            signals = {
                name: spec.lo + (spec.hi - spec.lo) * (0.5 + 0.2 * math.sin(ts / 7 + i + k))
                for k, (name, spec) in enumerate(SIGNALS.items())
            }
            bus.publish(
                Telemetry(msg_id=f"{asset}-{tick}", asset=asset, seq=tick, ts=ts, signals=signals)
            )
            if tick % int(10 * hz) == int(i * hz) % int(10 * hz):
                status = "active" if (tick // int(10 * hz)) % 2 == 0 else "cleared"
                bus.publish(
                    AlertEvent(
                        alert_id=f"{asset}-{tick // int(20 * hz)}",
                        asset=asset,
                        status=status,  # type: ignore[arg-type]
                        ts=ts,
                        onset_ts=ts,
                        severity="medium",
                        score=6.0,
                        signals=["vibration"],
                        detector="bench",
                    )
                )
        tick += 1
    bus.stop(drain=2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(args: argparse.Namespace, url: str, go: object) -> None:
    from tui.app import ControlRoomApp
    from tui.screens.plant import PlantScreen
    from tui.settings import UiSettings

    # Time the app's own redraw work separately from the loop lag, which on a busy machine
    # also contains time the process simply did not get a core.
    redraw_ms: list[float] = []
    original = PlantScreen.redraw

    def timed_redraw(self: PlantScreen, force: bool = False) -> None:
        t = time.perf_counter()
        original(self, force)
        redraw_ms.append((time.perf_counter() - t) * 1000)

    PlantScreen.redraw = timed_redraw  # type: ignore[method-assign]
    app = ControlRoomApp(UiSettings(broker_url=url, service_urls={}))
    lags: list[float] = []
    memory: list[tuple[float, int]] = []
    async with app.run_test(headless=True, size=(args.width, args.height)) as pilot:
        while app.bus is None or not app.bus.connected:
            await pilot.pause(0.05)
        go.set()  # type: ignore[attr-defined]
        await asyncio.sleep(WARMUP_S)

        redraw_ms.clear()
        received0 = sum(app.feed.counts().values())
        redraws0 = app.redraws
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        rss_start = rss_kib()
        next_sample = t0
        while (now := time.perf_counter()) - t0 < args.seconds:
            if now >= next_sample:
                memory.append((now - t0, rss_kib()))
                next_sample += max(args.seconds / 6, 1.0)
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((time.perf_counter() - before - 0.01) * 1000)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        redraws = app.redraws - redraws0
        received = sum(app.feed.counts().values()) - received0
        rss_end = rss_kib()

    offered = args.assets * args.hz
    lag = f"p50 {statistics.median(lags):.1f} ms   p99 {percentile(lags, 0.99):.1f} ms"
    print(
        f"TUI under load: {args.assets} assets x {args.hz:g} Hz = {offered:g} telemetry msg/s "
        f"for {elapsed:.0f} s, {args.width}x{args.height} headless, broker {args.broker_label}"
    )
    print(f"  received            {received} messages ({received / elapsed:.0f}/s)")
    print(f"  event-loop lag      {lag}   max {max(lags):.1f} ms   (target p99 < 50 ms)")
    print(
        f"  redraws             {redraws / elapsed:.1f}/s (cap 10/s); our redraw code "
        f"p50 {statistics.median(redraw_ms):.1f} ms  p99 {percentile(redraw_ms, 0.99):.1f} ms"
    )
    print(f"  load average        {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  CPU (TUI process)   {100 * cpu / elapsed:.0f}% of one core")
    print(
        f"  memory RSS          start {rss_start / 1024:.1f} MiB   end {rss_end / 1024:.1f} MiB"
        f"   peak {rss_kib('VmHWM') / 1024:.1f} MiB"
    )
    print("  RSS over time       " + "  ".join(f"{t:.0f}s:{kib / 1024:.1f}" for t, kib in memory))


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
    args = parser.parse_args()
    os.environ.setdefault("CONTROLROOM_VAR", tempfile.mkdtemp(prefix="bench-tui-"))

    from engine.bus.broker import ensure_broker

    info, handle = ensure_broker(args.broker)
    args.broker_label = str(info)
    # The publisher process starts before the app: Textual replaces stdio, which spawn needs.
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    proc = ctx.Process(
        target=publisher,
        args=(info.url, args.assets, args.hz, args.seconds + WARMUP_S, go),
        daemon=True,
    )
    proc.start()
    try:
        asyncio.run(run(args, info.url, go))
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
