"""The factory day's typed contract, part 1: the world (machines, steps, jobs, the factory).

The contract is three modules: this one (the world and its invariants), ``scenario`` (the
planner's intent and the closed scenario set) and ``results`` (schedules, metrics, the plan, the
pipeline's events and state). Every object is frozen: the orchestrator passes them from step
to step and builds new ones, so no agent or simulation can change a factory, a result or the
shared state behind another step's back. Times are whole hours (``int``) from the start of
the plan, intervals are half-open ``[start, end)``.

The invariants of spec section 4 live in the models that own them. The cross-reference checks
of a factory (ids exist, precedence acyclic, due times within the horizon, ...) are collected
by :func:`factory_violations` so a config file reports *every* problem with its path at once,
not only the first one pydantic meets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
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


class Frozen(BaseModel):
    """Every factory model: immutable, unknown fields rejected. Validators are built on first
    use (``defer_build``): a brief builds only those it needs, so it starts fast."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# --------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------


class Machine(Frozen):
    """One resource; runs one step at a time inside its availability window."""

    id: Id
    name: Name
    available_start: Hour = 0
    available_end: Hour
    """Exclusive. Omitted in a file, it defaults to the factory's ``time_horizon``."""
    asset: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")] | None = None
    """The plant asset this machine is (``pump01``): its open work orders become scenarios."""

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


class Step(Frozen):
    """One operation of a job on one machine."""

    id: Id
    job_id: Id
    machine_id: Id
    duration_hours: Annotated[int, Field(gt=0, le=MAX_HORIZON, strict=True)]
    precedence: tuple[Id, ...] = ()
    """Steps of the same job that must finish before this one starts."""


class Job(Frozen):
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


class FactoryConfig(Frozen):
    """A factory and the day's orders. Loaded from ``scenarios/factory/*.yaml|json``."""

    name: Name = "factory"
    description: Annotated[str, Field(max_length=2000)] = ""
    time_horizon: Annotated[int, Field(ge=1, le=MAX_HORIZON, strict=True)] = 24
    scheduling_heuristic: Literal[
        "earliest_due_date", "fcfs", "edd_dispatch", "atc", "mdd", "mod"
    ] = "earliest_due_date"
    """``earliest_due_date`` (the spec's EDD list scheduler, whole jobs in due order) or
    ``fcfs`` (the same, by release); or a non-delay dispatch rule the planner picks:
    ``edd_dispatch``, ``atc``, ``mdd``, ``mod`` (``engine.factory.dispatch``)."""
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

    repair_hours: dict[
        Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")],
        Annotated[int, Field(ge=1, le=168, strict=True)],
    ] = Field(default_factory=dict)
    """Hours a machine is down to repair a plant fault, by root cause (``bearing_wear: 4``);
    overrides the defaults in ``engine.factory.plant_feed``."""

    # Lookups used everywhere, built once per (immutable) factory.
    @cached_property
    def _machines_by_id(self) -> dict[str, Machine]:
        return {m.id: m for m in self.machines}

    @cached_property
    def _jobs_by_id(self) -> dict[str, Job]:
        return {j.id: j for j in self.jobs}

    def machine(self, machine_id: str) -> Machine:
        return self._machines_by_id[machine_id]

    def job(self, job_id: str) -> Job:
        return self._jobs_by_id[job_id]

    @cached_property
    def machine_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.machines)

    @cached_property
    def job_ids(self) -> tuple[str, ...]:
        return tuple(j.id for j in self.jobs)

    @cached_property
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


def _unique_id(
    value: Any, path: str, kind: str, seen: set[str], out: list[Violation]
) -> TypeGuard[str]:
    """Note ``value`` as a ``kind`` id, a Violation if ``seen`` has it already; False (and
    nothing noted) when it is not a string, which pydantic reports."""
    if not isinstance(value, str):
        return False
    if value in seen:
        out.append(Violation(path, f"duplicate {kind} id {value!r}"))
    seen.add(value)
    return True


def _within_horizon(hour: Any, horizon: int | None, path: str, out: list[Violation]) -> None:
    if horizon is not None and _is_int(hour) and hour > horizon:
        out.append(Violation(path, f"{hour} is past the time horizon ({horizon})"))


def cross_check(data: Mapping[str, Any]) -> list[Violation]:
    """The rules that relate one part of a factory to another.

    Works on plain (default-filled) data and skips parts too malformed to read, so it can run
    next to pydantic's own field errors and together they list every problem in a file.
    """
    out: list[Violation] = []
    horizon = data.get("time_horizon", 24)
    horizon = horizon if isinstance(horizon, int) and not isinstance(horizon, bool) else None
    raw_machines, raw_jobs = data.get("machines"), data.get("jobs")
    machines: Sequence[Any] = raw_machines if isinstance(raw_machines, list | tuple) else []
    jobs: Sequence[Any] = raw_jobs if isinstance(raw_jobs, list | tuple) else []

    machine_ids: set[str] = set()
    for i, m in enumerate(machines):
        if not isinstance(m, Mapping):
            continue
        _unique_id(m.get("id"), f"machines[{i}].id", "machine", machine_ids, out)
        _within_horizon(m.get("available_end"), horizon, f"machines[{i}].available_end", out)

    job_ids: set[str] = set()
    step_ids: set[str] = set()
    for j, job in enumerate(jobs):
        if not isinstance(job, Mapping):
            continue
        jid = job.get("id")
        _unique_id(jid, f"jobs[{j}].id", "job", job_ids, out)
        due, release = job.get("due_time"), job.get("release_time", 0)
        _within_horizon(due, horizon, f"jobs[{j}].due_time", out)
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
        raw_steps = job.get("steps")
        steps: Sequence[Any] = raw_steps if isinstance(raw_steps, list | tuple) else []
        own: dict[str, int] = {}
        for s, step in enumerate(steps):
            if not isinstance(step, Mapping):
                continue
            path = f"jobs[{j}].steps[{s}]"
            sid = step.get("id")
            if _unique_id(sid, f"{path}.id", "step", step_ids, out):
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
            raw_preds = step.get("precedence")
            preds: Sequence[Any] = raw_preds if isinstance(raw_preds, list | tuple) else []
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


def _is_int(value: Any) -> TypeGuard[int]:
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
        errors = exc.errors()
        locations = [tuple(e["loc"]) for e in errors]
        for err in errors:
            if err["type"] == "factory_invariant":
                continue  # re-derived one by one below
            loc = tuple(err["loc"])
            if err["type"] == "too_short" and any(
                len(other) > len(loc) and other[: len(loc)] == loc for other in locations
            ):
                continue  # "too short" only because its items failed: not a problem of its own
            out.append(Violation(loc_to_path(err["loc"]), plain_message(err)))
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


def plain_message(err: Mapping[str, Any]) -> str:
    if err.get("type") == "too_short":
        least = (err.get("ctx") or {}).get("min_length", 1)
        return f"needs at least {least} item" + ("" if least == 1 else "s")
    msg = str(err.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if "input" in err and err["type"] not in ("missing", "extra_forbidden"):
        shown = repr(err["input"])
        if len(shown) <= 40:
            msg += f" (got {shown})"
    return msg
