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
- RSS per service, split into RssAnon (heap, allocator arenas, stacks: what the process owns)
  and RssFile + RssShmem (code and files mapped, paged in on first touch, shared, reclaimable):
  peaks, the median of RssAnon in each quarter of the run, and the **growth verdict** on
  RssAnon: its slope over the second half of the run, in MiB/min, fitted within each process's life
  (a killed service restarts small: the fit compares a process only with itself) and only after
  that process has run ``--warmup`` s. Flat: within two standard errors of zero, or under
  ``FLAT_MIB_PER_MIN``; anything else is printed as GROWING.
- with ``--trace-memory``: each service runs under ``tracemalloc`` (``bench/soak_trace``, put on
  the services' PYTHONPATH: no service code knows) and the allocation sites that grew in each
  process from its warm-up to its last snapshot are listed per service: what grows, by line.
- with ``--probe-memory`` (cheap, no tracemalloc; same ``soak_trace`` hook): where each service's
  RssAnon is — bytes malloc has handed out, malloc's free lists (fragmentation), blocks mapped
  alone, SQLite's own memory, thread stacks and the rest (Python's object arenas) — with each
  part's slope fitted as the verdict is: which part grows.
- beside the verdict, each service's inbox backlog over the fitted window (``queue_depth`` and
  ``queue_bytes`` from ``/health`` every ``DEPTH_EVERY_S``) and the RssAnon slope fitted the same
  way on the samples taken while the inbox was empty (both depth polls around the sample at 0).
  A service that cannot keep up holds the telemetry it is behind on (up to the bus client's
  ``INBOX_LIMIT_BYTES``): that memory follows the backlog, not time, and the verdict alone
  cannot tell the two apart. The verdict is still the one fitted on every sample; the second
  slope is printed beside it, never instead of it. The raw series are written to
  ``var/soak-series.json``.

Target: 0 lost, 0 doubled, memory flat. Prints `uptime` load beside the figures; the rates
depend on the machine, the counts must not.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import math
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
from engine.settings import process_environ  # noqa: E402
from engine.tickets.store import TicketStore  # noqa: E402

KILLABLE = ("monitor", "diagnosis", "ticket", "review", "simulator")
FLAT_MIB_PER_MIN = 0.05
"""RSS moves in pages and allocator arenas: a second-half slope under 3 MiB an hour, or within
two standard errors of zero, counts as flat."""
MIN_FIT_S = 180.0
"""A process is judged only on at least this long after its warm-up (in the second half): a
shorter life is mostly warm-up (buffers sized on first sight of each pump, imports on first use)."""
TRACE_DIR = Path(__file__).resolve().parent / "soak_trace"
DEPTH_EVERY_S = 4.0
"""How often each service's inbox depth is read from /health (beside RSS every 2 s)."""


def pooled_slope(segments: list[list[tuple[float, float]]]) -> tuple[float, float, int]:
    """One slope for several runs of the same service (each (t s, KiB) list one process): fitted
    within each process (its own mean removed), so a restart's drop is no trend. Returns (slope,
    standard error) in MiB/min and the number of samples used (NaN below 3 + one per process)."""
    sxx = sxy = 0.0
    fits: list[tuple[list[tuple[float, float]], float, float]] = []
    for seg in segments:
        if len(seg) < 2:
            continue
        tm = statistics.fmean(t for t, _ in seg)
        ym = statistics.fmean(y for _, y in seg)
        sxx += sum((t - tm) ** 2 for t, _ in seg)
        sxy += sum((t - tm) * (y - ym) for t, y in seg)
        fits.append((seg, tm, ym))
    n = sum(len(seg) for seg, _, _ in fits)
    dof = n - len(fits) - 1
    if not sxx or dof < 1:
        return math.nan, math.nan, n
    slope = sxy / sxx
    rss = sum((y - ym - slope * (t - tm)) ** 2 for seg, tm, ym in fits for t, y in seg)
    per_min = 60 / 1024
    return slope * per_min, math.sqrt(rss / dof / sxx) * per_min, n


