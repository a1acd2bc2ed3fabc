"""The factory day's typed contract: the world, the planner's intent, scenarios, results, state.

Every object here is frozen: the orchestrator passes them from step to step and builds new ones,
so no agent or simulation can change a factory, a result or the shared state behind another
step's back. Times are whole hours (``int``) from the start of the plan, intervals are half-open
``[start, end)``.

The invariants of spec section 4 live in the models that own them. The cross-reference checks
of a factory (ids exist, precedence acyclic, due times within the horizon, ...) are collected
by :func:`factory_violations` so a config file reports *every* problem with its path at once,
not only the first one pydantic meets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_HORIZON = 10_000
"""Longest plan in hours (a little over a year of shifts); keeps every loop bounded."""

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$"
"""Ids appear in Gantt rows, markdown tables and LLM schemas: letters, digits, ``_ . -`` only."""

Id = Annotated[str, Field(pattern=ID_PATTERN)]
Hour = Annotated[int, Field(ge=0, le=MAX_HORIZON, strict=True)]
Name = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------


class Machine(_Frozen):
    """One resource; runs one step at a time inside its availability window."""

    id: Id
    name: Name
    available_start: Hour = 0
    available_end: Hour
    """Exclusive. Omitted in a file, it defaults to the factory's ``time_horizon``."""

    @property
    def available_hours(self) -> int:
        return self.available_end - self.available_start

    @model_validator(mode="after")
    def _window(self) -> Machine:
        if self.available_start >= self.available_end:
            raise ValueError(
                f"available_start ({self.available_start}) must be before available_end "
                f"({self.available_end})"
            )
        return self


class Step(_Frozen):
    """One operation of a job on one machine."""

    id: Id
    job_id: Id
    machine_id: Id
    duration_hours: Annotated[int, Field(gt=0, le=MAX_HORIZON, strict=True)]
    precedence: tuple[Id, ...] = ()
    """Steps of the same job that must finish before this one starts."""


class Job(_Frozen):
    id: Id
    name: Name
    due_time: Annotated[int, Field(gt=0, le=MAX_HORIZON, strict=True)]
    priority: Literal[0, 1, 2] = 1
    """0 low, 1 medium, 2 high: a tie-break between equal due times, not a hard constraint."""
    release_time: Hour = 0
    """Earliest start of any step (the material arrives); a rush order sets it."""
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _fill_steps(cls, data: Any) -> Any:
        return _fill_job_defaults(data)


class FactoryConfig(_Frozen):
    """A factory and the day's orders. Loaded from ``scenarios/factory/*.yaml|json``."""

    name: Name = "factory"
    description: Annotated[str, Field(max_length=2000)] = ""
    time_horizon: Annotated[int, Field(ge=1, le=MAX_HORIZON, strict=True)] = 24
    scheduling_heuristic: Literal["earliest_due_date", "fcfs"] = "earliest_due_date"
    machines: tuple[Machine, ...] = Field(min_length=1)
    jobs: tuple[Job, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        return _fill_factory_defaults(data)

    @model_validator(mode="after")
    def _invariants(self) -> FactoryConfig:
        problems = cross_check(self.model_dump(mode="python"))
        if problems:
            raise PydanticCustomError(
                "factory_invariant",
                "{summary}",
                {"summary": "; ".join(f"{v.path}: {v.message}" for v in problems)},
            )
        return self

    # Lookups used everywhere; cheap enough to rebuild (a factory is immutable).
    def machine(self, machine_id: str) -> Machine:
        for m in self.machines:
            if m.id == machine_id:
                return m
        raise KeyError(machine_id)

    def job(self, job_id: str) -> Job:
        for j in self.jobs:
            if j.id == job_id:
                return j
        raise KeyError(job_id)

    @property
    def machine_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.machines)

    @property
    def job_ids(self) -> tuple[str, ...]:
        return tuple(j.id for j in self.jobs)

    @property
    def step_ids(self) -> tuple[str, ...]:
        return tuple(s.id for j in self.jobs for s in j.steps)


