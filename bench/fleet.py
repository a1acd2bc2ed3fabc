"""Fleet scale: the plant chain for N pumps on one machine (issue 14).

Part ``replay`` (this branch): simulator → monitor → diagnosis for a fleet of N pumps in
lock-step, no broker, one process per N (so each RSS is its own), and prints per N:

- simulated seconds per wall second (the fleet's clock: N samples per simulated second at 1 Hz);
- CPU µs per sample (process time / samples: the figure that measures the code on a shared
  machine) and how it splits between the simulator, the monitor and the diagnosis agent;
- RSS at the end and peak, in total and per pump.

Target (issue 14): 1,000 pumps ≤ 600 MB in total, ≥ 50× real time. The fleet is
``engine.plant.fleet.fleet_scenarios`` around a shift with manoeuvres, so faults strike across the
fleet and every path (episodes, pending diagnoses) runs. The monitor's batch entry point
(``Monitor.feed_batch``, the vectorised monitor) is used when it exists; the output says which.

Part ``live``: the five services on their own Mosquitto with 1,000 pumps × 1 Hz in real time
for ``--minutes`` (zero loss, p99 telemetry→alert latency, RSS per service). Part ``replicas``:
1 vs 2 replicas of the monitor and of the diagnosis draining the same backlog on one broker in
the same run (throughput ratio; target ≥ 1.8×). Part ``simulator``: the simulator service flat
out (samples/s, target ≥ 20k) and the seconds a SIGTERM takes to end it then (target ≤ 2 s).
Part ``diagnosis``: CPU per alert commit of the diagnosis service with N pumps pending (per-pump
state rows vs the whole state it used to write). Part ``monitor``: the vectorised monitor alone
at 1,000 pumps, CPU per sample after the warm-up,
for a fault-free fleet and for one mostly in alarm (target ≥ 300k samples/s per core).
Each prints the machine's load with every figure.

    python bench/fleet.py                        # N = 1, 10, 100, 1000; 4,000 simulated s each
    python bench/fleet.py --sizes 1000 --seconds 3700
    python bench/fleet.py --part replay --sizes 10,100
    python bench/fleet.py --sizes 1000 --procs 2     # two processes, 500 pumps each
    python bench/fleet.py --part live                # 1,000 pumps x 1 Hz, 5 minutes
    python bench/fleet.py --part replicas --batch 64 # 1 vs 2 replicas, monitor and diagnosis
    python bench/fleet.py --part simulator           # publish rate flat out; stop after SIGTERM
    python bench/fleet.py --part monitor --ticks 400 # the vectorised monitor alone, 1,000 pumps
    python bench/fleet.py --part diagnosis --sizes 1,100,1000  # CPU per alert commit vs pumps
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from engine.plant.scenario import Manoeuvre, Scenario

TARGET_X, TARGET_MB, TARGET_MONITOR = 50.0, 600.0, 300_000.0


def base_scenario(seconds: float) -> Scenario:
    """Pump 1's shift: valve and speed trims every 20 min (the fleet adds its own faults)."""
    moves, t = [], 1200.0
    kinds = [("valve", 65.0), ("speed", 90.0), ("valve", 85.0), ("speed", 100.0)]
    while t < seconds - 300:
        kind, target = kinds[len(moves) % len(kinds)]
        moves.append(Manoeuvre(at_s=t, kind=kind, target_pct=target, ramp_s=30))  # type: ignore[arg-type]
        t += 1200.0
    return Scenario(name="fleetbench", duration_s=seconds, seed=11, manoeuvres=moves)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def one(n: int, seconds: float, shard: int = 0, shards: int = 1) -> dict[str, float | int | str]:
    """Run the chain for a fleet of ``n`` (or its pumps ``shard::shards``, as one of several
    replicas each owning a subset of the assets) in this process, and measure it."""
    from engine.agent_files import load_rules
    from engine.agents.diagnosis import DiagnosisAgent
    from engine.agents.monitor import Monitor
    from engine.cli import GC_YOUNG_THRESHOLD
    from engine.evaluation.replay import FLEET_SIMULATOR_FROM, fleet_ticks
    from engine.plant.fleet import fleet_scenarios

    # The collector's policy of `controlroom replay/eval` (engine/cli: the youngest generation
    # every 50,000 allocations, not CPython's 700), so the figure is the command's: at the
    # default, a 1,000-pump tick's ~1,000 Telemetry objects trigger a young collection every
    # ~700 allocations, ~20 % of the replay's CPU (58x vs 45-50x real time, load ~1).
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    fleet = fleet_scenarios(base_scenario(seconds), n, seed=3)[shard::shards]
    ticks = fleet_ticks(fleet, 1.0)
    monitor = Monitor(id_prefix="bench")
    agent = DiagnosisAgent(load_rules())
    batch = getattr(monitor, "feed_batch", None)
    diag_batch = getattr(agent, "feed_batch", None)
    rss0 = _rss_mb()
    t_sim = t_mon = t_diag = 0.0
    alerts = reports = samples = 0
    w0, c0 = time.perf_counter(), time.process_time()
    while True:
        a = time.process_time()
        tick = next(ticks, None)
        b = time.process_time()
        if tick is None:
            break
        out = batch(tick) if batch else [x for t in tick for x in monitor.feed(t)]  # type: ignore[arg-type]
        c = time.process_time()
        if diag_batch is not None:  # the diagnosis' batch entry point, as the replay uses it
            reports += len(diag_batch(tick))
        else:
            reports += sum(len(agent.feed(t)) for t in tick)  # type: ignore[arg-type]
        for al in out:
            reports += len(agent.feed(al))
        d = time.process_time()
        t_sim, t_mon, t_diag = t_sim + b - a, t_mon + c - b, t_diag + d - c
        alerts += len(out)
        samples += len(tick)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "n": n,
        "seconds": seconds,
        "samples": samples,
        "wall_s": wall,
        "cpu_s": cpu,
        "x_real_time": seconds / wall,
        "x_real_time_cpu": seconds / cpu,
        "us_per_sample": cpu / samples * 1e6,
        "us_sim": t_sim / samples * 1e6,
        "us_monitor": t_mon / samples * 1e6,
        "us_diagnosis": t_diag / samples * 1e6,
        "rss_start_mb": rss0,
        "rss_end_mb": _rss_mb(),
        "rss_peak_mb": peak,
        "alerts": alerts,
        "reports": reports,
        "monitor_path": "feed_batch (vectorised)" if batch is not None else "feed per sample",
        "gc_young": gc.get_threshold()[0],
        "simulator": "FleetSimulator" if len(fleet) >= FLEET_SIMULATOR_FROM else "Simulator",
    }