def growth(samples: list[tuple[float, int, int]], run_s: float,
           warmup_s: float) -> tuple[float, float, float]:  # fmt: skip
    """(slope, standard error, process-minutes judged) of one (t s, pid, KiB) series over the
    second half, fitted within each process after its warm-up (NaN: nothing lived long enough)."""
    born: dict[int, float] = {}
    for t, pid, _ in samples:
        born.setdefault(pid, t)
    segments: dict[int, list[tuple[float, float]]] = {}
    for t, pid, kib in samples:
        if t >= run_s / 2 and t - born[pid] >= warmup_s:
            segments.setdefault(pid, []).append((t, float(kib)))
    judged = [seg for seg in segments.values() if seg[-1][0] - seg[0][0] >= MIN_FIT_S]
    slope, err, _ = pooled_slope(judged)
    return slope, err, sum(seg[-1][0] - seg[0][0] for seg in judged) / 60


def memory_table(mem: dict[str, list[tuple[float, int, int, int]]], run_s: float,
                 warmup_s: float) -> list[str]:  # fmt: skip
    """Per service: peaks, quarter medians of RssAnon, and the growth verdict on RssAnon (what
    the process owns: its heap, arenas, stacks). RssFile (+ RssShmem) is shared code and
    mapped files, paged in as they are first touched and out again under pressure; its slope is
    printed beside, not judged."""
    lines = [
        "| Service | peak RSS MiB | peak anon | peak file | anon median Q1 | Q2 | Q3 | Q4 "
        "| processes | anon growth, 2nd half after warm-up (MiB/min) | file growth | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, samples in sorted(mem.items()):
        quarters = []
        for q in range(4):
            part = [anon for t, _, anon, _ in samples if q * run_s / 4 <= t < (q + 1) * run_s / 4]
            quarters.append(f"{statistics.median(part) / 1024:.1f}" if part else "—")
        anon = [(t, pid, a) for t, pid, a, _ in samples]
        files = [(t, pid, f) for t, pid, _, f in samples]
        slope, err, minutes = growth(anon, run_s, warmup_s)
        file_slope, _, _ = growth(files, run_s, warmup_s)
        if math.isnan(slope):
            verdict = (f"not judged: no process lived {warmup_s:g} s + {MIN_FIT_S:g} s in the "
                       "second half (fewer kills, or a longer run)")  # fmt: skip
            grown = file_grown = "—"
        else:
            flat = abs(slope) <= max(2 * err, FLAT_MIB_PER_MIN)
            verdict = "flat" if flat else ("**GROWING**" if slope > 0 else "shrinking")
            grown = f"{slope:+.3f} ± {err:.3f} ({minutes:.1f} process-min)"
            file_grown = f"{file_slope:+.3f}"
        peak = max(a + f for _, _, a, f in samples) / 1024
        peak_anon = max(a for _, _, a, _ in samples) / 1024
        peak_file = max(f for _, _, _, f in samples) / 1024
        lines.append(
            f"| {name} | {peak:.1f} | {peak_anon:.1f} | {peak_file:.1f} | {' | '.join(quarters)} "
            f"| {len({pid for _, pid, _, _ in samples})} | {grown} | {file_grown} | {verdict} |"
        )
    return lines


def backlog_table(mem: dict[str, list[tuple[float, int, int, int]]],
                  depths: dict[str, list[tuple[float, int, int]]], run_s: float,
                  warmup_s: float) -> list[str]:  # fmt: skip
    """Per service: its inbox over the verdict's window (second half) and the RssAnon slope
    fitted as the verdict is, on the samples taken while the inbox was empty: both depth polls
    around the sample (the one before, the one after) read 0."""
    lines = [
        "| Service | inbox, 2nd half: max messages | max MiB | polls not empty "
        "| anon growth while the inbox was empty (MiB/min) | samples kept |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, samples in sorted(mem.items()):
        polls = sorted(depths.get(name, []))
        if not polls:
            continue
        late = [(d, b) for t, d, b in polls if t >= run_s / 2]
        busy = sum(1 for d, _ in late if d)
        times = [t for t, _, _ in polls]
        kept = [(t, pid, a) for t, pid, a, _ in samples if _inbox_empty(polls, times, t)]
        slope, err, minutes = growth(kept, run_s, warmup_s)
        n = sum(1 for t, _, _ in kept if t >= run_s / 2)
        fitted = (
            "—" if math.isnan(slope) else f"{slope:+.3f} ± {err:.3f} ({minutes:.1f} process-min)"
        )
        lines.append(
            f"| {name} | {max((d for d, _ in late), default=0)} "
            f"| {max((b for _, b in late), default=0) / 2**20:.1f} "
            f"| {busy} of {len(late)} | {fitted} | {n} |"
        )
    return lines


def _inbox_empty(polls: list[tuple[float, int, int]], times: list[float], t: float) -> bool:
    """Both depth polls around ``t`` (the last before, the first after) read 0."""
    i = bisect.bisect_left(times, t)
    around = polls[max(0, i - 1) : i + 1]
    return bool(around) and all(d == 0 for _, d, _ in around)


def traced_growth(trace_dir: Path, top: int = 6) -> list[str]:
    """Per service, the allocation sites that grew most from each process's warm-up snapshot
    to its last one (summed over its processes), named by their innermost project frame."""
    import tracemalloc

    root = str(ROOT)
    per_service: dict[str, dict[str, list[int]]] = {}
    spans: dict[str, float] = {}
    for base in sorted(trace_dir.glob("*.base.snap")):
        stem = base.name.removesuffix(".base.snap")
        last = trace_dir / f"{stem}.last.snap"
        if not last.exists():
            continue
        service = stem.rsplit("-", 1)[0]
        log = (trace_dir / f"{stem}.traced").read_text().split()
        spans[service] = spans.get(service, 0.0) + (float(log[-2]) - float(log[0]) if log else 0)
        diff = tracemalloc.Snapshot.load(str(last)).compare_to(
            tracemalloc.Snapshot.load(str(base)), "traceback"
        )
        sites = per_service.setdefault(service, {})
        for stat in diff:
            frames = list(stat.traceback)  # oldest first
            if any("importlib" in f.filename for f in frames):
                where = "(modules first imported after warm-up: code, once)"
                acc = sites.setdefault(where, [0, 0])
                acc[0] += stat.size_diff
                acc[1] += stat.count_diff
                continue
            here = frames[-1]
            ours = next((f for f in reversed(frames) if root in f.filename), None)
            where = f"{here.filename.replace(root + '/', '')}:{here.lineno}"
            if root not in here.filename:
                where = f"{Path(here.filename).name}:{here.lineno}"
            if ours is not None and ours is not here:
                where += f" (from {ours.filename.replace(root + '/', '')}:{ours.lineno})"
            acc = sites.setdefault(where, [0, 0])
            acc[0] += stat.size_diff
            acc[1] += stat.count_diff
    lines = []
    for service, sites in sorted(per_service.items()):
        total = sum(size for size, _ in sites.values())
        lines.append(
            f"- {service}: traced Python memory {total / 1024:+.0f} KiB over "
            f"{spans.get(service, 0) / 60:.1f} process-minutes after warm-up; top sites:"
        )
        for where, (size, count) in sorted(sites.items(), key=lambda kv: -kv[1][0])[:top]:
            lines.append(f"    {size / 1024:+9.1f} KiB {count:+7d} blocks  {where}")
    return lines or ["- (no process lived past its warm-up snapshot)"]


PROBED = ("rss_anon", "malloc_used", "malloc_free", "malloc_mmapped", "sqlite", "stacks", "rest")


def probed_growth(probe_dir: Path, run_s: float, warmup_s: float) -> list[str]:
    """Per service, where its RssAnon went (``--probe-memory``): each part's slope over the
    second half after warm-up (as the verdict) and its value at the end of the longest life.
    ``rest`` is RssAnon less malloc's heap and the thread stacks: Python's object arenas."""
    series: dict[str, dict[str, list[tuple[float, int, int]]]] = {}
    last: dict[str, tuple[float, dict[str, int]]] = {}
    for path in sorted(probe_dir.glob("*.probe")):
        service, pid = path.stem.rsplit("-", 1)
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            malloc = rec["malloc_used"] + rec["malloc_free"] + rec["malloc_mmapped"]
            rec["rest"] = rec["rss_anon"] - malloc - rec["stacks"]
            for part in PROBED:
                series.setdefault(service, {}).setdefault(part, []).append(
                    (rec["t"], int(pid), rec[part])
                )
            if rec["t"] > last.get(service, (-1.0, {}))[0]:
                last[service] = (rec["t"], rec)
    lines = ["| Service | " + " | ".join(PROBED) + " |", "|---|" + "---:|" * len(PROBED)]
    for service, parts in sorted(series.items()):
        cells = []
        for part in PROBED:
            slope, err, _ = growth(parts[part], run_s, warmup_s)
            cells.append(f"{last[service][1][part] / 1024:.1f} MiB, {slope:+.3f} ± {err:.3f}")
        lines.append(f"| {service} | " + " | ".join(cells) + " |")
    return lines


def rss_kib(pid: int) -> tuple[int, int] | None:
    """(RssAnon, RssFile + RssShmem) in KiB; None once the process is gone. Their sum is VmRSS."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem"):
                fields[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if len(fields) < 3:
        return None
    return fields["RssAnon"], fields["RssFile"] + fields["RssShmem"]


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
                var=stack.var,
                credentials=stack.credentials_file,
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
    ap.add_argument("--warmup", type=float, default=60.0,
                    help="s of each process's life left out of the growth fit")  # fmt: skip
    ap.add_argument("--trace-memory", action="store_true",
                    help="services under tracemalloc: what grew, per service")  # fmt: skip
    ap.add_argument("--probe-memory", action="store_true",
                    help="where each service's RssAnon is: malloc used/free, SQLite, stacks, "
                         "Python (cheap; bench/soak_trace)")  # fmt: skip
    args = ap.parse_args()

    var = Path(args.var) if args.var else Path(tempfile.mkdtemp(prefix="controlroom-soak-"))
    rng = random.Random(args.seed)
    trace_dir = var / "trace"
    if args.trace_memory:  # every service started from here loads bench/soak_trace/sitecustomize
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(TRACE_DIR), os.environ.get("PYTHONPATH")) if p
        )
        os.environ["SOAK_TRACE_DIR"] = str(trace_dir)
        os.environ["SOAK_TRACE_WARMUP_S"] = str(args.warmup)
    if args.probe_memory:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(TRACE_DIR), os.environ.get("PYTHONPATH")) if p
        )
        os.environ["SOAK_PROBE_DIR"] = str(var / "probe")
        os.environ.setdefault("SOAK_TRACE_PERIOD_S", "10")
    stack = Stack(environ=process_environ(), broker_url="embedded", ports="auto", var=var,
                  supervise=True, client_prefix=f"soak{uuid.uuid4().hex[:6]}",
                  startup_timeout=180 if args.trace_memory else 60)  # fmt: skip
    print(f"soak: {args.assets} pumps, {args.minutes:g} min, state in {var}", flush=True)
    stack.start()
    sim = stack.urls["simulator"]
    junk = Junk(stack, args.junk_per_s)
    junk.start()
    rss: dict[str, list[tuple[float, int, int, int]]] = {}
    """Per part: (s since the start, pid, RssAnon KiB, RssFile + RssShmem KiB)."""
    kills: dict[str, int] = {}
    depths: dict[str, list[tuple[float, int, int]]] = {}
    """Per service: (s since the start, messages waiting in its bus client's inbox, what they
    hold in bytes)."""
    next_depths = 0.0
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
                    rss.setdefault(name, []).append((now - t0, pid, *kib))
            if now >= next_depths:  # backlog beside RSS: a queue that grows is not a leak
                next_depths = now + DEPTH_EVERY_S
                for name in stack.services:
                    h = health(stack, name)
                    if h is not None:
                        depths.setdefault(name, []).append(
                            (now - t0, int(h["queue_depth"]), int(h["queue_bytes"]))
                        )
            if stack.gave_up:
                print(f"soak: supervisor gave up: {stack.gave_up}", flush=True)
                break
            time.sleep(2.0)
        run_s = time.monotonic() - t0
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
        finals = {n: health(stack, n) or {} for n in stack.services}
        dead = {n: h.get("dead_letters") for n, h in finals.items()}
        dropped = {n: h.get("counters", {}).get("inbox_dropped") for n, h in finals.items()}
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
    print("| telemetry dropped behind (`inbox_dropped`, last processes) | "
          f"{', '.join(f'{k} {v}' for k, v in dropped.items())} |")  # fmt: skip
    print(f"\nRSS sampled every 2 s as RssAnon (what the process owns) and RssFile + RssShmem "
          f"(mapped code and files); the verdict is on RssAnon, fitted over "
          f"{run_s / 2:.0f}-{run_s:.0f} s, within each process, after its first {args.warmup:g} s, "
          f"on processes that lived {MIN_FIT_S:g} s more; flat: |slope| <= max(2 SE, "
          f"{FLAT_MIB_PER_MIN} MiB/min)\n")  # fmt: skip
    print("\n".join(memory_table(rss, run_s, args.warmup)))
    print(
        f"\nBacklog beside the verdict (inbox from /health every {DEPTH_EVERY_S:g} s; the "
        "slope fitted as the verdict's, on the samples taken while the inbox was empty):\n"
    )
    print("\n".join(backlog_table(rss, depths, run_s, args.warmup)))
    print(f"\nInbox queue depth per service (median per quarter, max; from /health every "
          f"{DEPTH_EVERY_S:g} s):")  # fmt: skip
    for name, samples in sorted(depths.items()):
        quarters = []
        for q in range(4):
            part = [d for t, d, _ in samples if q * run_s / 4 <= t < (q + 1) * run_s / 4]
            quarters.append(f"{statistics.median(part):.0f}" if part else "—")
        print(f"- {name}: {' / '.join(quarters)}, max {max(d for _, d, _ in samples)}")
    with contextlib.suppress(OSError):
        (var / "soak-series.json").write_text(json.dumps(
            {"run_s": run_s, "warmup_s": args.warmup, "rss": rss, "depths": depths}))  # fmt: skip
    if args.trace_memory:
        print("\nWhat grew (tracemalloc, per service, warm-up snapshot -> last snapshot; tracing "
              "slows every service and its own records count in RSS: take the verdict above "
              "from a run without --trace-memory):")  # fmt: skip
        print("\n".join(traced_growth(trace_dir)))
    if args.probe_memory:
        print("\nWhere RssAnon is (per service: value at the end of the longest life, MiB; "
              "slope over the second half after warm-up, MiB/min):\n")  # fmt: skip
        print("\n".join(probed_growth(var / "probe", run_s, args.warmup)))
    print(f"\nload: {load}")
    if lost:
        print(f"lost: {sorted(lost)[:20]}")
    if left:
        print(f"not clean at stop: {left}")
    return 0 if not lost and not doubled_rows else 1


if __name__ == "__main__":
    sys.exit(main())