def _fill_job_defaults(data: Any) -> Any:
    """A step inside a job may omit ``job_id`` (it is the parent's) and ``precedence`` (it then
    follows the previous step of the list, the common case of a routing). ``precedence: []``
    says explicitly that a step has no predecessor."""
    if not isinstance(data, Mapping) or not isinstance(data.get("steps"), list | tuple):
        return data
    steps = []
    previous: str | None = None
    for raw in data["steps"]:
        if isinstance(raw, Mapping):
            raw = dict(raw)
            raw.setdefault("job_id", data.get("id"))
            if "precedence" not in raw:
                raw["precedence"] = [previous] if isinstance(previous, str) else []
            previous = raw.get("id") if isinstance(raw.get("id"), str) else None
        steps.append(raw)
    return {**data, "steps": steps}


def _fill_factory_defaults(data: Any) -> Any:
    if not isinstance(data, Mapping):
        return data
    horizon = data.get("time_horizon", 24)
    machines = data.get("machines")
    if isinstance(machines, list | tuple) and isinstance(horizon, int):
        filled = []
        for m in machines:
            if isinstance(m, Mapping) and "available_end" not in m:
                m = {**m, "available_end": horizon}
            filled.append(m)
        data = {**data, "machines": filled}
    jobs = data.get("jobs")
    if isinstance(jobs, list | tuple):
        data = {**data, "jobs": [_fill_job_defaults(j) for j in jobs]}
    return data


