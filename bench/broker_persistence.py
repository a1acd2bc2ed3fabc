"""What prompt persistence costs and buys on Mosquitto (issue 12 item 8).

    python bench/broker_persistence.py [--messages 2000] [--subscribers 3] [--kills 20]

Part 1, cost: QoS 1 throughput (one publisher, N persistent subscribers) with the broker saving
its database once a second (Mosquitto's usual setting), on every change with its state on disk,
and on every change with its state in memory (``/dev/shm``, what the embedded broker uses).

Part 2, what it buys: ``--kills`` rounds of "publish 200 alerts for an offline consumer, SIGKILL
the broker the moment the publisher holds its PUBACKs, restart, count what the consumer gets":
with the broker's save on every change, with and without the bus client's durability round trip
(``engine.bus.client.delivered``: a later round trip on the same connection after the PUBACK).

Prints each figure with the machine's load (``uptime``): rates depend on the disk and the free
cores, the loss counts must not.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.bus import paho_compat  # noqa: E402
from engine.bus.broker import MosquittoBroker, mosquitto_binary  # noqa: E402
from engine.bus.client import BusClient  # noqa: E402
from engine.paths import var_dir  # noqa: E402
from engine.schemas import AlertEvent  # noqa: E402


def alert(n: int) -> AlertEvent:
    return AlertEvent(alert_id=f"a{n}", asset="pump01", ts=float(n), onset_ts=float(n),
                      severity="low", score=1.0, signals=["flow"], detector="bench")  # fmt: skip


def broker(every_change: bool, state_dir: str | None) -> MosquittoBroker:
    workdir = Path(tempfile.mkdtemp(prefix="bench-persist-", dir=state_dir))
    return MosquittoBroker(workdir=workdir, save_every_change=every_change).start()


def throughput(every_change: bool, state_dir: str | None, n: int, subs: int) -> float:
    b = broker(every_change, state_dir)
    try:
        got: list[int] = []
        clients = []
        for k in range(subs):
            c = BusClient(b.url, f"bench-sub{k}", f"bench-sub{k}", var=var_dir(os.environ))
            c.subscribe("alerts/+", lambda a: got.append(1))
            clients.append(c.start(wait=10))
        pub = BusClient(b.url, "bench-pub", "bench-pub", var=var_dir(os.environ)).start(wait=10)
        t0 = time.monotonic()
        for i in range(n):
            pub.publish(alert(i))
        while len(got) < n * subs and time.monotonic() - t0 < 600:
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        for c in (*clients, pub):
            c.stop(drain=1)
        return n / elapsed
    finally:
        b.cleanup()


def kill_round(barrier: bool) -> int:
    """Alerts lost by one SIGKILL right after the last PUBACK."""
    b = broker(True, None)
    try:
        cid = f"bench-offline-{uuid.uuid4().hex[:6]}"
        got: list[str] = []

        def on_alert(a: AlertEvent) -> None:
            got.append(a.alert_id)

        consumer = BusClient(b.url, cid, "bench-offline", var=var_dir(os.environ))
        consumer.subscribe("alerts/+", on_alert)
        consumer.start(wait=10)
        pub = BusClient(b.url, f"p-{cid}", "bench-pub", var=var_dir(os.environ)).start(wait=10)
        while not got:
            pub.publish(alert(0))
            time.sleep(0.05)
        consumer.stop(drain=1)
        pubs = [pub.publish(alert(i)) for i in range(1, 201)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            acked = all(paho_compat.delivered(p.info) for p in pubs)
            if (barrier and pub.flush(0.01)) or (not barrier and acked):
                break
            time.sleep(0.002)
        b.restart(kill=True)
        got.clear()
        again = BusClient(b.url, cid, "bench-offline", var=var_dir(os.environ))
        again.subscribe("alerts/+", on_alert)
        again.start(wait=10)
        deadline = time.monotonic() + 5
        while "a200" not in got and time.monotonic() < deadline:
            time.sleep(0.02)
        received = {x for x in got if x != "a0"}
        again.stop(drain=0.5)
        pub.stop(drain=0.5)
        return 200 - len(received)
    finally:
        b.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--subscribers", type=int, default=3)
    ap.add_argument("--kills", type=int, default=20)
    args = ap.parse_args()
    if mosquitto_binary() is None:
        print("mosquitto is not installed", file=sys.stderr)
        return 1
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    print(f"## QoS 1 throughput, 1 publisher × {args.subscribers} persistent subscribers\n")
    print("| Broker persistence | msgs/s published (each to every subscriber) |\n|---|---:|")
    for label, every, where in (
        ("saved once a second", False, None),
        ("saved on every change, state on disk", True, None),
        ("saved on every change, state in /dev/shm", True, shm),
    ):
        rate = throughput(every, where, args.messages, args.subscribers)
        print(f"| {label} | {rate:,.0f} |", flush=True)
    print(f"\n## SIGKILL right after the last PUBACK ({args.kills} rounds × 200 alerts)\n")
    print("| Publisher waits for | rounds with a loss | alerts lost |\n|---|---:|---:|")
    for label, barrier in (("PUBACK only", False), ("PUBACK + durability round trip", True)):
        losses = [kill_round(barrier) for _ in range(args.kills)]
        print(f"| {label} | {sum(1 for x in losses if x)} | {sum(losses)} |", flush=True)
    print(f"\nload: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