def _run(n: int, seconds: float, procs: int) -> dict[str, float | int | str]:
    """One fleet of ``n``: ``procs`` processes at once, each owning every procs-th pump (how
    replicas split a fleet live); wall = the slowest, CPU and RSS = the sum."""
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--one",
                str(n),
                "--seconds",
                str(seconds),
                "--shard",
                f"{i}/{procs}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(procs)
    ]
    parts = []
    for child in children:
        out, err = child.communicate()
        if child.returncode != 0:
            sys.exit(f"fleet of {n} failed:\n{err}")
        parts.append(json.loads(out.strip().splitlines()[-1]))
    if procs == 1:
        return parts[0]
    samples = sum(int(p["samples"]) for p in parts)
    wall = max(float(p["wall_s"]) for p in parts)
    cpu = sum(float(p["cpu_s"]) for p in parts)
    row: dict[str, float | int | str] = dict(parts[0])
    row.update(
        n=n,
        samples=samples,
        wall_s=wall,
        cpu_s=cpu,
        x_real_time=seconds / wall,
        x_real_time_cpu=seconds / cpu,
        us_per_sample=cpu / samples * 1e6,
    )
    for key in ("us_sim", "us_monitor", "us_diagnosis"):
        row[key] = sum(float(p[key]) * int(p["samples"]) for p in parts) / samples
    for key in ("rss_start_mb", "rss_end_mb", "rss_peak_mb", "alerts", "reports"):
        row[key] = sum(p[key] for p in parts)  # type: ignore[misc]
    return row


