"""Futures: intent -> 2-3 scenarios from the closed set (offline rules; Claude in ``agents``).

The note decides the set; the system only tests the day where the note leaves room:

1. ``Baseline``, always.
2. Every machine event the note states (at most two): an outage or maintenance becomes
   ``MACHINE_DOWN`` (maintenance without a time is placed where it costs least: its timing is
   the planner's choice), "running slow" ``MACHINE_SLOWDOWN``.
3. The rush the note names, with the note's arrival and due times. A rush never loosens a due
   date: the rush's due time is at most the job's own. Without times it arrives at hour 2
   (hour 1 when due sooner) and is due at ``arrival + longest path of its steps + 1``.
4. Probes, made up to test the day, only where the note leaves room. A note that states no
   machine event gets a slowdown of the machine it watches (or calls the bottleneck), else of
   the baseline bottleneck, where that machine is busiest; and, unless it names a rush or
   asks for a normal day, a rush probe (the job whose rush would hurt the protected job most,
   else the most disruptive; candidates are simulated). So a vague note gets the spec's
   default spread, a "normal day" one probe, and "M2 is down until 10" no probe at all.

Slowdown factor by risk tolerance: LOW 2.5x (a cautious planner wants the harder test),
MEDIUM 2.0x, HIGH 1.5x.
"""

from __future__ import annotations

from typing import Any

from engine.factory.metrics import evaluate, metrics_of, score
from engine.factory.models import FactoryConfig, Job
from engine.factory.scenario import (
    BASELINE_SPEC,
    EventKind,
    MachineEvent,
    Objective,
    ScenarioIntent,
    ScenarioSpec,
    ScenarioType,
)
from engine.factory.scheduler import planned_sequence, step_order
from engine.factory.shop import compile_shop, decode

SLOWDOWN_FACTOR = {"LOW": 2.5, "MEDIUM": 2.0, "HIGH": 1.5}
MAX_RUSH_CANDIDATES = 12
MAX_SCENARIOS = 3
MAINTENANCE_HOURS = 4
"""Length of a maintenance window the note gives no time for."""
STEP_BUDGET = 4_000
MAX_CANDIDATES = 48


