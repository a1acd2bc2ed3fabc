"""Run many scenarios through replay + scoring, in parallel worker processes, and aggregate.

With ``assets=N`` the scenarios play N at a time as one fleet (``replay_fleet``: one monitor and
one diagnosis agent for all N, as one replica of each sees them live). Assets do not share state,
so the figures are those of the scenarios played one by one — which a test holds — while the run
exercises the many-asset paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from engine.evaluation.metrics import EvalMetrics, aggregate
from engine.evaluation.replay import replay_fleet
from engine.evaluation.scoring import RunScore, StreamScorer
from engine.plant.fleet import as_fleet
from engine.plant.scenario import Scenario
from engine.schemas import Tuning


def score_fleet(
    scenarios: Sequence[Scenario], tuning: Tuning | None = None, diagnose: bool = True
) -> list[RunScore]:
    """Replay the scenarios together and score every asset (one RunScore per asset)."""
    if len({s.asset for s in scenarios}) != len(scenarios):
        scenarios = as_fleet(scenarios)
    scorer = StreamScorer(scenarios[0].name if len(scenarios) == 1 else "fleet")
    for msg in replay_fleet(scenarios, tuning=tuning, diagnose=diagnose):
        scorer.add(msg)
    return scorer.result()


def score_scenario(
    scenario: Scenario,
    seed: int | None = None,
    tuning: Tuning | None = None,
    diagnose: bool = True,
) -> list[RunScore]:
    if seed is not None:
        scenario = scenario.model_copy(update={"seed": int(seed)})
    return score_fleet([scenario], tuning, diagnose)


def _work(args: tuple[list[Scenario], Tuning | None, bool]) -> list[RunScore]:
    return score_fleet(*args)


def evaluate(
    scenarios: list[Scenario],
    *,
    label: str = "",
    tuning: Tuning | None = None,
    jobs: int | None = None,
    diagnose: bool = True,
    assets: int = 1,
) -> EvalMetrics:
    """Replay and score every scenario (each with its own seed), ``assets`` at a time as one
    fleet; ``jobs`` worker processes (default: the CPU count; 1 = in this process)."""
    if assets < 1:
        raise ValueError("assets must be at least 1")
    jobs = jobs or os.cpu_count() or 1
    fleets = [scenarios[i : i + assets] for i in range(0, len(scenarios), assets)]
    work = [(f, tuning, diagnose) for f in fleets]
    if jobs <= 1 or len(work) <= 1:
        results = [_work(w) for w in work]
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
            results = list(pool.map(_work, work, chunksize=1))
    runs = [r for rs in results for r in rs]
    return aggregate(runs, label=label, scenarios=len(scenarios))