def part_replay(
    sizes: list[int], seconds: float, procs: int = 1
) -> list[dict[str, float | int | str]]:
    rows = []
    for n in sizes:
        row = _run(n, seconds, min(procs, n))
        rows.append(row)
        print(
            f"N={n:>5}  {row['x_real_time']:8.1f}x real time (wall) {row['x_real_time_cpu']:8.1f}x"
            f" (CPU)  {row['us_per_sample']:5.1f} µs/sample CPU (sim {row['us_sim']:.1f}, monitor"
            f" {row['us_monitor']:.1f}, diagnosis {row['us_diagnosis']:.1f})  RSS end"
            f" {row['rss_end_mb']:6.0f} MB, peak {row['rss_peak_mb']:6.0f} MB"
            f" ({row['rss_peak_mb'] / n * 1024:6.0f} KB/pump)  [{row['alerts']} alert msgs,"
            f" {row['reports']} diagnoses]",
            flush=True,
        )
    big = max(rows, key=lambda r: int(r["n"]))
    print(
        f"monitor path: {big['monitor_path']}; simulator at N={big['n']}: {big['simulator']};"
        f" {procs} process(es) per fleet; gc young threshold {big['gc_young']} (as `controlroom`)"
    )
    mon = 1e6 / float(big["us_monitor"])
    print(
        f"monitor alone (no transport) at N={big['n']}: {mon:,.0f} samples per CPU-second"
        f" (target >= {TARGET_MONITOR:,.0f}/s per core at 1,000 assets: "
        f"{'met' if mon >= TARGET_MONITOR else 'NOT met'})"
    )
    if int(big["n"]) >= 1000:
        x, mb = float(big["x_real_time"]), float(big["rss_peak_mb"])
        print(
            f"target at N={big['n']}: >= {TARGET_X:.0f}x real time -> {x:.1f}x "
            f"({'met' if x >= TARGET_X else 'NOT met'}); <= {TARGET_MB:.0f} MB -> {mb:.0f} MB "
            f"({'met' if mb <= TARGET_MB else 'NOT met'})"
        )
    return rows


