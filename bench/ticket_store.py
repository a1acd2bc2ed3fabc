"""The ticket store on SQLite and on PostgreSQL: how fast it records diagnoses, and whether a
store held by another process for a long time loses any (issue 12 item 7, issue 14).

1. **Throughput** (no bus): N diagnoses over K episodes (a provisional and a final per alert,
   several alerts per episode) recorded one transaction each, as the ticket service does; prints
   diagnoses/s and the p50/p99 of one ``record_diagnosis`` call, per database.
2. **Held store** (``--hold S``, the live chain): a broker, the ticket service as a process, and
   another process holding the store's write lock for S seconds (default 60, the issue's case)
   while M diagnoses are published; prints published / stored / lost / doubled and how long the
   service took to catch up after the lock was released.

PostgreSQL: ``--pg URL`` uses that database (a fresh schema is made in it); otherwise, when the
PostgreSQL binaries are installed, a private server is started in a temp dir, as the tests do.

    python bench/ticket_store.py [--n 2000] [--hold 60] [--pg postgresql://…]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "tickets"), str(ROOT / "tests")]

from pg_server import PostgresServer, pg_bin_dir  # noqa: E402
from tickets_data import report  # noqa: E402

from engine.evaluation.scoring import percentile  # noqa: E402
from engine.tickets.store import TicketStore  # noqa: E402

CAUSES = ["bearing_wear", "clogging", "sensor_drift"]


def stream(n: int, episodes: int, tag: str) -> list:
    out = []
    for i in range(n // 2):
        e = i % episodes
        asset, alert = f"pump{e % 50:02d}", f"{tag}-A{i}"
        cause = CAUSES[e % 3]
        for stage in ("provisional", "final"):
            out.append(
                report(
                    diagnosis_id=f"{alert}-{stage[0]}",
                    alert_id=alert,
                    asset=asset,
                    root_cause=cause,
                    stage=stage,
                )
            )
    return out


def throughput(target: str | Path, n: int, episodes: int) -> str:
    store = TicketStore(target)
    msgs = stream(n, episodes, "T")
    took = []
    start = time.perf_counter()
    for m in msgs:
        t0 = time.perf_counter()
        store.record_diagnosis(m, origin="ticket")
        took.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    counts = store.counts()
    store.close_db()
    q = [(percentile(took, p) or 0.0) for p in range(1, 100)]
    return (
        f"{len(msgs)} diagnoses, {counts['open'] + counts['approved']} tickets: "
        f"{len(msgs) / wall:7.0f} diagnoses/s   p50 {q[49] * 1000:6.2f} ms   "
        f"p99 {q[98] * 1000:6.2f} ms"
    )


HOLD = {
    "sqlite": (
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\nsys.stdin.readline()\n"
    ),
    "postgresql": (
        "import psycopg, sys\nc = psycopg.connect(sys.argv[1], autocommit=True)\n"
        "c.execute('BEGIN')\nc.execute('LOCK TABLE diagnoses IN EXCLUSIVE MODE')\n"
        "print('locked', flush=True)\nsys.stdin.readline()\n"
    ),
}


def held(kind: str, target: str | Path, hold_s: float, count: int) -> str:
    from service_procs import ServiceProc, service_env

    from engine.bus.broker import AmqttBroker, MosquittoBroker, mosquitto_binary
    from engine.bus.client import BusClient
    from engine.paths import var_dir

    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    broker = MosquittoBroker(workdir=work / "broker") if mosquitto_binary() else AmqttBroker()
    broker.start()
    TicketStore(target).close_db()
    env = service_env(work / "var", broker.url, CONTROLROOM_DB=str(target))
    svc = ServiceProc("ticket", env).start()
    pub = BusClient(broker.url, f"bench-pub-{os.getpid()}", "bench", var=var_dir(os.environ))
    pub.start(wait=10)
    store = TicketStore(target)
    msgs = stream(count, 10, "H")
    try:
        time.sleep(1.0)  # the service's subscription is acknowledged (bench, not a test)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD[kind], str(target)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        for m in msgs:
            pub.publish(m)
        pub.flush(10)
        degraded = svc.health().get("degraded")
        time.sleep(hold_s)
        still = svc.health().get("degraded")
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()
        holder.wait(10)
        released = time.monotonic()
        while store.counts()["diagnoses"] < len(msgs) and time.monotonic() - released < 60:
            time.sleep(0.05)
        caught_up = time.monotonic() - released
        ids = [d for t in store.tickets() for d in t.diagnosis_ids]
        stored = store.counts()["diagnoses"]
        lost = len({m.diagnosis_id for m in msgs} - set(ids))
        doubled = len(ids) - len(set(ids))
        return (
            f"held {hold_s:.0f} s: published {len(msgs)}  stored {stored}  lost {lost}  "
            f"doubled {doubled}  caught up {caught_up:.2f} s after release\n"
            f"      /health during the hold: {degraded!r}\n"
            f"      /health at the end of the hold: {still!r}"
        )
    finally:
        store.close_db()
        svc.stop()
        pub.stop(drain=1)
        broker.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="diagnoses for the throughput run")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--hold", type=float, default=60.0, help="seconds the lock is held (0: skip)")
    ap.add_argument("--held-count", type=int, default=20, help="diagnoses published meanwhile")
    ap.add_argument("--pg", help="a PostgreSQL URL (default: start a private server)")
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    server = None
    pg_url = args.pg
    if pg_url is None and pg_bin_dir() is not None:
        server = PostgresServer(pg_bin_dir()).start()  # type: ignore[arg-type]
    try:
        targets: dict[str, str | Path] = {"sqlite": Path(tempfile.mkdtemp()) / "bench.db"}
        if server is not None or pg_url:
            targets["postgresql"] = server.new_schema() if server else pg_url
        else:
            print("postgresql: skipped (no --pg URL and no PostgreSQL binaries)")
        for kind, target in targets.items():
            print(f"{kind:10s}  throughput  {throughput(target, args.n, args.episodes)}")
        if args.hold > 0:
            for kind in targets:
                target = (
                    Path(tempfile.mkdtemp()) / "held.db"
                    if kind == "sqlite"
                    else (server.new_schema() if server else f"{pg_url}")
                )
                print(f"{kind:10s}  {held(kind, target, args.hold, args.held_count)}")
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
