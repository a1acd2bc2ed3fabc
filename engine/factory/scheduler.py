"""The deterministic core: EDD list scheduling with greedy, gap-filling machine allocation.

Spec section 8, exactly:

1. Apply the scenario to the factory (:func:`apply_scenario`): a rush job gets its arrival as
   release time and its tight due time; a slowdown makes a machine work at
   ``1/slowdown_factor`` speed inside its window.
2. Sequence the jobs by due time (EDD). Ties: higher ``priority`` first, then earlier release,
   then the order of the config file. ``scheduling_heuristic: fcfs`` sequences by release time
   (then config order) instead. A what-if may pull chosen jobs to the front (``first=``).
3. For each job in that order, for each step in precedence order (config order among steps
   that are ready together): place the step at the **earliest** whole hour that is

   - at or after the job's release and the end of every predecessor,
   - inside its machine's availability window ``[available_start, available_end)``, and
   - in a free gap of that machine long enough for the whole step (no preemption); gaps left
     earlier by other jobs are filled when the step fits.

   A step that fits in no gap before the window closes is *unscheduled*: it is never placed
   outside the window, its successors are unscheduled too, and its job is incomplete.

Slowdown arithmetic: a step that starts at ``s`` needs ``d`` hours of work; outside the window
the machine does one hour of work per hour, inside it ``1/f``. The finish time is computed
exactly, then rounded to the nearest whole hour (halves up). Finishing is monotone in the start
time, so the earliest start in a gap is also the best one in that gap.

A ``MACHINE_DOWN`` window is time taken out of the machine's free gaps before anything is
placed: nothing runs on it, and no step spans it.

The placement itself (the inner loop) is ``shop.decode``, shared with the dispatch rules and
the plan search; this module turns the spec's job order into a step sequence, builds the
result models from the decoded arrays, and checks every result's invariants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel

from engine.factory.models import FactoryConfig, Job
from engine.factory.results import (
    Allocation,
    JobTimeline,
    SimulationResult,
    StepTimeline,
    UnscheduledStep,
)
from engine.factory.scenario import ScenarioSpec
from engine.factory.shop import (
    Decoded,
    ScenarioError,
    Shop,
    apply_scenario,
    compile_shop,
    decode,
    gc_paused,
    job_order_sequence,
    slowed_end,
    step_order,
)

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "ScenarioError",
    "apply_scenario",
    "build_result",
    "check_result",
    "job_sequence",
    "simulate",
    "simulate_sequence",
    "slowed_end",
    "step_order",
]


def job_sequence(factory: FactoryConfig, first: Sequence[str] = ()) -> list[Job]:
    """Jobs in scheduling order: ``first`` (in that order), then EDD (or FCFS) with the
    stated tie-breaks."""
    index = {j.id: i for i, j in enumerate(factory.jobs)}
    if factory.scheduling_heuristic == "fcfs":  # the dispatch rules sequence jobs by due too

        def key(j: Job) -> tuple[int, ...]:
            return (j.release_time, index[j.id])
    else:

        def key(j: Job) -> tuple[int, ...]:
            return (j.due_time, -j.priority, j.release_time, index[j.id])

    pulled = [factory.job(jid) for jid in dict.fromkeys(first) if jid in index]
    pulled_ids = {j.id for j in pulled}
    rest = sorted((j for j in factory.jobs if j.id not in pulled_ids), key=key)
    return pulled + rest


DISPATCH_HEURISTICS = {"edd_dispatch": "EDD", "atc": "ATC", "mdd": "MDD", "mod": "MOD"}
HEURISTIC_NAMES = {"earliest_due_date": "EDD list", "fcfs": "FCFS list", **DISPATCH_HEURISTICS}
"""How each ``scheduling_heuristic`` is named in the briefing and the plan's rule table."""


def planned_sequence(shop: Shop, first: Sequence[str] = ()) -> list[int]:
    """The step sequence of the factory's own heuristic: the spec's list rule (whole jobs in
    EDD or FCFS order, ``first`` pulled to the front) or the dispatch rule it names."""
    rule = DISPATCH_HEURISTICS.get(shop.factory.scheduling_heuristic)
    if rule is not None and not first:
        from engine.factory.dispatch import dispatch

        return dispatch(shop, rule)
    index = {jid: j for j, jid in enumerate(shop.job_ids)}
    return job_order_sequence(shop, [index[j.id] for j in job_sequence(shop.factory, first)])


def simulate(
    factory: FactoryConfig, spec: ScenarioSpec, *, first: Sequence[str] = ()
) -> SimulationResult:
    """Schedule ``factory`` under ``spec`` by its heuristic (the spec's EDD list rule unless
    the factory names another). Pure and deterministic: same input, same result."""
    with gc_paused():
        shop = compile_shop(factory, spec)
        return build_result(shop, decode(shop, planned_sequence(shop, first)), factory)