def part_live(args: argparse.Namespace) -> None:
    """The live chain on its own Mosquitto: the five services as processes (``Stack``), a fleet
    of ``--pumps`` at 1 Hz in real time for ``--minutes``. The fleet is first played fast to
    ``WARMUP_S`` (the monitor learns each pump's normal behaviour before it may alert), then
    paused and drained; the measured window runs at speed 1 from there. Prints published vs
    received by the monitor and the diagnosis (loss), telemetry → alert latency (the
    monitor's own p50/p99, wall clock from the sample's publish to the alert's), and RSS per
    service."""
    import tempfile

    import httpx
    import live_harness as h

    from engine.services.stack import Stack
    from engine.settings import process_environ

    pumps, minutes = args.pumps, args.minutes
    broker = h.BenchBroker()
    var = Path(tempfile.mkdtemp(prefix="controlroom-fleet-live-"))
    env = {
        "CONTROLROOM_TELEMETRY_BATCH": str(args.batch),
        "CONTROLROOM_TELEMETRY_LOG_EVERY": "60",
        "CONTROLROOM_LOG_LEVEL": "warning",
    }
    layout = f"batched <= {args.batch}" if args.batch else "one message per sample"
    print(
        f"live chain: {pumps} pumps x 1 Hz for {minutes:g} min on {broker.version} "
        f"({broker.url}); telemetry {layout}; "
        f"simulator log 1 sample/min/pump; {h.load()}",
        flush=True,
    )
    stack = Stack(environ=process_environ(), broker_url=broker.url, ports="auto", var=var, env=env,
                  client_prefix=f"fleet{os.getpid()}", startup_timeout=120)  # fmt: skip
    try:
        stack.start()
        sim = httpx.Client(base_url=stack.urls["simulator"], timeout=300)
        t = time.time()
        # The base cut to LIVE_BASE_S: the fleet's fault onsets (from 0.3 x its duration, see
        # engine.plant.fleet) then fall from 720 s on, inside the measured window.
        from engine.plant.scenario import load_scenario

        base = load_scenario(args.scenario)
        base = base.model_copy(
            update={
                "duration_s": LIVE_BASE_S,
                "faults": [f for f in base.faults if f.onset_s < LIVE_BASE_S - 600],
                "manoeuvres": [m for m in base.manoeuvres if m.at_s < LIVE_BASE_S],
            }
        )
        body = {"scenario": json.loads(base.model_dump_json()), "assets": pumps, "seed": 3}
        r = sim.post("/scenario/load", json=body)
        r.raise_for_status()
        print(f"  loaded {pumps} pumps in {time.time() - t:.1f} s", flush=True)
        t = time.time()
        sim.post("/scenario/start", json={"speed": args.warmup_speed, "until": WARMUP_S})
        _wait(lambda: not sim.get("/scenario/status").json()["running"], 3600)
        counts = _settle(stack)
        print(
            f"  warm-up to {WARMUP_S:g} sim-s in {time.time() - t:.0f} s wall "
            f"({counts['simulator']:,} samples); {h.load()}",
            flush=True,
        )
        alerts0 = _alerts(stack)
        t0 = time.time()
        window_start = datetime.now(UTC)
        sim.post("/scenario/start", json={"speed": 1.0})
        loads: list[float] = []
        behind: dict[str, int] = {"monitor": 0, "diagnosis": 0}
        while time.time() - t0 < minutes * 60:
            time.sleep(min(10.0, max(0.1, minutes * 60 - (time.time() - t0))))
            loads.append(os.getloadavg()[0])
            seen = _counts(stack)
            for name in behind:  # samples published but not yet handled: the backlog
                behind[name] = max(behind[name], seen["simulator"] - seen[name])
        sim.post("/scenario/stop")
        wall = time.time() - t0
        t_stop = time.time()
        after = _settle(stack)
        catch_up = time.time() - t_stop
        published = after["simulator"] - counts["simulator"]
        rate = published / wall
        print(f"  window: {wall:.0f} s wall, {published:,} samples published ({rate:,.0f}/s); "
              f"load during it {min(loads):.1f}..{max(loads):.1f}; consumers caught up "
              f"{catch_up:.1f} s after the publisher stopped")  # fmt: skip
        for name in ("monitor", "diagnosis"):
            got = after[name] - counts[name]
            print(f"  {name:<10} received {got:,}: lost {published - got:,}"
                  f"{'  (zero loss)' if got == published else ''}; largest backlog seen "
                  f"(every 10 s) {behind[name]:,} samples = {behind[name] / max(1.0, rate):.1f} s "
                  "behind")  # fmt: skip
        lat = _alert_latencies(var / "logs" / "monitor.jsonl", window_start)
        print(
            f"  telemetry -> alert (monitor, wall clock, published -> published): "
            f"{_alerts(stack) - alerts0} alert publications in the window; p50 "
            f"{_ms(h.percentile(lat, 50))}, p99 {_ms(h.percentile(lat, 99))} over {len(lat)}"
        )
        for name, pid in stack.pids.items():
            now, peak = h.rss_mb(pid)
            print(f"  RSS {name:<10} {now:7.1f} MiB (peak {peak:7.1f})")
        print(f"  {h.load()}")
    finally:
        stack.stop()
        broker.stop()
        shutil.rmtree(var, ignore_errors=True)


def _alert_latencies(log: Path, since: datetime) -> list[float]:
    """telemetry published -> alert published (ms) of each alert the monitor published since
    ``since``, from its own log (it stamps the latency of every alert it publishes)."""
    out = []
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        lat = rec.get("latency_ms")
        if rec.get("event") != "alert" or not isinstance(lat, int | float):
            continue
        if datetime.fromisoformat(rec["time"]) >= since:
            out.append(float(lat))
    return out


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f} ms"


LIVE_BASE_S = 2400.0
"""The live part's scenario length: fault onsets from 720 s, so alerts happen in the window."""
WARMUP_S = 700.0
"""Simulated seconds played fast before the window: past the monitor's learning period."""


def _wait(cond: object, timeout: float) -> None:
    deadline = time.time() + timeout
    while not cond():  # type: ignore[operator]
        if time.time() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.2)


SETTLE_QUIET_S = 30.0
"""Seconds with no counter moving after which the consumers are taken as done (loss)."""


