"""Factory-day timings: the whole pipeline, and how the scheduler grows with the factory.

    python bench/factory_scale.py            # full run (pipeline at 1,000 x 50 x 5, fit to 10,000)
    python bench/factory_scale.py --quick    # smaller sizes

Targets (spec section 10, issues 14 and 15): the whole offline pipeline on the toy world well
under 2 s; the whole pipeline on a generated 1,000 jobs x 50 machines x 5 steps factory under
1 s; the scheduler growing at most like n log n from 100 to 10,000 jobs: its fitted exponent
no larger than that of n log n itself fitted over the same sizes (about 1.15 from 100 to
10,000; not 1.0, since log n grows too), and its cost per n log n (printed per size) flat.
Beside it, what merely reading one result object costs at each size: on a shared machine it
rises several-fold once the objects outgrow the caches, whatever the algorithm.
Each figure is the median of several runs, wall time and CPU time side by side (on a shared
machine CPU time is the steadier one), with the load average printed beside it.
Generated factories are seeded: the same run, the same factories.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.factory import load_factory, run_pipeline
from engine.factory.models import FactoryConfig
from engine.factory.scenario import BASELINE_SPEC
from engine.factory.scheduler import build_result, check_result, planned_sequence
from engine.factory.shop import compile_shop, decode, gc_paused

FIT_SIZES = [100, 300, 1_000, 3_000, 10_000]
QUICK_FIT = [100, 300, 1_000, 3_000]


def generate(jobs: int, machines: int, steps: int, seed: int = 7) -> FactoryConfig:
    """A random job shop whose total work fits its horizon about 80% full on average."""
    rng = random.Random(seed)
    mean_work = jobs * steps * 4.5 / machines
    horizon = min(10_000, max(48, int(mean_work * 1.25)))
    machine_list = [
        {
            "id": f"MC{m:02d}",
            "name": f"Cell {m}",
            "available_start": rng.randrange(0, 8),
            "available_end": horizon - rng.randrange(0, 8),
        }
        for m in range(machines)
    ]
    job_list = []
    for j in range(jobs):
        release = rng.randrange(0, horizon // 3)
        due = rng.randrange(min(horizon, release + 40), horizon + 1)
        route = [
            {
                "id": f"JB{j:05d}-{k}",
                "machine_id": f"MC{rng.randrange(machines):02d}",
                "duration_hours": rng.randint(1, 8),
            }
            for k in range(steps)
        ]
        job_list.append(
            {
                "id": f"JB{j:05d}",
                "name": f"Order {j}",
                "due_time": due,
                "release_time": release,
                "priority": rng.randint(0, 2),
                "steps": route,
            }
        )
    return FactoryConfig.model_validate(
        {
            "name": f"generated {jobs}x{machines}x{steps}",
            "time_horizon": horizon,
            "machines": machine_list,
            "jobs": job_list,
        }
    )


def timed(fn: Callable[[], Any], runs: int) -> tuple[Any, float, float]:
    """(last value, median wall s, median CPU s)."""
    walls, cpus = [], []
    value = None
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        value = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return value, statistics.median(walls), statistics.median(cpus)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f} on {os.cpu_count()} cores"


def bench_toy(runs: int) -> None:
    toy = load_factory("toy_day")
    text = "We have a rush order for J2 today. J3 is also important. I can accept some delay on J1."
    run_pipeline(text, toy, "2026-11-23", llm="off")  # warm caches once
    state, wall, cpu = timed(lambda: run_pipeline(text, toy, "2026-11-23", llm="off"), runs)
    assert state.pipeline_completed
    print(f"Whole pipeline, offline, toy world: wall {ms(wall)}  CPU {ms(cpu)}  (median of {runs})")


def bench_fit(sizes: list[int]) -> None:
    print("\nScheduler (compile + EDD sequence + placement) and the result models, 50 machines")
    print("  (CPU ms; in brackets the cost per n log n, n = jobs: flat when growth is n log n;")
    print("  read: a plain loop reading each allocation's end time, ns per allocation: what one")
    print("  touch of a result object costs at that size on this machine, whatever the algorithm)")
    print(
        f"  {'jobs':>6} {'steps':>6} {'scheduler':>19} {'+ models':>19} {'+ check':>19} {'read':>6}"
    )
    xs, sched, full = [], [], []
    for jobs in sizes:
        factory = generate(jobs, 50, 5)
        runs = 5 if jobs <= 1_000 else 3

        def schedule(factory: FactoryConfig = factory) -> Any:
            with gc_paused():
                # A new factory object each run: its routing is compiled from scratch, as on a
                # brief's first scenario (compile_shop keeps it per factory object after that).
                shop = compile_shop(factory.model_copy(), BASELINE_SPEC)
                return shop, decode(shop, planned_sequence(shop))

        (shop, dec), _, cpu_sched = timed(schedule, runs)

        def models(shop: Any = shop, dec: Any = dec, factory: FactoryConfig = factory) -> Any:
            with gc_paused():
                return build_result(shop, dec, factory)

        result, _, cpu_build = timed(models, runs)
        problems, _, cpu_check = timed(partial(check_result, result, factory), runs)
        assert problems == [], problems[:3]
        allocations = sum(map(len, result.machine_allocations.values()))
        _, _, cpu_read = timed(partial(read_ends, result), runs)
        xs.append(jobs)
        sched.append(cpu_sched)
        full.append(cpu_sched + cpu_build + cpu_check)
        print(
            f"  {jobs:>6} {jobs * 5:>6} {ms(cpu_sched)} [{per_nlogn(cpu_sched, jobs)}] "
            f"{ms(cpu_sched + cpu_build)} [{per_nlogn(cpu_sched + cpu_build, jobs)}] "
            f"{ms(full[-1])} [{per_nlogn(full[-1], jobs)}] "
            f"{cpu_read * 1e9 / allocations:3.0f} ns"
        )
    reference = fit_exponent(xs, [x * math.log(x) for x in xs])  # the same sizes, exactly
    for name, ys in (("scheduler", sched), ("scheduler + models + check", full)):
        k = fit_exponent(xs, ys)
        print(f"  fitted exponent ({name}): time ~ n^{k:.2f}  (n log n: n^{reference:.2f})")


def read_ends(result: Any) -> int:
    """The loop the invariant check makes over the allocations, machine by machine, less the
    checks: a floor under the check's cost per allocation."""
    return max(a.end_time for allocs in result.machine_allocations.values() for a in allocs)


