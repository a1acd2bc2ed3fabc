"""Factory-day timings: the whole pipeline on the toy world, and the scheduler at scale.

    python bench/factory_scale.py            # full run (up to 1,000 jobs x 50 machines x 5 steps)
    python bench/factory_scale.py --quick    # smaller sizes

Targets (spec section 10 and issue 4): the whole offline pipeline on the toy world < 2 s
(orchestration + 3 agents + 3 simulations); scheduler + invariant check + metrics for 1,000
jobs x 50 machines x 5 steps < 2 s. Generated factories are seeded: the same run, the same
factories.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.factory import load_factory, run_pipeline
from engine.factory.metrics import compute_metrics
from engine.factory.models import FactoryConfig
from engine.factory.scenario import BASELINE_SPEC, ScenarioSpec
from engine.factory.scheduler import check_result, simulate

SIZES = [(10, 5, 5), (100, 10, 5), (300, 25, 5), (1000, 50, 5)]
QUICK = [(10, 5, 5), (100, 10, 5), (300, 25, 5)]


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
                "id": f"JB{j:04d}-{k}",
                "machine_id": f"MC{rng.randrange(machines):02d}",
                "duration_hours": rng.randint(1, 8),
            }
            for k in range(steps)
        ]
        job_list.append(
            {
                "id": f"JB{j:04d}",
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


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def bench_pipeline(runs: int) -> None:
    toy = load_factory("toy_day")
    text = "We have a rush order for J2 today. J3 is also important. I can accept some delay on J1."
    t0 = time.perf_counter()
    run_pipeline(text, toy, "2026-11-23", llm="off")
    cold = time.perf_counter() - t0
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        state = run_pipeline(text, toy, "2026-11-23", llm="off")
        times.append(time.perf_counter() - t0)
    assert state.pipeline_completed
    print("Whole pipeline, offline, toy world (intent, futures, 3 simulations, what-ifs, briefing)")
    print(
        f"  first run {ms(cold)}   median of {runs} {ms(statistics.median(times))}   "
        f"max {ms(max(times))}   target < 2000 ms"
    )


def bench_scale(sizes: list[tuple[int, int, int]]) -> None:
    print("\nScheduler + invariant check + metrics on generated factories")
    print(
        f"  {'jobs x machines x steps':>24} {'horizon':>8} {'simulate':>11} {'check':>11} "
        f"{'metrics':>11} {'total':>11} {'slowdown':>11}  late"
    )
    for jobs, machines, steps in sizes:
        factory = generate(jobs, machines, steps)
        neck = "MC00"
        slow = ScenarioSpec(
            type="MACHINE_SLOWDOWN",
            label="Slow",
            modifications={
                "machine_id": neck,
                "slowdown_factor": 2.0,
                "start_time": 0,
                "end_time": factory.time_horizon // 2,
            },
        )
        t0 = time.perf_counter()
        result = simulate(factory, BASELINE_SPEC)
        t1 = time.perf_counter()
        problems = check_result(result, factory)
        t2 = time.perf_counter()
        metrics = compute_metrics(result, factory)
        t3 = time.perf_counter()
        simulate(factory, slow)
        t4 = time.perf_counter()
        assert problems == [], problems[:3]
        size = f"{jobs} x {machines} x {steps}"
        print(
            f"  {size:>24} {factory.time_horizon:>7}h {ms(t1 - t0)} {ms(t2 - t1)} "
            f"{ms(t3 - t2)} {ms(t3 - t0)} {ms(t4 - t3)}  {metrics.num_late_jobs}"
        )
    print("  target: 1000 x 50 x 5 total < 2000 ms")


def bench_pipeline_at_scale(sizes: list[tuple[int, int, int]]) -> None:
    print("\nWhole pipeline, offline, on generated factories (what-if levers budgeted by size)")
    for jobs, machines, steps in sizes:
        factory = generate(jobs, machines, steps)
        t0 = time.perf_counter()
        state = run_pipeline("rush JB0003, protect JB0001", factory, "2026-11-23", llm="off")
        elapsed = time.perf_counter() - t0
        assert state.pipeline_completed and state.briefing_source == "offline"
        size = f"{jobs} x {machines} x {steps}"
        print(
            f"  {size:>24} {ms(elapsed)}   levers: {len(state.what_ifs)}, "
            f"briefing {len(state.briefing_markdown.split())} words"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    args = parser.parse_args()
    bench_pipeline(5 if args.quick else 20)
    bench_scale(QUICK if args.quick else SIZES)
    bench_pipeline_at_scale(QUICK if args.quick else SIZES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
