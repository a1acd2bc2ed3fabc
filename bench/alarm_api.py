"""The alarm path of the review service: how fast alerts become alarms, and what a TUI's poll
costs.

    python bench/alarm_api.py                       # 100 assets x 10 episodes
    python bench/alarm_api.py --assets 100 --episodes 50

Runs the real review service in this process (its TCP port and Unix socket on loopback, a
private store under a temp dir, an embedded broker it never needs to use) and prints:

- **record**: alert publications applied per second through the service's own handler (raise,
  one escalation, clear per episode; each one SQLite transaction with ``synchronous = FULL``);
- **list**: ``GET /alarms?state=all&history=false`` over the Unix socket with every alarm in
  the store, p50 / p95 ms;
- **poll**: the same with ``If-None-Match`` while nothing changed (304), p50 / p95 ms — what each
  TUI pays every second or two;
- **ack**: ``POST /alarms/ack`` round trips, p50 / p95 ms.

The load average is printed with the figures: on a shared machine, rerun on a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "alarms"))


def pct(values: list[float], q: float) -> float:
    from engine.evaluation.scoring import percentile

    return percentile(values, q) or 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assets", type=int, default=100)
    ap.add_argument("--episodes", type=int, default=10, help="alert episodes per asset")
    ap.add_argument("--polls", type=int, default=200)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="alarm-bench-"))
    os.environ["CONTROLROOM_VAR"] = str(tmp / "var")
    from alarm_data import Clock, alert
    from review_server import InProcessReview

    from engine.bus.broker import AmqttBroker

    broker = AmqttBroker().start()
    review = InProcessReview(tmp / "var", broker.info("bench").url, Clock()).start()
    assert review.service is not None
    try:
        t0 = time.perf_counter()
        n = 0
        for e in range(args.episodes):
            for a in range(args.assets):
                asset = f"pump{a + 1:03d}"
                aid = f"{asset}-A{e}"
                ts = 3600.0 * e + 10.0 * a
                for pub in (
                    alert(aid, asset=asset, ts=ts),
                    alert(aid, asset=asset, ts=ts + 60, severity="high", revision=1),
                    alert(aid, asset=asset, ts=ts + 600, status="cleared", revision=2),
                ):
                    review.service.on_alert(pub)
                    n += 1
        record_s = time.perf_counter() - t0
        alarms = args.assets * args.episodes

        async def http() -> tuple[list[float], list[float], list[float]]:
            lists, polls, acks = [], [], []
            async with review.client() as api:
                etag = None
                for _ in range(max(5, args.polls // 10)):
                    t = time.perf_counter()
                    etag, got = await api.alarms_if_changed(None, state="all")
                    lists.append((time.perf_counter() - t) * 1000)
                    assert got is not None and len(got) == alarms
                for _ in range(args.polls):
                    t = time.perf_counter()
                    _, got = await api.alarms_if_changed(etag, state="all")
                    polls.append((time.perf_counter() - t) * 1000)
                    assert got is None
                for i in range(min(alarms, 100)):
                    t = time.perf_counter()
                    await api.ack(f"pump{i % args.assets + 1:03d}-A{i // args.assets}")
                    acks.append((time.perf_counter() - t) * 1000)
            return lists, polls, acks

        lists, polls, acks = asyncio.run(http())
    finally:
        review.stop()
        broker.cleanup()
    load = os.getloadavg()
    print(f"alarms: {alarms} ({args.assets} assets x {args.episodes} episodes), {n} publications")
    print(f"record: {n / record_s:,.0f} publications/s ({record_s:.2f} s)")
    print(
        f"list (all {alarms}, no history): p50 {pct(lists, 50):.1f} ms, p95 {pct(lists, 95):.1f} ms"
    )
    print(
        f"poll, nothing changed (304):    p50 {pct(polls, 50):.2f} ms, p95 {pct(polls, 95):.2f} ms"
    )
    print(f"ack round trip:                 p50 {pct(acks, 50):.1f} ms, p95 {pct(acks, 95):.1f} ms")
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
