"""Levers: every recommended action is first tried on the deterministic simulator.

Only honest levers are offered:

- ``replan`` — for a scenario with late jobs, the best sequence the dispatch rules and the
  search find under that scenario (``plan.find_plan`` with a smaller budget). For a fact (the
  note or a work order) it is what to do; for a probe it is a contingency ("if M2 slows down").
- ``relax_rush_due`` — for a rush the note states: the smallest later due time, up to the job's
  own due time (a rush never loosens a due date), that clears the lateness: what to negotiate.
- ``move_window`` — for planned maintenance only (from the note or a work order): where the
  same stop costs least. Its timing is the planner's choice, so moving it is a real lever. An
  outage, or a disruption the system made up to test the day, is never offered as a fix.

A lever is kept only when it strictly improves its scenario (the plan's score: incomplete jobs,
lateness of the jobs that must not be late, weighted lateness, late jobs, makespan).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from engine.factory.futures import candidates_per_lever, down_spec, spread
from engine.factory.metrics import compute_metrics, evaluate, total_lateness
from engine.factory.models import FactoryConfig
from engine.factory.plan import find_plan, intent_score, respects_note
from engine.factory.results import ScenarioMetrics, SimulationResult, WhatIfResult
from engine.factory.scenario import ScenarioIntent, ScenarioSpec

REPLAN_SECONDS = 0.15
MAX_SEQUENCE_SHOWN = 6
MAX_REPLAN_STEPS = 1_500
"""Above this many steps a scenario is not re-planned (each re-plan runs every dispatch rule
and a search; the baseline plan still does): the brief stays interactive at any size."""

Kind = Literal["replan", "relax_rush_due", "move_window"]


def explore(
    factory: FactoryConfig,
    scenarios: Iterable[ScenarioSpec],
    metrics: dict[str, ScenarioMetrics],
    results: dict[str, SimulationResult],
    intent: ScenarioIntent | None = None,
    *,
    replan_seconds: float = REPLAN_SECONDS,
) -> list[WhatIfResult]:
    out: list[WhatIfResult] = []
    for spec in scenarios:
        lever = _Lever(factory, spec, metrics[spec.label], intent)
        if spec.type.value == "BASELINE" or not lever.before.late_job_ids:
            continue
        if sum(len(j.steps) for j in factory.jobs) <= MAX_REPLAN_STEPS:
            found = _replan(lever, results[spec.label], replan_seconds)
            if found:
                out.append(found)
        if spec.rush is not None and spec.origin == "note":
            relaxed = _relax_rush(lever)
            if relaxed:
                out.append(relaxed)
        down = spec.down
        if down is not None and down.planned and spec.is_fact:
            moved = _move_window(lever)
            if moved:
                out.append(moved)
    return out


def job_order_on(result: SimulationResult, machine_id: str) -> list[str]:
    """Jobs in the order they use ``machine_id`` (each once, by first start)."""
    return list(dict.fromkeys(a.job_id for a in result.machine_allocations[machine_id]))


def order_text(jobs: list[str], limit: int = MAX_SEQUENCE_SHOWN) -> str:
    shown = " → ".join(jobs[:limit])
    return shown + (f" → … ({len(jobs) - limit} more)" if len(jobs) > limit else "")


@dataclass(frozen=True)
class _Lever:
    """One scenario the levers are tried on: what each needs to try a change and judge it."""

    factory: FactoryConfig
    spec: ScenarioSpec
    before: ScenarioMetrics
    intent: ScenarioIntent | None

    def search(
        self,
        values: list[int],
        trial: Callable[[int], ScenarioSpec | None],
        key: Callable[[int, ScenarioMetrics], tuple[int, ...]],
        first_clear: bool = False,
    ) -> tuple[int, ScenarioMetrics] | None:
        """The value, among an even spread of ``values``, whose ``trial`` scenario scores
        lowest by ``key`` (the first of equals), with its metrics; a trial of None is no
        change and is skipped. ``first_clear``: stop at the first value that leaves no job
        late (the smallest concession that clears the day)."""
        best: tuple[tuple[int, ...], int, ScenarioMetrics] | None = None
        for value in spread(values, candidates_per_lever(self.factory)):
            spec = trial(value)
            if spec is None:
                continue
            after = evaluate(self.factory, spec)
            score = key(value, after)
            if best is None or score < best[0]:
                best = (score, value, after)
            if first_clear and after.num_late_jobs == 0:
                break
        return None if best is None else (best[1], best[2])


def _result(
    spec: ScenarioSpec,
    kind: Kind,
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


def _replan(lever: _Lever, current: SimulationResult, seconds: float) -> WhatIfResult | None:
    factory = lever.factory
    found = find_plan(factory, lever.spec, intent=lever.intent, seconds=seconds)
    if found.score >= found.baseline_score:
        return None
    after = compute_metrics(found.result, factory)
    if not respects_note(lever.before, after, lever.intent):
        return None
    neck = lever.before.bottleneck_machine_id
    order = job_order_on(found.result, neck)
    was = job_order_on(current, neck)
    if order != was:
        title = f"Re-plan: on {neck} run {order_text(order)}"
    else:
        changed = [
            m.id
            for m in factory.machines
            if job_order_on(found.result, m.id) != job_order_on(current, m.id)
        ]
        where = changed[0] if changed else neck
        title = f"Re-plan: on {where} run {order_text(job_order_on(found.result, where))}"
    return _result(
        lever.spec,
        "replan",
        title,
        lever.before,
        after,
        None,
        {"method": found.method[:120], "sequence": " ".join(found.sequence)[:4000]},
    )


def _relax_rush(lever: _Lever) -> WhatIfResult | None:
    rush = lever.spec.rush
    assert rush is not None
    own = lever.factory.job(rush.rush_job_id).due_time
    found = lever.search(
        list(range(rush.due_time + 1, own + 1)),
        lambda due: lever.spec.model_copy(
            update={"modifications": rush.model_copy(update={"due_time": due})}
        ),
        lambda _due, after: intent_score(after, lever.intent),
        first_clear=True,
    )
    if found is None or not respects_note(lever.before, found[1], lever.intent, free_only=True):
        return None
    due, after = found
    return _result(
        lever.spec,
        "relax_rush_due",
        f"Agree {rush.rush_job_id} at {due}h instead of {rush.due_time}h",
        lever.before,
        after,
        rush.rush_job_id,
        {"due_time": due, "was_due_time": rush.due_time, "own_due_time": own},
    )


def _move_window(lever: _Lever) -> WhatIfResult | None:
    down = lever.spec.down
    assert down is not None
    machine = lever.factory.machine(down.machine_id)
    length = down.end_time - down.start_time

    def moved(start: int) -> ScenarioSpec | None:
        if start == down.start_time:
            return None  # where it is already: not a move
        return down_spec(
            down.machine_id, start, start + length, planned=True, label=lever.spec.label
        )

    found = lever.search(
        list(range(machine.available_start, machine.available_end - length + 1)),
        moved,
        lambda start, after: (*intent_score(after, lever.intent), abs(start - down.start_time)),
    )
    if found is None or not respects_note(lever.before, found[1], lever.intent):
        return None
    start, after = found
    return _result(
        lever.spec,
        "move_window",
        f"Move the {down.machine_id} maintenance to {start}-{start + length}h",
        lever.before,
        after,
        None,
        {
            "machine_id": down.machine_id,
            "start_time": start,
            "end_time": start + length,
            "was_start_time": down.start_time,
            "was_end_time": down.end_time,
        },
    )