def candidates_per_lever(factory: FactoryConfig) -> int:
    """Simulations one choice may try: every candidate on a small factory, a handful on a
    1,000-job one, so the futures stay interactive at any size."""
    steps = sum(len(j.steps) for j in factory.jobs)
    return max(3, min(MAX_CANDIDATES, STEP_BUDGET // max(1, steps)))


def critical_path_hours(job: Job) -> int:
    """Longest chain of step durations through the job's precedence graph."""
    finish: dict[str, int] = {}
    for step in step_order(job):
        finish[step.id] = max((finish[p] for p in step.precedence), default=0) + step.duration_hours
    return max(finish.values())


def rush_params(
    factory: FactoryConfig, job: Job, arrival: int | None = None, due: int | None = None
) -> dict[str, Any]:
    """A rush of ``job``: due at most at the job's own due time, after its arrival."""
    cp = critical_path_hours(job)
    if arrival is None:
        arrival = 2 if job.due_time > 2 and factory.time_horizon > cp + 3 else 1
    arrival = max(0, min(arrival, job.due_time - 1, factory.time_horizon - 1))
    if due is None:
        due = arrival + cp + 1
    due = max(arrival + 1, min(due, job.due_time, factory.time_horizon))
    return {"rush_job_id": job.id, "arrival_time": arrival, "due_time": due}


def rush_spec(
    factory: FactoryConfig, job: Job, arrival: int | None = None, due: int | None = None
) -> ScenarioSpec:
    return ScenarioSpec(
        type=ScenarioType.RUSH_ARRIVES,
        label=f"Rush {job.id}",
        modifications=rush_params(factory, job, arrival, due),
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
        metrics = evaluate(factory, rush_spec(factory, job))
        harm_protected = 0
        if intent.protected_job_id is not None:
            lateness = metrics.lateness_by_job.get(intent.protected_job_id, 0)
            harm_protected = factory.time_horizon + 1 if lateness is None else lateness
        others = [
            factory.time_horizon + 1 if v is None else v
            for jid, v in metrics.lateness_by_job.items()
            if jid != job.id
        ]
        key = (harm_protected, sum(others), score(metrics))
        if best is None or key > best:
            best, chosen = key, job
    return chosen


Load = dict[str, list[tuple[int, int]]]
"""Machine id -> the ``[start, end)`` hours it works in the baseline."""


def baseline_load(factory: FactoryConfig) -> tuple[Load, str]:
    """When each machine works in the baseline, and the bottleneck (no result models built)."""
    shop = compile_shop(factory, BASELINE_SPEC)
    dec = decode(shop, planned_sequence(shop))
    load: Load = {mid: [] for mid in shop.machine_ids}
    for op in dec.order:
        load[shop.machine_ids[shop.op_machine[op]]].append((dec.starts[op], dec.ends[op]))
    return load, metrics_of(shop, dec, factory).bottleneck_machine_id


def busiest_window(
    factory: FactoryConfig, machine_id: str, load: Load, length: int
) -> tuple[int, int]:
    """The ``length``-hour window where ``machine_id`` is busiest in the baseline (ties: the
    start nearest a third of the way into its window)."""
    machine = factory.machine(machine_id)
    length = max(1, min(length, machine.available_hours))
    target = machine.available_start + machine.available_hours // 3
    busy = load[machine_id]
    best: tuple[int, int] | None = None
    start_choice = machine.available_start
    span = machine.available_end - length - machine.available_start
    stride = max(1, span // 200)
    for start in range(machine.available_start, machine.available_end - length + 1, stride):
        end = start + length
        overlap = sum(max(0, min(b, end) - max(a, start)) for a, b in busy)
        key = (overlap, -abs(start - target))
        if best is None or key > best:
            best, start_choice = key, start
    return start_choice, start_choice + length


def cheapest_window(factory: FactoryConfig, machine_id: str, length: int) -> tuple[int, int]:
    """Where a ``length``-hour stop of ``machine_id`` costs the day least (simulated)."""
    machine = factory.machine(machine_id)
    length = max(1, min(length, machine.available_hours))
    starts = list(range(machine.available_start, machine.available_end - length + 1))
    starts = spread(starts, candidates_per_lever(factory))
    best: tuple[Any, ...] | None = None
    chosen = starts[0]
    for start in starts:
        spec = down_spec(machine_id, start, start + length, planned=True)
        key = (score(evaluate(factory, spec)), start)
        if best is None or key < best:
            best, chosen = key, start
    return chosen, chosen + length


def spread(values: list[int], limit: int) -> list[int]:
    """At most ``limit`` of ``values``, evenly spaced, the first and last included."""
    if len(values) <= limit or limit < 2:
        return values[: max(1, limit)] if len(values) > limit else values
    step = (len(values) - 1) / (limit - 1)
    return sorted({values[round(i * step)] for i in range(limit)})


def down_spec(
    machine_id: str, start: int, end: int, *, planned: bool, label: str | None = None
) -> ScenarioSpec:
    word = "maintenance" if planned else "down"
    label = label or f"{machine_id} {word} {start}-{end}h"
    return _window_spec(ScenarioType.MACHINE_DOWN, label, machine_id, start, end, planned=planned)


def slowdown_spec(
    machine_id: str, factor: float, start: int, end: int, label: str | None = None
) -> ScenarioSpec:
    label = label or f"{machine_id} slowdown"
    return _window_spec(
        ScenarioType.MACHINE_SLOWDOWN, label, machine_id, start, end, slowdown_factor=factor
    )


def _window_spec(
    kind: ScenarioType, label: str, machine_id: str, start: int, end: int, **more: Any
) -> ScenarioSpec:
    """A scenario on one machine over ``[start, end)`` (the modifications of ``_Window``)."""
    return ScenarioSpec(
        type=kind,
        label=label,
        modifications={"machine_id": machine_id, "start_time": start, "end_time": end, **more},
    )


def event_spec(
    factory: FactoryConfig, event: MachineEvent, intent: ScenarioIntent, load: Load
) -> ScenarioSpec:
    machine = factory.machine(event.machine_id)
    lo, hi = machine.available_start, machine.available_end
    start, end = event.start_time, event.end_time
    if event.kind is EventKind.SLOW:
        if start is None or end is None:
            start, end = busiest_window(
                factory, machine.id, load, max(2, round(factory.time_horizon / 4))
            )
        return slowdown_spec(machine.id, SLOWDOWN_FACTOR[intent.risk_tolerance.value], start, end)
    if start is None or end is None:
        length = end if start is None and end is not None else MAINTENANCE_HOURS
        if event.kind is EventKind.MAINTENANCE:
            start, end = cheapest_window(factory, machine.id, length)
        else:
            start, end = lo, min(hi, lo + max(length, round(factory.time_horizon / 4)))
    return down_spec(machine.id, start, end, planned=event.kind is EventKind.MAINTENANCE)


def futures_offline(factory: FactoryConfig, intent: ScenarioIntent) -> list[dict[str, Any]]:
    """2-3 scenarios in the spec's JSON shape (validated by the orchestrator like any other)."""
    load, neck = baseline_load(factory)
    specs: list[ScenarioSpec] = [BASELINE_SPEC]
    covered: set[str] = set()
    for event in intent.events[:2]:
        if event.machine_id in factory.machine_ids and event.machine_id not in covered:
            specs.append(event_spec(factory, event, intent, load))
            covered.add(event.machine_id)
    if intent.rush_job_id in factory.job_ids and len(specs) < MAX_SCENARIOS:
        job = factory.job(intent.rush_job_id)
        specs.append(rush_spec(factory, job, intent.rush_arrival_time, intent.rush_due_time))
    events_stated = bool(covered)
    watch = intent.watch_machine_id
    if len(specs) < MAX_SCENARIOS and not events_stated:  # test the machine side
        machine = watch if watch in factory.machine_ids else neck
        probe = _probe_slowdown(factory, machine, intent, load)
        if intent.rush_job_id is None and intent.objective is not Objective.BASELINE:
            specs.append(rush_spec(factory, choose_rush_job(factory, intent)))
        specs.append(probe)
    return [s.model_dump(mode="json", exclude={"origin", "ticket_id", "cause"}) for s in specs]


def _probe_slowdown(
    factory: FactoryConfig, machine_id: str, intent: ScenarioIntent, load: Load
) -> ScenarioSpec:
    start, end = busiest_window(factory, machine_id, load, max(2, round(factory.time_horizon / 4)))
    return slowdown_spec(machine_id, SLOWDOWN_FACTOR[intent.risk_tolerance.value], start, end)


def assign_origins(specs: list[ScenarioSpec], intent: ScenarioIntent) -> list[ScenarioSpec]:
    """Mark each scenario ``note`` when the note states it (its rush, a machine event), else
    ``probe``. Decided here, from the validated intent, never taken from an agent's word."""
    events = {e.machine_id: e for e in intent.events}
    out = []
    for spec in specs:
        origin = "probe"
        if spec.rush is not None and spec.rush.rush_job_id == intent.rush_job_id:
            origin = "note"
        window = spec.down or spec.slowdown
        if window is not None and window.machine_id in events:
            kind = events[window.machine_id].kind
            if (spec.down is not None) == (kind is not EventKind.SLOW):
                origin = "note"
        if spec.type is ScenarioType.BASELINE:
            origin = "note"
        out.append(spec.model_copy(update={"origin": origin}) if spec.origin != origin else spec)
    return out