def simulate_sequence(
    factory: FactoryConfig, spec: ScenarioSpec, step_ids: Sequence[str]
) -> SimulationResult:
    """Schedule the steps in the given order (a plan's sequence) by the same placement rule."""
    with gc_paused():
        shop = compile_shop(factory, spec)
        index = {sid: i for i, sid in enumerate(shop.step_ids)}
        return build_result(shop, decode(shop, [index[s] for s in step_ids]), factory)


def build_result(shop: Shop, decoded: Decoded, factory: FactoryConfig) -> SimulationResult:
    """The result models for a decoded schedule (``factory`` is the original, for job order).

    Built unvalidated (``model_construct``, or ``pydantic_compat.trusted`` for a large
    factory): every field comes from validated inputs and the decoder, and
    :func:`check_result` re-checks the whole result before anything uses it.
    """
    starts, ends, ready = decoded.starts, decoded.ends, decoded.ready
    make = _maker(shop.n_ops)
    allocations: dict[str, list[Allocation]] = {mid: [] for mid in shop.machine_ids}
    timelines: dict[str, JobTimeline] = {}
    for j, ops in enumerate(shop.job_ops):
        jid = shop.job_ids[j]
        steps_tl = []
        missing = []
        completion = 0
        for op in ops:
            sid = shop.step_ids[op]
            if starts[op] < 0:
                missing.append(sid)
                continue
            mid = shop.machine_ids[shop.op_machine[op]]
            start, end = starts[op], ends[op]
            completion = max(completion, end)
            allocations[mid].append(
                make(
                    Allocation,
                    {
                        "step_id": sid,
                        "job_id": jid,
                        "machine_id": mid,
                        "start_time": start,
                        "end_time": end,
                    },
                )
            )
            steps_tl.append(
                make(
                    StepTimeline,
                    {
                        "step_id": sid,
                        "job_id": jid,
                        "machine_id": mid,
                        "start_time": start,
                        "end_time": end,
                        "duration_hours": end - start,
                        "base_duration_hours": shop.op_dur[op],
                    },
                )
            )
        done = None if missing else completion
        due = shop.job_due[j]
        timelines[jid] = make(
            JobTimeline,
            {
                "job_id": jid,
                "steps_timeline": tuple(steps_tl),
                "completion_time": done,
                "due_time": due,
                "release_time": shop.job_release[j],
                "is_late": done is None or done > due,
                "unscheduled_step_ids": tuple(missing),
            },
        )
    unscheduled = []
    placed = set(decoded.order)
    for op in (op for ops in shop.job_ops for op in ops):  # job by job, precedence order
        if op in placed:
            continue
        unscheduled.append(_unscheduled(shop, op, ready[op], starts))
    by_machine = {mid: tuple(sorted(allocs, key=_start)) for mid, allocs in allocations.items()}
    makespan = max((e for e in ends if e >= 0), default=0)
    ordered = {j.id: timelines[j.id] for j in factory.jobs}
    return SimulationResult.model_construct(
        scenario_label=shop.spec.label,
        scenario=shop.spec,
        job_timelines=ordered,
        machine_allocations=by_machine,
        unscheduled=tuple(unscheduled),
        makespan=makespan,
    )


TRUSTED_FROM = 500
"""Steps from which a result's models are made by ``pydantic_compat.trusted`` (2.5x faster
than ``model_construct``; its import-time self-check costs ~5 ms, which only a large factory's
thousands of models repay: the toy's ``brief`` does not pay it)."""


def _maker(n_ops: int) -> Callable[[type[M], dict[str, Any]], M]:
    if n_ops >= TRUSTED_FROM:
        from engine.pydantic_compat import trusted

        return trusted
    return _construct


def _construct(cls: type[M], values: dict[str, Any]) -> M:
    return cls.model_construct(**values)


_start = attrgetter("start_time")
_start_end = attrgetter("start_time", "end_time")


def _unscheduled(shop: Shop, op: int, ready: int, starts: list[int]) -> UnscheduledStep:
    m = shop.op_machine[op]
    mid = shop.machine_ids[m]
    preds = [shop.step_ids[p] for p in shop.op_preds[op] if starts[p] < 0]
    if preds or ready < 0:
        why = f"predecessor {preds[0] if preds else '?'} did not run"
    else:
        lo, hi = shop.windows[m]
        if ready >= hi:
            why = f"ready at {ready}h, after {mid}'s window closes at {hi}h"
        else:
            why = (
                f"no free {shop.op_dur[op]}h slot on {mid} between "
                f"{max(ready, lo)}h and its window end {hi}h"
            )
    return UnscheduledStep.model_construct(
        step_id=shop.step_ids[op],
        job_id=shop.job_ids[shop.op_job[op]],
        machine_id=mid,
        duration_hours=shop.op_dur[op],
        reason=why,
    )


# --------------------------------------------------------------------------------------------
# Invariants of a result (checked before any metric is computed)
# --------------------------------------------------------------------------------------------


