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

Parts ``live`` (the chain on its own Mosquitto at 1,000 pumps × 1 Hz: loss, p99 telemetry→alert
latency, RSS per service) and ``replicas`` (1 vs 2 replicas on one broker) belong to branch
``bus``: add them as ``part_live`` / ``part_replicas`` below.

    python bench/fleet.py                        # N = 1, 10, 100, 1000; 4,000 simulated s each
    python bench/fleet.py --sizes 1000 --seconds 3700
    python bench/fleet.py --part replay --sizes 10,100
    python bench/fleet.py --sizes 1000 --procs 2     # two processes, 500 pumps each
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from engine.plant.scenario import Manoeuvre, Scenario

TARGET_X, TARGET_MB = 50.0, 600.0


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
    from engine.evaluation.replay import FLEET_SIMULATOR_FROM, fleet_ticks
    from engine.plant.fleet import fleet_scenarios

    fleet = fleet_scenarios(base_scenario(seconds), n, seed=3)[shard::shards]
    ticks = fleet_ticks(fleet, 1.0)
    monitor = Monitor(id_prefix="bench")
    agent = DiagnosisAgent(load_rules())
    batch = getattr(monitor, "feed_batch", None)
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
        for t in tick:
            reports += len(agent.feed(t))  # type: ignore[arg-type]
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
        f" {procs} process(es) per fleet"
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
    raise SystemExit("part 'live' is branch bus's (issue 14): not written yet")


def part_replicas(args: argparse.Namespace) -> None:
    raise SystemExit("part 'replicas' is branch bus's (issue 14): not written yet")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("replay", "live", "replicas"), default="replay")
    p.add_argument("--sizes", default="1,10,100,1000", help="fleet sizes (default 1,10,100,1000)")
    p.add_argument("--seconds", type=float, default=4000.0, help="simulated seconds per run")
    p.add_argument(
        "--procs",
        type=int,
        default=1,
        help="processes per fleet, each owning every procs-th pump, like replicas (default 1)",
    )
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    p.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one is not None:
        shard, shards = (int(x) for x in args.shard.split("/"))
        print(json.dumps(one(args.one, args.seconds, shard, shards)))
        return
    print(
        f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
        f" on {os.cpu_count()} CPUs; {args.seconds:g} simulated s per fleet, 1 Hz"
    )
    if args.part == "replay":
        part_replay([int(x) for x in args.sizes.split(",")], args.seconds, args.procs)
    elif args.part == "live":
        part_live(args)
    else:
        part_replicas(args)


if __name__ == "__main__":
    main()
