"""The factory day's typed contract, part 3: what the pipeline computes and reports.

Schedules (``SimulationResult`` and its timelines), metrics, the levers and the recommended
plan, the typed events each step emits (``StepEvent``: the log line and the TUI both render it,
nothing parses text back), and the orchestrator's ``FactoryState``.

The scheduler builds results with ``model_construct`` (its inputs were validated once at the
boundary, and every result is checked by ``scheduler.check_result`` before anything uses it):
validating thousands of timelines per simulation would cost more than the simulation itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from engine.factory.models import FactoryConfig, Frozen, Hour, Id
from engine.factory.scenario import Label, ScenarioIntent, ScenarioSpec

# --------------------------------------------------------------------------------------------
# Simulation results and metrics
# --------------------------------------------------------------------------------------------


class StepTimeline(Frozen):
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


class Allocation(Frozen):
    step_id: Id
    job_id: Id
    machine_id: Id
    start_time: Hour
    end_time: Hour

    @property
    def duration(self) -> int:
        return self.end_time - self.start_time


class UnscheduledStep(Frozen):
    """A step that found no room before its machine's window closed (or whose predecessor
    did not run). It is never placed outside the window; its job is incomplete."""

    step_id: Id
    job_id: Id
    machine_id: Id
    duration_hours: int
    reason: Annotated[str, Field(max_length=200)]


class JobTimeline(Frozen):
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


class SimulationResult(Frozen):
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


class ScenarioMetrics(Frozen):
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


class WhatIfResult(Frozen):
    """One recommended lever, tried on the deterministic simulator before it is recommended."""

    scenario_label: Label
    kind: Literal["replan", "relax_rush_due", "move_window"]
    title: Annotated[str, Field(max_length=200)]
    """Plain sentence, e.g. ``Re-plan: on M2 run J1 → J2 → J3`` (ids from the factory only)."""
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


class WindowStretch(Frozen):
    """One side of a stated window, stretched an hour at a time and re-simulated."""

    direction: Literal["earlier", "later"]
    """``earlier``: the stop starts earlier; ``later``: it ends later (an overrun)."""
    safe_hours: Annotated[int, Field(ge=0)]
    """Hours it may stretch this way with no job later past its due time."""
    harmed_at: Hour | None = None
    """The start (earlier) or end (later) time at which a job first gets later; None when
    none did within the stretches tried."""
    to_edge: bool = False
    """No harm found and the stretches reached the machine's own availability edge."""
    worse: dict[Id, tuple[int | None, int | None]] = Field(default_factory=dict)
    """At ``harmed_at``: job -> (lateness as stated, lateness then), worst first (a few)."""
    worse_count: Annotated[int, Field(ge=0)] = 0


class Margin(Frozen):
    """How far a stop or slowdown the note or a work order states may grow before the day
    gets worse (``margins.find_margins``)."""

    scenario_label: Label
    machine_id: Id
    start_time: Hour
    end_time: Hour
    stretches: tuple[WindowStretch, ...]


class Plan(Frozen):
    """The plan the briefing recommends for the day as known (baseline conditions): the best
    schedule the dispatch rules and the improvement search found, re-simulated and checked."""

    label: Label
    method: Annotated[str, Field(max_length=200)]
    """How it was found, e.g. ``iterated local search from ATC (1,200 evaluations)``."""
    actions: tuple[Annotated[str, Field(max_length=300)], ...]
    """What to do, in order: the sequence on the bottleneck first."""
    result: SimulationResult
    total_lateness: int
    late_jobs: tuple[Id, ...]
    baseline_total_lateness: int
    baseline_late_jobs: tuple[Id, ...]
    baseline_makespan: int
    makespan: int
    rules: dict[str, int] = Field(default_factory=dict)
    """Total lateness of each dispatch rule tried (the comparison behind the choice)."""
    payers: dict[Id, tuple[int | None, int | None]] = Field(default_factory=dict)
    """Jobs that finish later than in the baseline: job -> (lateness before, after)."""
    sequence: tuple[Id, ...] = ()
    """Every step in the order the simulator places them (decoded into ``result``)."""

    @property
    def improves(self) -> bool:
        return self.total_lateness < self.baseline_total_lateness or len(self.late_jobs) < len(
            self.baseline_late_jobs
        )