def per_nlogn(seconds: float, n: int) -> str:
    """Nanoseconds per n ln n: the same figure at every size when growth is n log n."""
    return f"{seconds * 1e9 / (n * math.log(n)):4.0f} ns"


def fit_exponent(xs: list[int], ys: list[float]) -> float:
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = statistics.mean(lx), statistics.mean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum(
        (a - mx) ** 2 for a in lx
    )


def bench_pipeline_at_scale(sizes: list[tuple[int, int, int]], runs: int) -> None:
    print("\nWhole pipeline, offline, on generated factories (intent to briefing, plan included)")
    for jobs, machines, steps in sizes:
        factory = generate(jobs, machines, steps)
        text = "rush JB00003, protect JB00001"
        state, wall, cpu = timed(partial(run_pipeline, text, factory, "2026-11-23", "off"), runs)
        assert state.pipeline_completed, state.pipeline_errors
        assert state.briefing_source == "offline", state.pipeline_errors
        steps_ms = ", ".join(
            f"{e.name.split(' [')[0]} {e.latency_ms}" for e in state.events if e.latency_ms
        )
        target = "   target < 1000 ms" if jobs == 1_000 else ""
        print(f"  {jobs} x {machines} x {steps}: wall {ms(wall)}  CPU {ms(cpu)}{target}")
        print(f"    last run, ms per step: {steps_ms}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    args = parser.parse_args()
    print(load())
    bench_toy(5 if args.quick else 20)
    bench_fit(QUICK_FIT if args.quick else FIT_SIZES)
    sizes = [(100, 10, 5), (300, 25, 5)] if args.quick else [(100, 10, 5), (1_000, 50, 5)]
    bench_pipeline_at_scale(sizes, 3)
    print(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