# --------------------------------------------------------------------------------------------
# Cross-reference invariants, reported all at once with paths
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One broken rule of a factory config: ``path`` is like ``jobs[1].steps[0].machine_id``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def cross_check(data: Mapping[str, Any]) -> list[Violation]:
    """The rules that relate one part of a factory to another.

    Works on plain (default-filled) data and skips parts too malformed to read, so it can run
    next to pydantic's own field errors and together they list every problem in a file.
    """
    out: list[Violation] = []
    horizon = data.get("time_horizon", 24)
    horizon = horizon if isinstance(horizon, int) and not isinstance(horizon, bool) else None
    machines = data.get("machines") if isinstance(data.get("machines"), list | tuple) else []
    jobs = data.get("jobs") if isinstance(data.get("jobs"), list | tuple) else []

    machine_ids: set[str] = set()
    for i, m in enumerate(machines):
        if not isinstance(m, Mapping):
            continue
        mid = m.get("id")
        if isinstance(mid, str):
            if mid in machine_ids:
                out.append(Violation(f"machines[{i}].id", f"duplicate machine id {mid!r}"))
            machine_ids.add(mid)
        end = m.get("available_end")
        if horizon is not None and _is_int(end) and end > horizon:
            out.append(
                Violation(
                    f"machines[{i}].available_end",
                    f"{end} is past the time horizon ({horizon})",
                )
            )

    job_ids: set[str] = set()
    step_ids: set[str] = set()
    for j, job in enumerate(jobs):
        if not isinstance(job, Mapping):
            continue
        jid = job.get("id")
        if isinstance(jid, str):
            if jid in job_ids:
                out.append(Violation(f"jobs[{j}].id", f"duplicate job id {jid!r}"))
            job_ids.add(jid)
        due, release = job.get("due_time"), job.get("release_time", 0)
        if horizon is not None and _is_int(due) and due > horizon:
            out.append(
                Violation(f"jobs[{j}].due_time", f"{due} is past the time horizon ({horizon})")
            )
        if horizon is not None and _is_int(release) and release >= horizon:
            out.append(
                Violation(
                    f"jobs[{j}].release_time",
                    f"{release} is not before the time horizon ({horizon})",
                )
            )
        if _is_int(due) and _is_int(release) and release >= due:
            out.append(
                Violation(
                    f"jobs[{j}].due_time", f"due time {due} is not after release time {release}"
                )
            )
        steps = job.get("steps") if isinstance(job.get("steps"), list | tuple) else []
        own: dict[str, int] = {}
        for s, step in enumerate(steps):
            if not isinstance(step, Mapping):
                continue
            path = f"jobs[{j}].steps[{s}]"
            sid = step.get("id")
            if isinstance(sid, str):
                if sid in step_ids:
                    out.append(Violation(f"{path}.id", f"duplicate step id {sid!r}"))
                step_ids.add(sid)
                own.setdefault(sid, s)
            if isinstance(step.get("job_id"), str) and step["job_id"] != jid:
                out.append(
                    Violation(
                        f"{path}.job_id",
                        f"step belongs to job {jid!r} but names job {step['job_id']!r}",
                    )
                )
            mid = step.get("machine_id")
            if isinstance(mid, str) and machine_ids and mid not in machine_ids:
                out.append(Violation(f"{path}.machine_id", f"unknown machine {mid!r}"))
        # Precedence: same job, no self-reference, no duplicates, no cycle.
        graph: dict[str, list[str]] = {}
        for s, step in enumerate(steps):
            if not isinstance(step, Mapping) or not isinstance(step.get("id"), str):
                continue
            preds = step.get("precedence")
            preds = preds if isinstance(preds, list | tuple) else []
            path = f"jobs[{j}].steps[{s}].precedence"
            seen: set[str] = set()
            for p in preds:
                if not isinstance(p, str):
                    continue
                if p == step["id"]:
                    out.append(Violation(path, f"step {p!r} cannot precede itself"))
                elif p not in own:
                    where = "another job" if p in step_ids else "nowhere in this job"
                    out.append(Violation(path, f"{p!r} is not a step of job {jid!r} ({where})"))
                elif p in seen:
                    out.append(Violation(path, f"{p!r} listed twice"))
                seen.add(p)
            graph[step["id"]] = [p for p in dict.fromkeys(preds) if p in own and p != step["id"]]
        cycle = _find_cycle(graph)
        if cycle:
            out.append(
                Violation(
                    f"jobs[{j}].steps",
                    "precedence cycle: " + " -> ".join([*cycle, cycle[0]]),
                )
            )
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """One cycle of ``step -> predecessor`` edges, or None (iterative DFS, no recursion limit)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in sorted(graph):
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, idx = stack.pop()
            if idx == 0:
                state[node] = 1
                path.append(node)
            succ = graph.get(node, [])
            if idx < len(succ):
                stack.append((node, idx + 1))
                nxt = succ[idx]
                if state.get(nxt) == 1:
                    return path[path.index(nxt) :]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return None


def factory_violations(data: Any) -> list[Violation]:
    """Every problem of a factory config (field errors and cross-references), each with a path."""
    out: list[Violation] = []
    try:
        FactoryConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            if err["type"] == "factory_invariant":
                continue  # re-derived one by one below
            out.append(Violation(loc_to_path(err["loc"]), _plain_message(err)))
    if isinstance(data, Mapping):
        out.extend(cross_check(_fill_factory_defaults(data)))
    seen: set[tuple[str, str]] = set()
    unique = []
    for v in out:
        if (v.path, v.message) not in seen:
            seen.add((v.path, v.message))
            unique.append(v)
    return unique


def loc_to_path(loc: Iterable[Any]) -> str:
    """``("jobs", 1, "steps", 0, "id")`` -> ``jobs[1].steps[0].id``; model-level -> ``(root)``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union")):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(root)"