def check_result(result: SimulationResult, factory: FactoryConfig) -> list[str]:
    """Every way ``result`` breaks the rules of ``factory`` under its scenario; [] when sound.

    No overlap on a machine, every allocation inside its machine's window, precedence and
    release respected, durations at least nominal (exactly nominal off a slowdown), every step
    either allocated once or listed as unscheduled, ids real.
    """
    with gc_paused():
        return _check(result, factory)


class _StepFacts(NamedTuple):
    job_id: str
    release_time: int
    machine_id: str
    duration_hours: int
    precedence: tuple[str, ...]


def _check(result: SimulationResult, factory: FactoryConfig) -> list[str]:
    problems: list[str] = []
    try:
        effective = apply_scenario(factory, result.scenario)
    except ValueError as exc:
        return [f"scenario does not fit the factory: {exc}"]
    slow = result.scenario.slowdown
    down = result.scenario.down
    # What the passes need of each step, read once in the factory's own order.
    steps = {
        s.id: _StepFacts(j.id, j.release_time, s.machine_id, s.duration_hours, s.precedence)
        for j in effective.jobs
        for s in j.steps
    }
    if set(result.machine_allocations) != set(effective.machine_ids):
        problems.append("machine_allocations must list every machine of the factory")
    if set(result.job_timelines) != set(effective.job_ids):
        problems.append("job_timelines must list every job of the factory")

    # (start, end) per allocated step: the passes after the first read these, not the
    # allocation objects again (scattered in memory: on a large factory each read misses the
    # caches, and the objects were read three more times).
    placed: dict[str, tuple[int, int]] = {}
    machines = {m.id: m for m in effective.machines}
    for mid, allocs in result.machine_allocations.items():
        machine = machines.get(mid)
        if machine is None:
            problems.append(f"unknown machine {mid}")
            continue
        previous: Allocation | None = None
        for a in sorted(allocs, key=_start_end):
            if a.step_id not in steps:
                problems.append(f"unknown step {a.step_id} on {mid}")
                continue
            step = steps[a.step_id]
            if a.step_id in placed:
                problems.append(f"step {a.step_id} allocated twice")
            placed[a.step_id] = (a.start_time, a.end_time)
            if step.machine_id != mid or a.machine_id != mid or a.job_id != step.job_id:
                problems.append(f"step {a.step_id} allocated on the wrong machine or job")
            if a.start_time < machine.available_start or a.end_time > machine.available_end:
                problems.append(
                    f"{a.step_id} [{a.start_time},{a.end_time}) outside {mid}'s window "
                    f"[{machine.available_start},{machine.available_end})"
                )
            if (
                down is not None
                and down.machine_id == mid
                and a.start_time < down.end_time
                and a.end_time > down.start_time
            ):
                problems.append(
                    f"{a.step_id} [{a.start_time},{a.end_time}) runs while {mid} is down "
                    f"[{down.start_time},{down.end_time})"
                )
            if previous is not None and a.start_time < previous.end_time:
                problems.append(f"{previous.step_id} and {a.step_id} overlap on {mid}")
            expected = slowed_end(
                a.start_time, step.duration_hours, slow if slow and slow.machine_id == mid else None
            )
            if a.end_time != expected:
                problems.append(
                    f"{a.step_id} lasts {a.duration}h, expected {expected - a.start_time}h"
                )
            if a.start_time < step.release_time:
                problems.append(f"{a.step_id} starts before job {step.job_id} is released")
            previous = a
    # Precedence, now that every allocation is known (predecessors run on other machines).
    for sid, (start, _) in placed.items():
        for p in steps[sid].precedence:
            if p not in placed:
                problems.append(f"{sid} ran although its predecessor {p} did not")
            elif placed[p][1] > start:
                problems.append(f"{sid} starts before its predecessor {p} ends")
    unscheduled = {u.step_id for u in result.unscheduled}
    for sid in steps:
        if (sid in placed) == (sid in unscheduled):
            problems.append(f"step {sid} must be either allocated or unscheduled, exactly once")
    jobs = {j.id: j for j in effective.jobs}
    for jid, tl in result.job_timelines.items():
        owner = jobs.get(jid)
        if owner is None:
            continue
        ends = [placed[s.id][1] for s in owner.steps if s.id in placed]
        complete = all(s.id in placed for s in owner.steps)
        if complete and tl.completion_time != max(ends):
            problems.append(f"job {jid} completion_time is not its last step's end")
        if not complete and tl.completion_time is not None:
            problems.append(f"job {jid} has unscheduled steps but a completion time")
        if tl.due_time != owner.due_time:
            problems.append(f"job {jid} due_time differs from the scenario's")
    makespan = max((end for _, end in placed.values()), default=0)
    if result.makespan != makespan:
        problems.append(f"makespan {result.makespan} != last allocation end {makespan}")
    return list(dict.fromkeys(problems))
