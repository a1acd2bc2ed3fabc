"""Futures: intent -> 2-3 scenarios from the closed set (offline rules; Claude in ``agents``).

The offline rules, which are also the pipeline's fallback:

- Always ``Baseline``.
- ``RUSH_ARRIVES``: the job the planner called a rush; otherwise the job whose rush would hurt
  the protected job most, otherwise the most disruptive one (each candidate is tried on the
  simulator; ties keep EDD order). It arrives at hour 2 (hour 1 when the job is due sooner)
  and is due at ``arrival + longest path of its steps + 1``: tight, but feasible on an empty
  shop.
- ``MACHINE_SLOWDOWN``: the machine the planner worried about, otherwise the baseline
  bottleneck. Factor by risk tolerance (LOW 2.5x: a cautious planner wants the harder test,
  MEDIUM 2.0x, HIGH 1.5x). Window: a quarter of the horizon (at least 2h) placed where the
  machine is busiest in the baseline, ties going to the start nearest a third of the way into
  the day (8-14h in a 24h day).
"""

from __future__ import annotations

from typing import Any

from engine.factory.metrics import compute_metrics, score
from engine.factory.models import (
    BASELINE_SPEC,
    FactoryConfig,
    Job,
    ScenarioIntent,
    ScenarioSpec,
    ScenarioType,
    SimulationResult,
)
from engine.factory.scheduler import simulate, step_order
from engine.factory.whatif import candidates_per_lever

SLOWDOWN_FACTOR = {"LOW": 2.5, "MEDIUM": 2.0, "HIGH": 1.5}
MAX_RUSH_CANDIDATES = 12
"""Jobs tried when choosing the most disruptive rush (the earliest-due ones); fewer on big
factories (see ``whatif.candidates_per_lever``)."""


def critical_path_hours(job: Job) -> int:
    """Longest chain of step durations through the job's precedence graph."""
    finish: dict[str, int] = {}
    for step in step_order(job):
        finish[step.id] = max((finish[p] for p in step.precedence), default=0) + step.duration_hours
    return max(finish.values())


def rush_params(factory: FactoryConfig, job: Job) -> dict[str, Any]:
    cp = critical_path_hours(job)
    arrival = 2 if job.due_time > 2 and factory.time_horizon > cp + 3 else 1
    arrival = min(arrival, factory.time_horizon - 1)
    due = min(factory.time_horizon, arrival + cp + 1)
    return {"rush_job_id": job.id, "arrival_time": arrival, "due_time": due}


def rush_spec(factory: FactoryConfig, job: Job) -> ScenarioSpec:
    return ScenarioSpec(
        type=ScenarioType.RUSH_ARRIVES,
        label=f"Rush {job.id}",
        modifications=rush_params(factory, job),
    )


def choose_rush_job(factory: FactoryConfig, intent: ScenarioIntent) -> Job:
    if intent.rush_job_id in factory.job_ids:
        return factory.job(intent.rush_job_id)
    edd = sorted(factory.jobs, key=lambda j: (j.due_time, -j.priority))
    limit = min(MAX_RUSH_CANDIDATES, max(2, candidates_per_lever(factory) // 4))
    candidates = [j for j in edd if j.id != intent.protected_job_id][:limit]
    if not candidates:
        return edd[0]
    best: tuple[Any, ...] | None = None
    chosen = candidates[0]
    for job in candidates:
        spec = rush_spec(factory, job)
        metrics = compute_metrics(simulate(factory, spec), factory)
        harm_protected = 0
        if intent.protected_job_id is not None:
            lateness = metrics.lateness_by_job.get(intent.protected_job_id, 0)
            harm_protected = factory.time_horizon + 1 if lateness is None else lateness
        # Hurt to the other jobs: the rush job's own lateness is not the planner's risk.
        others = [
            factory.time_horizon + 1 if v is None else v
            for jid, v in metrics.lateness_by_job.items()
            if jid != job.id
        ]
        key = (harm_protected, sum(others), score(metrics))
        if best is None or key > best:
            best, chosen = key, job
    return chosen


def slowdown_window(
    factory: FactoryConfig, machine_id: str, baseline: SimulationResult
) -> tuple[int, int]:
    machine = factory.machine(machine_id)
    length = max(2, round(factory.time_horizon / 4))
    length = min(length, machine.available_hours)
    target = machine.available_start + machine.available_hours // 3
    busy = [(a.start_time, a.end_time) for a in baseline.machine_allocations[machine_id]]
    best: tuple[int, int] | None = None
    start_choice = machine.available_start
    # Candidate starts: every hour for short horizons, a bounded sample for long ones.
    span = machine.available_end - length - machine.available_start
    stride = max(1, span // 200)
    for start in range(machine.available_start, machine.available_end - length + 1, stride):
        end = start + length
        overlap = sum(max(0, min(b, end) - max(a, start)) for a, b in busy)
        key = (overlap, -abs(start - target))
        if best is None or key > best:
            best, start_choice = key, start
    return start_choice, start_choice + length


def futures_offline(factory: FactoryConfig, intent: ScenarioIntent) -> list[dict[str, Any]]:
    """Three scenarios in the spec's JSON shape (validated by the orchestrator like any other)."""
    baseline = simulate(factory, BASELINE_SPEC)
    machine_id = intent.watch_machine_id
    if machine_id not in factory.machine_ids:
        machine_id = compute_metrics(baseline, factory).bottleneck_machine_id
    start, end = slowdown_window(factory, machine_id, baseline)
    rush_job = choose_rush_job(factory, intent)
    return [
        BASELINE_SPEC.model_dump(mode="json"),
        rush_spec(factory, rush_job).model_dump(mode="json"),
        {
            "type": ScenarioType.MACHINE_SLOWDOWN.value,
            "label": f"{machine_id} slowdown",
            "modifications": {
                "machine_id": machine_id,
                "slowdown_factor": SLOWDOWN_FACTOR[intent.risk_tolerance.value],
                "start_time": start,
                "end_time": end,
            },
        },
    ]
