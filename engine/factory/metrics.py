"""Scenario metrics from a simulation result (spec section 8, with stated definitions).

- **Utilization** of a machine = busy hours / hours in its availability window
  (``available_end - available_start``). The scheduler never places work outside the window,
  so every value is in [0, 1]. Busy hours include hours a slowdown adds.
- **Bottleneck** = the machine with the most busy hours (the spec's algorithm); ties go to the
  higher utilization, then to the machine listed first in the config.
- **Lateness** of a completed job = ``max(0, completion - due)``; ``max_lateness_hours`` and
  ``avg_lateness_hours`` (rounded to 2 decimals) are over completed jobs. An incomplete job (a
  step that could not be scheduled) is late, listed in ``incomplete_job_ids``, and gets no
  invented lateness figure.
- **Makespan** = end of the last allocation, in hours from 0.
"""

from __future__ import annotations

from engine.factory.models import FactoryConfig
from engine.factory.results import ScenarioMetrics, SimulationResult
from engine.factory.scenario import ScenarioSpec
from engine.factory.shop import Decoded, Shop, compile_shop, decode, gc_paused, job_completions


def compute_metrics(result: SimulationResult, factory: FactoryConfig) -> ScenarioMetrics:
    busy = {
        m.id: sum(a.duration for a in result.machine_allocations.get(m.id, ()))
        for m in factory.machines
    }
    util = {m.id: round(busy[m.id] / m.available_hours, 4) for m in factory.machines}
    order = {m.id: i for i, m in enumerate(factory.machines)}
    bottleneck = min(busy, key=lambda mid: (-busy[mid], -util[mid], order[mid]))

    lateness: dict[str, int | None] = {}
    completion: dict[str, int | None] = {}
    for jid, tl in result.job_timelines.items():
        lateness[jid] = tl.lateness_hours
        completion[jid] = tl.completion_time
    done = [v for v in lateness.values() if v is not None]
    late_ids = tuple(result.late_jobs)
    return ScenarioMetrics(
        scenario_label=result.scenario_label,
        num_jobs=len(result.job_timelines),
        num_late_jobs=len(late_ids),
        late_job_ids=late_ids,
        max_lateness_hours=max(done, default=0),
        avg_lateness_hours=round(sum(done) / len(done), 2) if done else 0.0,
        makespan_hours=result.makespan,
        bottleneck_machine_id=bottleneck,
        utilization_by_machine=util,
        busy_hours_by_machine=busy,
        lateness_by_job=lateness,
        completion_by_job=completion,
        incomplete_job_ids=tuple(result.incomplete_jobs),
        unscheduled_step_ids=tuple(u.step_id for u in result.unscheduled),
    )


def total_lateness(metrics: ScenarioMetrics) -> int:
    return sum(v for v in metrics.lateness_by_job.values() if v is not None)


def score(metrics: ScenarioMetrics) -> tuple[int, int, int, int]:
    """Lower is better: incomplete jobs, then total lateness, then late jobs, then makespan.
    Used to rank what-if levers."""
    return (
        len(metrics.incomplete_job_ids),
        total_lateness(metrics),
        metrics.num_late_jobs,
        metrics.makespan_hours,
    )


def step_waits(result: SimulationResult, factory: FactoryConfig) -> dict[str, tuple[int, int]]:
    """step id -> (ready hour, hours waited for the machine) for every scheduled step.

    Ready = the job's release (as the scenario set it) or the end of the last predecessor.
    A long wait on one machine is the "why" behind a late job: it queued there.
    """
    precedence = {s.id: s.precedence for j in factory.jobs for s in j.steps}
    out: dict[str, tuple[int, int]] = {}
    for tl in result.job_timelines.values():
        ends = {st.step_id: st.end_time for st in tl.steps_timeline}
        for st in tl.steps_timeline:
            ready = max([tl.release_time, *(ends[p] for p in precedence[st.step_id])])
            out[st.step_id] = (ready, st.start_time - ready)
    return out


def metrics_of(shop: Shop, decoded: Decoded, factory: FactoryConfig) -> ScenarioMetrics:
    """The same metrics as :func:`compute_metrics`, straight from the decoder's arrays: what
    the levers compare when they try dozens of variants (no result models are built)."""
    busy_by_index = [0] * len(shop.machine_ids)
    for op in decoded.order:
        busy_by_index[shop.op_machine[op]] += decoded.ends[op] - decoded.starts[op]
    busy = dict(zip(shop.machine_ids, busy_by_index, strict=True))
    util = {m.id: round(busy[m.id] / m.available_hours, 4) for m in factory.machines}
    order = {m.id: i for i, m in enumerate(factory.machines)}
    bottleneck = min(busy, key=lambda mid: (-busy[mid], -util[mid], order[mid]))
    done_by_index = job_completions(shop, decoded)
    lateness: dict[str, int | None] = {}
    completion: dict[str, int | None] = {}
    late: list[str] = []
    incomplete: list[str] = []
    for j, jid in enumerate(shop.job_ids):
        done = done_by_index[j]
        if done < 0:
            lateness[jid] = completion[jid] = None
            late.append(jid)
            incomplete.append(jid)
        else:
            completion[jid] = done
            lateness[jid] = max(0, done - shop.job_due[j])
            if done > shop.job_due[j]:
                late.append(jid)
    ids = [j.id for j in factory.jobs]  # report in config order, as compute_metrics does
    finished = [v for v in lateness.values() if v is not None]
    placed = set(decoded.order)
    return ScenarioMetrics.model_construct(
        scenario_label=shop.spec.label,
        num_jobs=len(ids),
        num_late_jobs=len(late),
        late_job_ids=tuple(j for j in ids if j in set(late)),
        max_lateness_hours=max(finished, default=0),
        avg_lateness_hours=round(sum(finished) / len(finished), 2) if finished else 0.0,
        makespan_hours=max((decoded.ends[op] for op in decoded.order), default=0),
        bottleneck_machine_id=bottleneck,
        utilization_by_machine=util,
        busy_hours_by_machine=busy,
        lateness_by_job={j: lateness[j] for j in ids},
        completion_by_job={j: completion[j] for j in ids},
        incomplete_job_ids=tuple(j for j in ids if j in set(incomplete)),
        unscheduled_step_ids=tuple(
            shop.step_ids[op] for ops in shop.job_ops for op in ops if op not in placed
        ),
    )


def evaluate(factory: FactoryConfig, spec: ScenarioSpec) -> ScenarioMetrics:
    """Metrics of ``factory`` under ``spec`` by its heuristic, without building the result."""
    from engine.factory.scheduler import planned_sequence

    with gc_paused():
        shop = compile_shop(factory, spec)
        return metrics_of(shop, decode(shop, planned_sequence(shop)), factory)


_WAITS: dict[int, tuple[SimulationResult, dict[str, tuple[int, int]]]] = {}


def waits_of(result: SimulationResult, factory: FactoryConfig) -> dict[str, tuple[int, int]]:
    """:func:`step_waits`, computed once per result (the briefing asks for each late job;
    a result is immutable). Keeps the last few results only."""
    hit = _WAITS.get(id(result))
    if hit is not None and hit[0] is result:
        return hit[1]
    waits = step_waits(result, factory)
    if len(_WAITS) >= 16:
        _WAITS.clear()
    _WAITS[id(result)] = (result, waits)
    return waits
