"""Soak: the live plant for M minutes with N pumps, while services and the broker are killed and
junk is published, then count what reached the ticket store.

    python bench/soak.py [--assets 20] [--minutes 5] [--speed 600] [--kill-every 30]
                         [--broker-kill-every 90] [--junk-per-s 20] [--var DIR]

What it does: `Stack(supervise=True)` on an embedded broker with credentials and ACLs (what
`controlroom up` runs); the simulator plays a fleet (`--assets`, faults spread across the pumps,
contract C7) and starts it again whenever it ends; every `--kill-every` s a random service gets
SIGKILL, every `--broker-kill-every` s the broker does (the supervisor restarts them); a thread
publishes malformed messages (bad JSON, NaN, 1e200, deep JSON, oversize) with real identities.
At the end it stops the simulator, lets everything drain and prints:

- diagnoses published (committed by the diagnosis service, from its log), stored (rows in the
  ticket store's diagnoses table), **lost** (published, never stored), **doubled** (one diagnosis
  stored twice), tickets, and the alert episodes that opened more than one ticket (the ticket
  lifecycle's doing when a final report revises the cause, reported so it can be judged);
- restarts survived (per part, from `var/stack.json`), dead letters per service;
- RSS per service: peak, and the median of the first and the last quarter of the run (memory
  flat: the last quarter no higher than the first, within noise).

Target: 0 lost, 0 doubled, memory flat. Prints `uptime` load beside the figures; the rates
depend on the machine, the counts must not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.bus.broker import MosquittoBroker  # noqa: E402
from engine.bus.client import BusClient  # noqa: E402
from engine.services.stack import Stack  # noqa: E402
from engine.tickets.store import TicketStore  # noqa: E402

KILLABLE = ("monitor", "diagnosis", "ticket", "review", "simulator")


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def junk_payloads() -> list[bytes]:
    base = {"msg_id": "junk", "asset": "pump01", "seq": 1, "ts": 1.0}
    return [
        b"{not json",
        b"[1, 2, 3]",
        b'{"msg_id":"j","asset":"pump01","seq":0,"ts":0,"signals":{"flow":NaN}}',
        json.dumps({**base, "signals": {"flow": 1e200}}).encode(),
        b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b"x" * 300_000,
        b"\xff\xfe not utf-8",
    ]


class Junk(threading.Thread):
    """Malformed traffic from identities that may publish on those topics."""

    def __init__(self, stack: Stack, per_s: float) -> None:
        super().__init__(name="junk", daemon=True)
        assert stack.broker is not None
        self.per_s = per_s
        self.sent = 0
        self.halt = threading.Event()
        self.clients = {
            kind: BusClient(
                stack.broker.url,
                f"soak-junk-{kind}-{uuid.uuid4().hex[:6]}",
                f"soak-junk-{kind}",
                identity=who,
                persistent=False,
            )
            for kind, who in (("telemetry", "simulator"), ("alerts", "monitor"))
        }

    def run(self) -> None:
        for c in self.clients.values():
            c.start()
        payloads = junk_payloads()
        rng = random.Random(7)
        while not self.halt.wait(1.0 / self.per_s if self.per_s else 3600):
            kind = rng.choice(list(self.clients))
            client = self.clients[kind]
            if client.connected:
                topic = f"{kind}/pump{rng.randint(1, 9):02d}"
                qos = 1 if kind == "alerts" else 0
                client._mqtt.publish(topic, rng.choice(payloads), qos=qos)
                self.sent += 1

    def stop(self) -> None:
        self.halt.set()
        self.join(5)
        for c in self.clients.values():
            c.stop(drain=1)


def logged_diagnoses(var: Path) -> set[tuple[str, str]]:
    out = set()
    path = var / "logs" / "diagnosis.jsonl"
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "diagnosis":
            out.add((rec["ids"]["asset"], rec["ids"]["diagnosis_id"]))
    return out


def stored_diagnoses(var: Path) -> tuple[list[tuple[str, str]], list[Any], int]:
    """(asset, diagnosis_id) rows, tickets, and alert episodes that opened 2+ tickets."""
    store = TicketStore(var / "controlroom.db")
    try:
        with store.transaction() as tx:
            rows = [(r[0], r[1]) for r in tx.conn.all("SELECT asset, diagnosis_id FROM diagnoses")]
            opened = tx.conn.all(
                "SELECT asset, alert_id, COUNT(DISTINCT ticket_id) FROM diagnoses"
                " WHERE outcome = 'created' GROUP BY asset, alert_id"
            )
        return rows, store.tickets(), sum(1 for r in opened if int(r[2]) > 1)
    finally:
        store.close_db()


def health(stack: Stack, name: str) -> dict[str, Any] | None:
    try:
        return httpx.get(stack.urls[name] + "/health", timeout=3).json()  # type: ignore[no-any-return]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assets", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--speed", type=float, default=600.0)
    ap.add_argument("--scenario", default="sudden_clog_and_drift")
    ap.add_argument("--kill-every", type=float, default=30.0, help="s between service kills")
    ap.add_argument("--broker-kill-every", type=float, default=90.0, help="s between broker kills")
    ap.add_argument("--junk-per-s", type=float, default=20.0)
    ap.add_argument("--var", help="state directory (default: a fresh temporary one)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    var = Path(args.var) if args.var else Path(tempfile.mkdtemp(prefix="controlroom-soak-"))
    os.environ["CONTROLROOM_VAR"] = str(var)  # this process reads the same credentials
    rng = random.Random(args.seed)
    stack = Stack(broker_url="embedded", ports="auto", var=var, supervise=True,
                  client_prefix=f"soak{uuid.uuid4().hex[:6]}")  # fmt: skip
    print(f"soak: {args.assets} pumps, {args.minutes:g} min, state in {var}", flush=True)
    stack.start()
    sim = stack.urls["simulator"]
    junk = Junk(stack, args.junk_per_s)
    junk.start()
    rss: dict[str, list[int]] = {}
    kills: dict[str, int] = {}
    runs = 0
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    next_kill = t0 + args.kill_every
    next_broker_kill = t0 + args.broker_kill_every
    try:
        while time.monotonic() < end:
            st = None
            with contextlib.suppress(httpx.HTTPError, ValueError):  # being restarted
                st = httpx.get(sim + "/scenario/status", timeout=5).json()
            if st is not None and (not st["loaded"] or st["done"] or not st["running"]):
                r = httpx.post(sim + "/scenario/load", timeout=30,
                               json={"name": args.scenario, "assets": args.assets,
                                     "seed": args.seed + runs})  # fmt: skip
                if r.is_success:
                    httpx.post(sim + "/scenario/start", json={"speed": args.speed}, timeout=10)
                    runs += 1
            now = time.monotonic()
            if now >= next_kill:
                victim = rng.choice(KILLABLE)
                pid = stack.pids.get(victim)
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    kills[victim] = kills.get(victim, 0) + 1
                next_kill = now + args.kill_every
            broker = getattr(stack.broker_handle, "broker", None)
            if now >= next_broker_kill and isinstance(broker, MosquittoBroker) and broker.pid:
                os.kill(broker.pid, signal.SIGKILL)
                kills["broker"] = kills.get("broker", 0) + 1
                next_broker_kill = now + args.broker_kill_every
            for name, pid in {**stack.pids, **({"broker": broker.pid} if isinstance(
                    broker, MosquittoBroker) and broker.pid else {})}.items():  # fmt: skip
                kib = rss_kib(pid)
                if kib:
                    rss.setdefault(name, []).append(kib)
            if stack.gave_up:
                print(f"soak: supervisor gave up: {stack.gave_up}", flush=True)
                break
            time.sleep(2.0)
        print("soak: stopping the simulator and draining…", flush=True)
        junk.stop()
        httpx.post(sim + "/scenario/stop", timeout=30)
        published = logged_diagnoses(var)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            published = logged_diagnoses(var)
            rows, _, _ = stored_diagnoses(var)
            d = health(stack, "diagnosis")
            t = health(stack, "ticket")
            idle = (
                d is not None and t is not None and not d["queue_depth"]
                and not d["outbox"]["queued"] and not d["outbox"]["in_flight"]
                and not t["queue_depth"]
            )  # fmt: skip
            if idle and published <= set(rows):
                break
            time.sleep(1.0)
        rows, tickets, reopened = stored_diagnoses(var)
        status = stack.status()
        dead = {n: (health(stack, n) or {}).get("dead_letters") for n in stack.services}
    finally:
        left = stack.stop()
    stored = set(rows)
    lost = published - stored
    doubled_rows = len(rows) - len(stored)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    print(f"\n## Soak — {args.assets} pumps, {args.minutes:g} min ×{args.speed:g}, "
          f"{runs} scenario run(s)\n")  # fmt: skip
    print("| Measure | Value |\n|---|---:|")
    print(f"| diagnoses published | {len(published)} |")
    print(f"| diagnoses stored | {len(stored)} |")
    print(f"| **lost** | **{len(lost)}** |")
    print(f"| **doubled** (a diagnosis stored twice) | **{doubled_rows}** |")
    print(f"| alert episodes that opened 2+ tickets (a final revising the cause) | {reopened} |")
    print(f"| tickets | {len(tickets)} |")
    print(f"| junk messages sent | {junk.sent} |")
    print(f"| kills (SIGKILL) | {', '.join(f'{k} {v}' for k, v in sorted(kills.items()))} |")
    restarts = {n: p.restarts for n, p in status.parts.items() if p.restarts}
    print(f"| restarts survived | {', '.join(f'{k} {v}' for k, v in sorted(restarts.items()))} |")
    print(f"| supervisor gave up | {status.gave_up or 'no'} |")
    print(f"| dead letters | {', '.join(f'{k} {v}' for k, v in dead.items())} |")
    print("\n| Service | peak RSS MiB | first-quarter median | last-quarter median |")
    print("|---|---:|---:|---:|")
    for name, values in sorted(rss.items()):
        q = max(1, len(values) // 4)
        first, last = statistics.median(values[:q]), statistics.median(values[-q:])
        print(f"| {name} | {max(values) / 1024:.0f} | {first / 1024:.0f} | {last / 1024:.0f} |")
    print(f"\nload: {load}")
    if lost:
        print(f"lost: {sorted(lost)[:20]}")
    if left:
        print(f"not clean at stop: {left}")
    return 0 if not lost and not doubled_rows else 1


if __name__ == "__main__":
    sys.exit(main())