def _plain_message(err: Mapping[str, Any]) -> str:
    msg = str(err.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if "input" in err and err["type"] not in ("missing", "extra_forbidden"):
        shown = repr(err["input"])
        if len(shown) <= 40:
            msg += f" (got {shown})"
    return msg


# --------------------------------------------------------------------------------------------
# The planner's intent and the closed scenario set
# --------------------------------------------------------------------------------------------


class Objective(StrEnum):
    BASELINE = "BASELINE"
    RUSH_FIRST = "RUSH_FIRST"
    BALANCED = "BALANCED"
    PROTECT_JOB = "PROTECT_JOB"


class RiskTolerance(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class ScenarioIntent(_Frozen):
    """What the planner cares about today, in enums and real ids only.

    The spec's three fields, plus the references the futures step needs to build scenarios that
    answer the planner (which job is the rush, which jobs may slip, which machine worries them).
    Which ids are real is checked against a factory by ``validate_scenario_intent``.
    """

    objective: Objective = Objective.BALANCED
    protected_job_id: Id | None = None
    risk_tolerance: RiskTolerance = RiskTolerance.MEDIUM
    rush_job_id: Id | None = None
    flexible_job_ids: tuple[Id, ...] = ()
    watch_machine_id: Id | None = None

    @model_validator(mode="after")
    def _coherent(self) -> ScenarioIntent:
        if self.objective is Objective.PROTECT_JOB and self.protected_job_id is None:
            raise ValueError("objective PROTECT_JOB needs a protected_job_id")
        if self.protected_job_id is not None and self.protected_job_id in self.flexible_job_ids:
            raise ValueError(
                f"job {self.protected_job_id!r} cannot be both protected and allowed to slip"
            )
        if len(set(self.flexible_job_ids)) != len(self.flexible_job_ids):
            raise ValueError("flexible_job_ids has duplicates")
        return self


DEFAULT_INTENT = ScenarioIntent(objective=Objective.BALANCED, risk_tolerance=RiskTolerance.MEDIUM)
"""The spec's fallback when the planner's text cannot be interpreted."""


class ScenarioType(StrEnum):
    BASELINE = "BASELINE"
    RUSH_ARRIVES = "RUSH_ARRIVES"
    MACHINE_SLOWDOWN = "MACHINE_SLOWDOWN"
    """The spec calls it ``M2_SLOWDOWN``; the machine is a parameter here, and the old name is
    accepted on input."""


SCENARIO_TYPE_ALIASES = {"M2_SLOWDOWN": ScenarioType.MACHINE_SLOWDOWN}


class BaselineMods(_Frozen):
    pass


class RushMods(_Frozen):
    """An existing job becomes a rush order: it arrives at ``arrival_time`` (its release) and is
    due at ``due_time``. The job's steps are reused; no job is invented."""

    rush_job_id: Id
    arrival_time: Hour
    due_time: Annotated[int, Field(gt=0, le=MAX_HORIZON, strict=True)]

    @model_validator(mode="after")
    def _order(self) -> RushMods:
        if self.arrival_time >= self.due_time:
            raise ValueError(
                f"arrival_time ({self.arrival_time}) must be before due_time ({self.due_time})"
            )
        return self


class SlowdownMods(_Frozen):
    """``machine_id`` works at ``1/slowdown_factor`` speed during ``[start_time, end_time)``."""

    machine_id: Id
    slowdown_factor: Annotated[float, Field(gt=1.0, le=3.0, allow_inf_nan=False)]
    start_time: Hour
    end_time: Hour

    @model_validator(mode="after")
    def _window(self) -> SlowdownMods:
        if self.start_time >= self.end_time:
            raise ValueError(
                f"start_time ({self.start_time}) must be before end_time ({self.end_time})"
            )
        return self


Mods = BaselineMods | RushMods | SlowdownMods
_MODS_BY_TYPE: dict[ScenarioType, type[_Frozen]] = {
    ScenarioType.BASELINE: BaselineMods,
    ScenarioType.RUSH_ARRIVES: RushMods,
    ScenarioType.MACHINE_SLOWDOWN: SlowdownMods,
}

Label = Annotated[
    str,
    Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.,:()/+\-–×']*$"),
]
"""A scenario label is a dict key, a table header and a Gantt title: short, plain characters
(no ``|``, ``*``, ``[`` or backticks that would break markdown or terminal markup)."""


class ScenarioSpec(_Frozen):
    """One future to simulate: a type from the closed set and its bounded parameters."""

    type: ScenarioType
    label: Label
    modifications: Mods

    @model_validator(mode="before")
    @classmethod
    def _typed_mods(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        kind = data.get("type")
        if isinstance(kind, str):
            kind = SCENARIO_TYPE_ALIASES.get(kind, kind)
            data["type"] = kind
        mods = data.get("modifications", {})
        try:
            model = _MODS_BY_TYPE[ScenarioType(kind)]
        except (ValueError, KeyError):
            return data  # the type field's own error says what is wrong
        if isinstance(mods, Mapping):
            try:
                data["modifications"] = model.model_validate(mods)
            except ValidationError as exc:
                detail = "; ".join(
                    f"modifications.{loc_to_path(e['loc'])}: {_plain_message(e)}"
                    if e["loc"]
                    else f"modifications: {_plain_message(e)}"
                    for e in exc.errors()
                )
                raise PydanticCustomError("modifications", "{detail}", {"detail": detail}) from None
        return data

    @model_validator(mode="after")
    def _mods_match_type(self) -> ScenarioSpec:
        expected = _MODS_BY_TYPE[self.type]
        if type(self.modifications) is not expected:
            raise ValueError(f"modifications do not match type {self.type.value}")
        return self

    @property
    def rush(self) -> RushMods | None:
        return self.modifications if isinstance(self.modifications, RushMods) else None

    @property
    def slowdown(self) -> SlowdownMods | None:
        return self.modifications if isinstance(self.modifications, SlowdownMods) else None


BASELINE_SPEC = ScenarioSpec(type=ScenarioType.BASELINE, label="Baseline", modifications={})


# --------------------------------------------------------------------------------------------
# Simulation results and metrics
# --------------------------------------------------------------------------------------------


class StepTimeline(_Frozen):
    step_id: Id
    job_id: Id
    machine_id: Id
    start_time: Hour
    end_time: Hour
    duration_hours: int
    """Hours the machine is busy (slowdown included)."""
    base_duration_hours: int
    """The step's nominal duration; larger ``duration_hours`` means a slowdown hit it."""

    @model_validator(mode="after")
    def _consistent(self) -> StepTimeline:
        if self.end_time - self.start_time != self.duration_hours or self.duration_hours <= 0:
            raise ValueError("duration_hours must equal end_time - start_time and be > 0")
        return self


class Allocation(_Frozen):
    step_id: Id
    job_id: Id
    machine_id: Id
    start_time: Hour
    end_time: Hour

    @property
    def duration(self) -> int:
        return self.end_time - self.start_time


class UnscheduledStep(_Frozen):
    """A step that found no room before its machine's window closed (or whose predecessor
    did not run). It is never placed outside the window; its job is incomplete."""

    step_id: Id
    job_id: Id
    machine_id: Id
    duration_hours: int
    reason: Annotated[str, Field(max_length=200)]


class JobTimeline(_Frozen):
    job_id: Id
    steps_timeline: tuple[StepTimeline, ...]
    completion_time: Hour | None
    """None when a step is unscheduled: the job does not finish within the plan."""
    due_time: int
    release_time: int
    is_late: bool
    unscheduled_step_ids: tuple[Id, ...] = ()

    @property
    def is_complete(self) -> bool:
        return self.completion_time is not None

    @property
    def lateness_hours(self) -> int | None:
        """Hours past due (0 when on time); None for an incomplete job."""
        if self.completion_time is None:
            return None
        return max(0, self.completion_time - self.due_time)

    @model_validator(mode="after")
    def _late_iff(self) -> JobTimeline:
        if self.completion_time is None:
            if not self.unscheduled_step_ids or not self.is_late:
                raise ValueError("an incomplete job lists its unscheduled steps and is late")
        elif self.is_late != (self.completion_time > self.due_time):
            raise ValueError("is_late must be completion_time > due_time")
        return self


class SimulationResult(_Frozen):
    scenario_label: Label
    scenario: ScenarioSpec
    job_timelines: dict[Id, JobTimeline]
    machine_allocations: dict[Id, tuple[Allocation, ...]]
    """Every machine of the factory, allocations sorted by start time."""
    unscheduled: tuple[UnscheduledStep, ...] = ()
    makespan: int
    """End of the last allocation (0 if nothing ran)."""

    @property
    def late_jobs(self) -> list[str]:
        return [jid for jid, tl in self.job_timelines.items() if tl.is_late]

    @property
    def incomplete_jobs(self) -> list[str]:
        return [jid for jid, tl in self.job_timelines.items() if not tl.is_complete]


Unit01 = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class ScenarioMetrics(_Frozen):
    """The spec's metrics, plus per-job detail for the jobs-at-risk table.

    Utilization of a machine = busy hours / hours in its availability window. Every allocation
    lies inside the window, so the value is in [0, 1] by construction. Busy hours include the
    extra hours a slowdown costs (the machine is occupied). The bottleneck is the machine with
    the most busy hours (spec section 8); ties go to the higher utilization, then config order.

    Lateness statistics are over *completed* jobs; incomplete jobs (an unscheduled step) count
    as late and are listed in ``incomplete_job_ids`` instead of getting an invented number.
    """

    scenario_label: Label
    num_jobs: Annotated[int, Field(ge=0)]
    num_late_jobs: Annotated[int, Field(ge=0)]
    late_job_ids: tuple[Id, ...]
    max_lateness_hours: Annotated[int, Field(ge=0)]
    avg_lateness_hours: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    makespan_hours: Annotated[int, Field(ge=0)]
    bottleneck_machine_id: Id
    utilization_by_machine: dict[Id, Unit01]
    busy_hours_by_machine: dict[Id, Annotated[int, Field(ge=0)]]
    lateness_by_job: dict[Id, Annotated[int, Field(ge=0)] | None]
    """Hours late per job (0 on time, None incomplete)."""
    completion_by_job: dict[Id, Hour | None]
    incomplete_job_ids: tuple[Id, ...] = ()
    unscheduled_step_ids: tuple[Id, ...] = ()

    @model_validator(mode="after")
    def _invariants(self) -> ScenarioMetrics:
        if self.num_late_jobs != len(self.late_job_ids):
            raise ValueError("num_late_jobs must equal len(late_job_ids)")
        if not set(self.late_job_ids) <= set(self.lateness_by_job):
            raise ValueError("late_job_ids must be jobs of the scenario")
        if not set(self.incomplete_job_ids) <= set(self.late_job_ids):
            raise ValueError("incomplete jobs are late")
        if self.bottleneck_machine_id not in self.utilization_by_machine:
            raise ValueError("bottleneck_machine_id must be a machine of the factory")
        return self


class WhatIfResult(_Frozen):
    """One recommended lever, tried on the deterministic simulator before it is recommended."""

    scenario_label: Label
    kind: Literal["run_first", "relax_rush_due", "move_slowdown"]
    title: Annotated[str, Field(max_length=200)]
    """Plain sentence, e.g. ``Run J1 first`` (ids from the factory only)."""
    job_id: Id | None = None
    lateness_before: dict[Id, int | None]
    lateness_after: dict[Id, int | None]
    makespan_before: int
    makespan_after: int
    late_before: int
    late_after: int
    total_lateness_before: int
    total_lateness_after: int
    params: dict[str, int | float | str] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# The orchestrator's shared state
# --------------------------------------------------------------------------------------------

AgentSource = Literal["claude", "offline", "default", "none"]


class FactoryState(_Frozen):
    """Everything the pipeline knows, passed from step to step and replaced, never mutated.

    ``*_source`` says which implementation produced each agent output (``claude``, ``offline``
    or the spec's ``default`` fallback); ``*_error`` keeps why a preferred one was rejected.
    """

    factory: FactoryConfig
    user_input: str
    date: str
    llm: str = "offline"
    """What ran the agents: ``offline`` or ``claude:<model>``."""

    intent: ScenarioIntent | None = None
    intent_error: str | None = None
    intent_source: AgentSource = "none"
    notes: tuple[str, ...] = ()
    """Planner-facing remarks about the input (e.g. a job reference that matched nothing)."""

    scenarios: tuple[ScenarioSpec, ...] = ()
    futures_error: str | None = None
    futures_source: AgentSource = "none"

    sim_results: dict[str, SimulationResult] = Field(default_factory=dict)
    metrics: dict[str, ScenarioMetrics] = Field(default_factory=dict)
    what_ifs: tuple[WhatIfResult, ...] = ()

    briefing_markdown: str | None = None
    briefing_error: str | None = None
    briefing_source: AgentSource = "none"

    pipeline_completed: bool = False
    pipeline_errors: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()
    elapsed_ms: int = 0

    @field_validator("user_input")
    @classmethod
    def _bounded_input(cls, value: str) -> str:
        return value[:20_000]

    def evolve(self, **changes: Any) -> FactoryState:
        """A new state with ``changes`` applied; this one is left as it was."""
        return self.model_copy(update=changes)

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.scenarios]