def _settle(stack: object, quiet_s: float = SETTLE_QUIET_S) -> dict[str, int]:
    """Counters once the consumers have caught up: each has counted every sample published, or
    (samples were lost) nothing has moved for ``quiet_s``. On a loaded machine a niced
    consumer can stall for seconds with a backlog, so "unchanged for 2 s" is not caught up."""
    last: dict[str, int] = {}
    still = time.time()
    while True:
        now = _counts(stack)
        if now["monitor"] >= now["simulator"] and now["diagnosis"] >= now["simulator"]:
            return now
        if now != last:
            last, still = now, time.time()
        elif time.time() - still >= quiet_s:
            return now
        time.sleep(1.0)


def _counts(stack: object) -> dict[str, int]:
    """Samples published by the simulator, handled by the monitor and by the diagnosis."""
    return {
        "simulator": int(stack.health("simulator")["published"]),  # type: ignore[attr-defined]
        "monitor": int(stack.health("monitor")["counters"]["samples"]),  # type: ignore[attr-defined]
        "diagnosis": int(stack.health("diagnosis")["counters"]["samples"]),  # type: ignore[attr-defined]
    }


def _alerts(stack: object) -> int:
    return int(stack.health("monitor")["alerts_published"])  # type: ignore[attr-defined]


def part_replicas(args: argparse.Namespace) -> None:
    """1 vs 2 replicas of the monitor and of the diagnosis on the same broker in the same run:
    the same backlog (``--pumps`` × ``--ticks``) drained by one replica, then by two (``--shard
    1/2``, ``2/2``: each subscribes to its own buckets only), fresh processes each time, best of
    ``--repeat``. Throughput ratio = (samples / time for both to finish) / (samples / time for
    one)."""
    import tempfile

    import live_harness as h

    broker = h.BenchBroker()
    var = Path(tempfile.mkdtemp(prefix="controlroom-fleet-replicas-"))
    try:
        samples = h.stream("rep", args.pumps, args.ticks, faults=False)
        work = h.items(samples, args.batch)
        layout = f"TelemetryBatch <= {args.batch}" if args.batch else "one message per sample"
        print(
            f"replicas: {len(samples):,} samples ({args.pumps} pumps x {args.ticks} ticks, "
            f"{layout}) on {broker.version}; {h.load()}",
            flush=True,
        )
        for service in args.services.split(","):
            rates: dict[int, float] = {1: 0.0, 2: 0.0}
            cpu: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
            for _ in range(args.repeat):
                for n in (1, 2):  # alternated, so a change of load hits both counts alike
                    procs = [
                        h.ServiceProc(service, broker.url, var, *h.shard_args(i, n))
                        for i in range(1, n + 1)
                    ]
                    try:
                        r = h.drain(broker.url, procs, work, broker_pid=broker.proc.pid)
                        split = [p.health()["counters"] for p in procs]
                    finally:
                        for p in procs:
                            p.stop()
                    rates[n] = max(rates[n], r["rate"])
                    cpu[n].append((r["cpu_us"], r["broker_cpu_us"]))
                    got = ", ".join(f"{c['samples']:,} (not mine {c['not_mine']})" for c in split)
                    print(
                        f"  {service:<9} x{n}: {r['rate']:>8,.0f} samples/s, "
                        f"{r['cpu_us']:5.1f} us CPU/sample (broker {r['broker_cpu_us']:.1f}), "
                        f"lost {r['lost']}; each received {got}  ({h.load()})",
                        flush=True,
                    )
            ratio = rates[2] / rates[1]
            print(
                f"  {service}: 2 replicas / 1 = {ratio:.2f}x "
                f"({'meets' if ratio >= 1.8 else 'BELOW'} the 1.8x target; best of {args.repeat})",
                flush=True,
            )
            print(f"  {service}: {cpu_bound(cpu[1], cpu[2])}", flush=True)
            print(f"  machine ceiling: {machine_ceiling(args.repeat)}", flush=True)
    finally:
        broker.stop()
        shutil.rmtree(var, ignore_errors=True)


CEILING_LOOP = "n = 0\nfor i in range(40_000_000):\n    n += i\n"
"""Pure-CPU Python (no I/O, no memory traffic): what one process does with a core."""