class TicketCitation(Frozen):
    """A plant work order on an asset mapped to a machine, and what the factory day made of it."""

    ticket_id: Annotated[str, Field(max_length=128)]
    asset: Annotated[str, Field(max_length=64)]
    machine_id: Id
    root_cause: Annotated[str, Field(max_length=32)]
    severity: Annotated[str, Field(max_length=16)]
    state: Annotated[str, Field(max_length=16)]
    work: Annotated[str, Field(max_length=80)]
    """The repair, e.g. ``bearing replacement``."""
    scenario_label: Label | None = None
    """The scenario it became; None when it needs no downtime (noted only)."""


# --------------------------------------------------------------------------------------------
# Events and the orchestrator's shared state
# --------------------------------------------------------------------------------------------

AgentSource = Literal["claude", "offline", "default", "none"]
StepKind = Literal[
    "intent",
    "futures",
    "tickets",
    "simulation",
    "metrics",
    "plan",
    "what_if",
    "briefing",
    "pipeline",
]
StepStatus = Literal["valid", "invalid", "error", "fallback", "ok", "halted"]


class StepEvent(Frozen):
    """One completed pipeline step. The log line (spec section 10) is rendered from it, and the
    TUI shows its fields in columns: nothing is ever parsed back out of the text."""

    at: str = ""
    """Wall-clock time ``YYYY-MM-DD HH:MM:SS`` (empty on the closing summary)."""
    kind: StepKind
    name: Annotated[str, Field(max_length=80)]
    """``Intent Agent``, ``Simulation [Rush J2]``, ``Pipeline``."""
    latency_ms: int | None = None
    status: StepStatus = "ok"
    input: str = ""
    output: str = ""
    source: AgentSource | None = None
    fallback: bool | None = None
    errors: int = 0
    """Pipeline errors so far (the closing summary shows it)."""

    def line(self) -> str:
        if self.kind == "pipeline":
            verb = "halted" if self.status == "halted" else "completed"
            return f"Pipeline {verb} in {self.latency_ms or 0}ms | {self.output}"
        parts = [self.at, self.name] if self.at else [self.name]
        if self.latency_ms is not None:
            parts.append(f"Latency: {self.latency_ms}ms")
        if self.source is not None:  # an agent: the spec's agent line
            parts.append(f"Status: {self.status}")
            if self.input:
                parts.append(f"Input: {self.input}")
            parts.append(f"Output: {self.output}")
            parts.append(f"Source: {self.source}")
            parts.append(f"Fallback: {'true' if self.fallback else 'false'}")
        elif self.output:
            parts.append(self.output)
        return " | ".join(parts)


@dataclass(frozen=True)
class FactoryState:
    """Everything the pipeline knows, passed from step to step and replaced, never mutated.

    ``*_source`` says which implementation produced each agent output (``claude``, ``offline``
    or the spec's ``default`` fallback); ``*_error`` keeps why a preferred one was rejected.

    A frozen dataclass, not a pydantic model: it never crosses a boundary (``--json`` is
    ``report.state_to_json``), everything in it was validated where it came from, and
    building a validator for it would build one for every result model at start-up.
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
    """Planner-facing remarks about the input (e.g. two cues that cancelled out)."""
    ignored_refs: tuple[str, ...] = ()
    """Tokens of the note shaped like an id of this factory that match none (``J9``): named in
    the briefing as ignored, never silently dropped."""
    tickets: tuple[TicketCitation, ...] = ()

    scenarios: tuple[ScenarioSpec, ...] = ()
    futures_error: str | None = None
    futures_source: AgentSource = "none"

    sim_results: Mapping[str, SimulationResult] = field(default_factory=dict)
    metrics: Mapping[str, ScenarioMetrics] = field(default_factory=dict)
    what_ifs: tuple[WhatIfResult, ...] = ()
    margins: tuple[Margin, ...] = ()
    plan: Plan | None = None

    briefing_markdown: str | None = None
    briefing_error: str | None = None
    briefing_source: AgentSource = "none"

    pipeline_completed: bool = False
    pipeline_errors: tuple[str, ...] = ()
    events: tuple[StepEvent, ...] = ()
    elapsed_ms: int = 0

    def __post_init__(self) -> None:
        if len(self.user_input) > MAX_INPUT:
            object.__setattr__(self, "user_input", self.user_input[:MAX_INPUT])

    def evolve(self, **changes: Any) -> FactoryState:
        """A new state with ``changes`` applied; this one is left as it was."""
        return replace(self, **changes)

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.scenarios]

    @property
    def logs(self) -> list[str]:
        """The log lines, rendered from the events."""
        return [e.line() for e in self.events]


MAX_INPUT = 20_000
