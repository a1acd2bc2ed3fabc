"""Run many scenarios through replay + scoring, in parallel worker processes, and aggregate."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

from engine.evaluation.metrics import EvalMetrics, aggregate
from engine.evaluation.replay import replay
from engine.evaluation.scoring import RunScore, StreamScorer
from engine.plant.scenario import Scenario
from engine.schemas import Tuning


def score_scenario(
    scenario: Scenario,
    seed: int | None = None,
    tuning: Tuning | None = None,
    diagnose: bool = True,
) -> list[RunScore]:
    scorer = StreamScorer(scenario.name)
    for msg in replay(scenario, seed, tuning=tuning, diagnose=diagnose):
        scorer.add(msg)
    return scorer.result()


def _work(args: tuple[Scenario, Tuning | None, bool]) -> list[RunScore]:
    scenario, tuning, diagnose = args
    return score_scenario(scenario, None, tuning, diagnose)


def evaluate(
    scenarios: list[Scenario],
    *,
    label: str = "",
    tuning: Tuning | None = None,
    jobs: int | None = None,
    diagnose: bool = True,
) -> EvalMetrics:
    """Replay and score every scenario (each with its own seed); ``jobs`` worker processes
    (default: the CPU count; 1 = in this process)."""
    jobs = jobs or os.cpu_count() or 1
    work = [(s, tuning, diagnose) for s in scenarios]
    if jobs <= 1 or len(scenarios) <= 1:
        results = [_work(w) for w in work]
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(scenarios))) as pool:
            results = list(pool.map(_work, work, chunksize=1))
    runs = [r for rs in results for r in rs]
    return aggregate(runs, label=label, scenarios=len(scenarios))