def machine_ceiling(repeat: int = 2) -> str:
    """Two copies of a pure-CPU Python loop at once vs one alone, fresh processes, alternated,
    best of ``repeat``: the ratio two processes can reach on this machine now, whatever the
    code — the most two replicas could show in the same minutes (a shared or throttled VM
    gives less than 2.00x even to this loop)."""
    best: dict[int, float] = {1: float("inf"), 2: float("inf")}
    for _ in range(repeat):
        for n in (1, 2):
            t = time.perf_counter()
            procs = [subprocess.Popen([sys.executable, "-c", CEILING_LOOP]) for _ in range(n)]
            for p in procs:
                p.wait()
            best[n] = min(best[n], time.perf_counter() - t)
    return (
        f"two pure-CPU Python loops / one = {2 * best[1] / best[2]:.2f}x (one alone "
        f"{best[1]:.2f} s, two at once {best[2]:.2f} s; best of {repeat}; {_load()})"
    )


def cpu_bound(one: list[tuple[float, float]], two: list[tuple[float, float]]) -> str:
    """What the CPU figures allow, whatever the load: the ratio two replicas could reach on
    this machine's cores if nothing else ran. A replica is one Python process (one core at
    most: the GIL), so one replica drains at most 1e6 / its CPU µs per sample; two drain at
    most 2e6 / theirs, and — the broker delivering every sample on the same cores — at most
    cores × 1e6 / (their CPU + the broker's) per sample. Medians of the runs (µs/sample)."""
    if not one or not two:
        return "no CPU figures"
    c1, b1 = (statistics.median(x) for x in zip(*one, strict=True))
    c2, b2 = (statistics.median(x) for x in zip(*two, strict=True))
    cores = os.cpu_count() or 1
    bound1 = min(1e6 / c1, cores * 1e6 / (c1 + b1))
    bound2 = min(2e6 / c2, cores * 1e6 / (c2 + b2))
    return (
        f"CPU per sample {c1:.1f} us alone, {c2:.1f} us with two; broker {b1:.1f} / {b2:.1f} us. "
        f"On {cores} free cores: one replica <= {bound1:,.0f}/s, two <= {bound2:,.0f}/s "
        f"(the broker's share of the cores) -> at most {bound2 / bound1:.2f}x"
    )


def part_simulator(args: argparse.Namespace) -> None:
    """The simulator service flat out with ``--pumps`` pumps (speed 1e6: every tick is due at
    once), one message per sample and then TelemetryBatch messages: samples published per
    second and CPU µs per sample over ``SIM_WINDOW_S`` (a bare paho subscriber counts what
    arrives), then SIGTERM and the seconds until the process is gone (target ≤ 2 s)."""
    import signal
    import tempfile

    import httpx
    import live_harness as h

    from engine.bus.routing import ALL_TELEMETRY

    broker = h.BenchBroker()
    var = Path(tempfile.mkdtemp(prefix="controlroom-fleet-sim-"))
    print(f"simulator: {args.pumps} pumps, flat out, telemetry log off; {broker.version}; "
          f"{h.load()}", flush=True)  # fmt: skip
    raw = h.RawSubscriber(broker.url, [ALL_TELEMETRY])
    try:
        for batch in (0, args.batch or 64):
            env = {
                "CONTROLROOM_TELEMETRY_BATCH": str(batch),
                "CONTROLROOM_TELEMETRY_LOG_EVERY": "0",
            }
            sim = h.ServiceProc("simulator", broker.url, var, env=env)
            try:
                http = httpx.Client(base_url=sim.base, timeout=300)
                r = http.post("/scenario/load", json={"name": args.scenario, "assets": args.pumps})
                r.raise_for_status()
                http.post("/scenario/start", json={"speed": 1e6}).raise_for_status()
                time.sleep(3.0)
                p0, c0, r0, t0 = (
                    sim.health()["published"],
                    h.cpu_seconds(sim.pid),
                    raw.handled(),
                    time.time(),
                )
                time.sleep(SIM_WINDOW_S)
                p1, c1, r1, t1 = (
                    sim.health()["published"],
                    h.cpu_seconds(sim.pid),
                    raw.handled(),
                    time.time(),
                )
                layout = f"TelemetryBatch <= {batch}" if batch else "one message per sample"
                rate = (p1 - p0) / (t1 - t0)
                print(
                    f"  {layout:<24} published {rate:>8,.0f} samples/s "
                    f"({(r1 - r0) / (t1 - t0):,.0f}/s received by a bare subscriber), "
                    f"{(c1 - c0) / max(1, p1 - p0) * 1e6:5.1f} us CPU/sample  ({h.load()})",
                    flush=True,
                )
                t = time.time()
                sim.proc.send_signal(signal.SIGTERM)
                sim.proc.wait(120)
                print(f"  {'':<24} SIGTERM while saturated -> process gone in "
                      f"{time.time() - t:.2f} s (target <= 2 s)", flush=True)  # fmt: skip
            finally:
                sim.stop()
    finally:
        raw.stop()
        broker.stop()
        shutil.rmtree(var, ignore_errors=True)


