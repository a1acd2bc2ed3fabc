"""What-if levers: every recommended action is first tried on the deterministic simulator.

For each scenario where a job is late (or the protected job is at risk), three kinds of lever:

- ``run_first``: pull one job to the front of the sequence (the planner's "run X first").
  Tried for the protected job and the worst late jobs.
- ``relax_rush_due``: the smallest later due time for the rush order that removes the
  lateness (what to negotiate with the customer), or the best one within the horizon.
- ``move_slowdown``: the same slowdown window moved to where it hurts least (when to schedule
  the maintenance or tooling change), nearest the original on ties.

A lever is kept only when it strictly improves the scenario's score (incomplete jobs, total
lateness, late jobs, makespan), so the briefing never recommends something that does not help.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.factory.metrics import compute_metrics, score, total_lateness
from engine.factory.models import (
    FactoryConfig,
    ScenarioIntent,
    ScenarioMetrics,
    ScenarioSpec,
    WhatIfResult,
)
from engine.factory.scheduler import simulate

MAX_RUN_FIRST = 3
"""Jobs tried at the front of the queue per scenario."""
MAX_CANDIDATES = 48
"""Due times / window positions tried per lever; long horizons are sampled evenly."""
STEP_BUDGET = 4_000
"""Scheduled steps one lever may simulate in total: small factories try every candidate, a
1,000-job factory a handful, so the briefing stays interactive at any size."""


def candidates_per_lever(factory: FactoryConfig) -> int:
    steps = sum(len(j.steps) for j in factory.jobs)
    return max(3, min(MAX_CANDIDATES, STEP_BUDGET // max(1, steps)))


def explore(
    factory: FactoryConfig,
    scenarios: Iterable[ScenarioSpec],
    metrics: dict[str, ScenarioMetrics],
    intent: ScenarioIntent | None = None,
) -> list[WhatIfResult]:
    out: list[WhatIfResult] = []
    for spec in scenarios:
        before = metrics[spec.label]
        protected = intent.protected_job_id if intent is not None else None
        protected_hurt = protected is not None and protected in before.late_job_ids
        if not before.late_job_ids:
            continue
        out.extend(_run_first(factory, spec, before, protected if protected_hurt else None))
        if spec.rush is not None:
            found = _relax_rush(factory, spec, before)
            if found:
                out.append(found)
        if spec.slowdown is not None:
            found = _move_slowdown(factory, spec, before)
            if found:
                out.append(found)
    return out


def _result(
    spec: ScenarioSpec,
    kind: str,
    title: str,
    before: ScenarioMetrics,
    after: ScenarioMetrics,
    job_id: str | None = None,
    params: dict[str, int | float | str] | None = None,
) -> WhatIfResult:
    return WhatIfResult(
        scenario_label=spec.label,
        kind=kind,
        title=title,
        job_id=job_id,
        lateness_before=dict(before.lateness_by_job),
        lateness_after=dict(after.lateness_by_job),
        makespan_before=before.makespan_hours,
        makespan_after=after.makespan_hours,
        late_before=before.num_late_jobs,
        late_after=after.num_late_jobs,
        total_lateness_before=total_lateness(before),
        total_lateness_after=total_lateness(after),
        params=params or {},
    )


def _run_first(
    factory: FactoryConfig, spec: ScenarioSpec, before: ScenarioMetrics, protected: str | None
) -> list[WhatIfResult]:
    late = sorted(
        before.late_job_ids,
        key=lambda j: (before.lateness_by_job[j] is not None, -(before.lateness_by_job[j] or 0)),
    )
    candidates = list(dict.fromkeys([*([protected] if protected else []), *late]))
    out = []
    tries = min(MAX_RUN_FIRST, candidates_per_lever(factory) // 3 or 1)
    for job_id in candidates[:tries]:
        after = compute_metrics(simulate(factory, spec, first=(job_id,)), factory)
        if score(after) < score(before) or (
            job_id == protected and after.lateness_by_job[job_id] == 0
        ):
            out.append(_result(spec, "run_first", f"Run {job_id} first", before, after, job_id))
    return out


def _spread(values: list[int], limit: int) -> list[int]:
    """At most ``limit`` of ``values``, evenly spaced, the first and last included."""
    if len(values) <= limit:
        return values
    step = (len(values) - 1) / (limit - 1)
    return sorted({values[round(i * step)] for i in range(limit)})


def _relax_rush(
    factory: FactoryConfig, spec: ScenarioSpec, before: ScenarioMetrics
) -> WhatIfResult | None:
    rush = spec.rush
    assert rush is not None
    best: tuple[tuple[int, ...], int, ScenarioMetrics] | None = None
    dues = list(range(rush.due_time + 1, factory.time_horizon + 1))
    for due in _spread(dues, candidates_per_lever(factory)):
        trial = spec.model_copy(update={"modifications": rush.model_copy(update={"due_time": due})})
        after = compute_metrics(simulate(factory, trial), factory)
        key = score(after)
        if best is None or key < best[0]:
            best = (key, due, after)
        if after.num_late_jobs == 0:
            break  # the smallest concession that clears the day
    if best is None or best[0] >= score(before):
        return None
    _, due, after = best
    return _result(
        spec,
        "relax_rush_due",
        f"Agree {rush.rush_job_id} at {due}h instead of {rush.due_time}h",
        before,
        after,
        rush.rush_job_id,
        {"due_time": due, "was_due_time": rush.due_time},
    )


def _move_slowdown(
    factory: FactoryConfig, spec: ScenarioSpec, before: ScenarioMetrics
) -> WhatIfResult | None:
    slow = spec.slowdown
    assert slow is not None
    length = slow.end_time - slow.start_time
    starts = list(range(0, factory.time_horizon - length + 1))
    best: tuple[tuple[int, ...], int, int, ScenarioMetrics] | None = None
    for start in _spread(starts, candidates_per_lever(factory)):
        if start == slow.start_time:
            continue
        trial = spec.model_copy(
            update={
                "modifications": slow.model_copy(
                    update={"start_time": start, "end_time": start + length}
                )
            }
        )
        after = compute_metrics(simulate(factory, trial), factory)
        key = (*score(after), abs(start - slow.start_time))
        if best is None or key < best[0]:
            best = (key, start, start + length, after)
    if best is None or best[0][:4] >= score(before):
        return None
    _, start, end, after = best
    return _result(
        spec,
        "move_slowdown",
        f"Move the {slow.machine_id} slowdown to {start}-{end}h",
        before,
        after,
        None,
        {
            "machine_id": slow.machine_id,
            "start_time": start,
            "end_time": end,
            "was_start_time": slow.start_time,
            "was_end_time": slow.end_time,
        },
    )
