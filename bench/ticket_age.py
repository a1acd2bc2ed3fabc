"""What one more diagnosis costs on an old ticket (issue 12): N diagnoses, each a new alert of
the same asset and cause, so all of them fold into one ticket, recorded one transaction each as
the ticket service does. At checkpoints it prints the ticket's stored document (bytes), the
median time of one ``record_diagnosis`` over the last 100 calls (wall, mostly the commit's
fsync and the machine's load; and the process's CPU time), the peak memory Python
allocated during one call (tracemalloc, 20 calls, median) and the process's RssAnon.

Before the ``ticket_ids`` rows the document held every id, so every column grew with the
ticket's age; now the document keeps a tail and the columns stay flat. The script reads the
document with SQL only, so it runs on an older checkout too (``cd`` there and give its path to
``--root``) for the comparison.

    python bench/ticket_age.py [--n 5000] [--pg postgresql://…] [--root DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def run(target: str | Path, n: int, checkpoints: list[int]) -> None:
    from tickets_data import report

    from engine.tickets.store import TicketStore

    store = TicketStore(target)
    times: list[float] = []
    cpu: list[float] = []
    print(
        f"{'diagnoses':>9} {'doc bytes':>10} {'ms/diag p50':>11} {'CPU ms p50':>10} "
        f"{'peak KiB/diag':>13} "
        f"{'RssAnon MiB':>11}"
    )
    try:
        for i in range(1, n + 1):
            r = report(diagnosis_id=f"D{i}", alert_id=f"A{i}")
            t0, c0 = time.perf_counter(), time.process_time()
            store.record_diagnosis(r, origin="ticket")
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if i % 500 == 0:  # the ticket service's outbox publishes and deletes these
                with store.transaction() as tx:
                    tx.conn.execute("DELETE FROM bus_outbox")
            if i not in checkpoints:
                continue
            peaks = []
            tracemalloc.start()
            for k in range(20):
                before = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                store.record_diagnosis(report(diagnosis_id=f"D{i}-p{k}", alert_id=f"A{i}-p{k}"))
                peaks.append(tracemalloc.get_traced_memory()[1] - before)
            tracemalloc.stop()
            with store.transaction() as tx:
                doc = tx.conn.scalar("SELECT doc FROM tickets WHERE ticket_id = 'T-0001'")
            print(
                f"{i:>9} {len(doc):>10} {statistics.median(times[-100:]) * 1000:>11.2f} "
                f"{statistics.median(cpu[-100:]) * 1000:>10.2f} "
                f"{statistics.median(peaks) / 1024:>13.0f} {_rss_anon_kib() / 1024:>11.1f}",
                flush=True,
            )
    finally:
        store.close_db()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--pg", help="a PostgreSQL URL (a fresh schema is made in it)")
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose engine to run")
    args = ap.parse_args()
    root = args.root.resolve()
    sys.path[:0] = [str(root), str(root / "tests" / "tickets"), str(root / "tests")]
    import engine

    print(f"engine: {Path(engine.__file__).parent}")
    checkpoints = sorted({c for c in (100, 1000, 2500, args.n) if c <= args.n})
    if args.pg:
        import uuid

        import psycopg

        name = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg, autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {name}")
        try:
            run(f"{args.pg}?options=-csearch_path%3D{name}", args.n, checkpoints)
        finally:
            with psycopg.connect(args.pg, autocommit=True) as c:
                c.execute(f"DROP SCHEMA {name} CASCADE")
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(Path(tmp) / "tickets.db", args.n, checkpoints)


if __name__ == "__main__":
    main()