SIM_WINDOW_S = 10.0


def part_monitor(args: argparse.Namespace) -> None:
    """The vectorised monitor alone (no transport, no simulator, no diagnosis in the timing):
    ``Monitor.feed_batch`` on one tick of ``--pumps`` pumps at a time, CPU per sample after the
    warm-up (``MONITOR_FROM_S``), for a fault-free fleet (the steady state of a plant: nothing
    in alarm) and for the bench's fleet (faults spread over every pump but each
    ``FAULT_FREE_EVERY``-th: most pumps in alarm at once, so per-asset episode tracking runs on
    most rows every tick)."""
    from engine.agents.monitor import Monitor
    from engine.evaluation.replay import fleet_ticks
    from engine.plant.fleet import as_fleet, fleet_scenarios

    n, seconds = args.pumps, MONITOR_FROM_S + args.ticks
    base = base_scenario(seconds)
    fleets = {
        "fault-free": as_fleet([base.model_copy(update={"seed": 100 + i}) for i in range(n)]),
        "faults spread (most in alarm)": fleet_scenarios(base, n, seed=3),
    }
    for label, fleet in fleets.items():
        monitor = Monitor(id_prefix="bench")
        cpu, samples, alerts = 0.0, 0, 0
        for k, tick in enumerate(fleet_ticks(fleet, 1.0)):
            c = time.process_time()
            out = monitor.feed_batch(tick)
            if k >= MONITOR_FROM_S:
                cpu += time.process_time() - c
                samples += len(tick)
                alerts += len(out)
        rate = samples / cpu
        print(
            f"  monitor alone, {n} pumps, {label:<30} {cpu / samples * 1e6:6.1f} us/sample CPU ="
            f" {rate:>9,.0f} samples per CPU-second (target >= {TARGET_MONITOR:,.0f}:"
            f" {'met' if rate >= TARGET_MONITOR else 'NOT met'}); {alerts} alert msgs"
            f"  ({_load()})",
            flush=True,
        )


def part_diagnosis(args: argparse.Namespace) -> None:
    """What one alert's commit costs the diagnosis service as the fleet grows: the service (its
    real SQLite outbox in a temporary var/) holding ``N`` pumps, each with a pending final and
    its history (one real pump's state, from the bench's replay up to its first alert, copied
    under N names), then the commit an alert makes — per-pump rows (what the service does) vs
    the whole state (what it did). CPU ms per commit (process time), median of 20 (3 whole)."""
    import tempfile

    from engine.agents.diagnosis_state import DiagnosisState
    from engine.evaluation.replay import replay
    from engine.plant.scenario import load_scenario
    from engine.schemas import AlertEvent
    from engine.services.diagnosis import STOP_TAIL_S, DiagnosisService
    from engine.services.registry import build_service
    from engine.services.settings import Settings

    var = Path(tempfile.mkdtemp(prefix="controlroom-fleet-diag-"))
    os.environ["CONTROLROOM_VAR"] = str(var)
    try:
        svc = build_service(Settings.from_env("diagnosis", {"CONTROLROOM_VAR": str(var)}))
        assert isinstance(svc, DiagnosisService)
        for msg in replay(load_scenario("sudden_clog_and_drift"), diagnose=False):
            if isinstance(msg, AlertEvent):
                svc.on_input(msg)
                if svc.pending_finals:
                    break
            else:
                svc.on_telemetry([msg])  # type: ignore[list-item]
        one = svc.diagnoser.export_state().assets[0]
        print(f"diagnosis commit per alert: one pump's state {len(one.model_dump_json()):,} B "
              f"(pending finals {svc.pending_finals}); {_load()}", flush=True)  # fmt: skip
        for n in [int(x) for x in args.sizes.split(",")]:
            fleet = [one.model_copy(update={"asset": f"pump{i:04d}"}) for i in range(n)]
            svc.diagnoser.restore_state(DiagnosisState(assets=fleet))
            rows, whole = [], []
            for k in range(20):
                c = time.process_time()
                svc._dirty.add(f"pump{k % n:04d}")
                svc._commit(None)
                rows.append(time.process_time() - c)
                if k < 3:  # slow at a fleet: a few suffice
                    c = time.process_time()
                    blob = svc.diagnoser.export_state().model_dump_json()
                    svc.store.commit([], {"__whole__": blob})
                    whole.append(time.process_time() - c)
            print(
                f"  {n:>5} pumps pending: per-pump rows {statistics.median(rows) * 1e3:7.2f} ms "
                f"CPU per commit; whole state {statistics.median(whole) * 1e3:9.1f} ms "
                f"({len(blob) / 1e6:,.1f} MB)  ({_load()})",
                flush=True,
            )
            c, w = time.process_time(), time.perf_counter()
            svc._save_all(tail_s=STOP_TAIL_S)
            print(f"  {n:>5} pumps: the save at stop (every pump, {STOP_TAIL_S:g} s of history) "
                  f"{time.process_time() - c:.2f} s CPU, {time.perf_counter() - w:.2f} s wall "
                  f"({_load()})", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(var, ignore_errors=True)


MONITOR_FROM_S = 900
"""Ticks fed before the monitor part starts timing: past every pump's warm-up."""


def _load() -> str:
    a, b, c = os.getloadavg()
    return f"load {a:.1f} {b:.1f} {c:.1f} on {os.cpu_count()} CPUs"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = ("replay", "live", "replicas", "simulator", "monitor", "diagnosis")
    p.add_argument("--part", choices=parts, default="replay")
    p.add_argument("--sizes", default="1,10,100,1000", help="fleet sizes (default 1,10,100,1000)")
    p.add_argument("--seconds", type=float, default=4000.0, help="simulated seconds per run")
    p.add_argument(
        "--procs",
        type=int,
        default=1,
        help="processes per fleet, each owning every procs-th pump, like replicas (default 1)",
    )
    p.add_argument("--pumps", type=int, default=1000, help="live/replicas: fleet size (1000)")
    p.add_argument("--minutes", type=float, default=5.0, help="live: measured window (5)")
    p.add_argument(
        "--scenario", default="sudden_clog_and_drift", help="live: the fleet's base scenario"
    )
    p.add_argument("--warmup-speed", type=float, default=20.0, help="live: speed to warm up")
    p.add_argument("--batch", type=int, default=0, help="live/replicas: TelemetryBatch size (0)")
    p.add_argument(
        "--ticks", type=int, default=60, help="replicas: backlog ticks per pump; monitor: timed"
    )
    p.add_argument("--services", default="monitor,diagnosis", help="replicas: which services")
    p.add_argument("--repeat", type=int, default=2, help="replicas: runs per count (best kept)")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    p.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one is not None:
        shard, shards = (int(x) for x in args.shard.split("/"))
        print(json.dumps(one(args.one, args.seconds, shard, shards)))
        return
    print(
        f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
        f" on {os.cpu_count()} CPUs"
        + (f"; {args.seconds:g} simulated s per fleet, 1 Hz" if args.part == "replay" else "")
    )
    if args.part == "replay":
        part_replay([int(x) for x in args.sizes.split(",")], args.seconds, args.procs)
    elif args.part == "live":
        part_live(args)
    elif args.part == "simulator":
        part_simulator(args)
    elif args.part == "diagnosis":
        part_diagnosis(args)
    elif args.part == "monitor":
        part_monitor(args)
    else:
        part_replicas(args)


if __name__ == "__main__":
    main()
