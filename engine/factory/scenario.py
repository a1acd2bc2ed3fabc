"""The planner's intent and the closed scenario set (spec section 4, extended).

The intent is what the planner's note says, in enums and real ids only: the spec's three fields,
plus what the futures need to answer the note (which job is the rush and when it arrives and is
due, which jobs may slip, which machine is a worry, and the machine events the note states:
"M2 is down until 10", "maintenance on M3 14:00-16:00").

The scenario set is closed: ``BASELINE``, ``RUSH_ARRIVES``, ``MACHINE_SLOWDOWN`` (the spec's
``M2_SLOWDOWN``, still accepted as input) and ``MACHINE_DOWN`` (a machine not available in a
window: an outage, or maintenance whose timing is a choice). ``origin`` says where a scenario
came from: the planner's note, a plant work order, or a probe the system made up to test the
day. Only the first two are facts; a probe is never offered as something to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from engine.factory.models import MAX_HORIZON, Frozen, Hour, Id, loc_to_path, plain_message


class Objective(StrEnum):
    BASELINE = "BASELINE"
    RUSH_FIRST = "RUSH_FIRST"
    BALANCED = "BALANCED"
    PROTECT_JOB = "PROTECT_JOB"


class RiskTolerance(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class EventKind(StrEnum):
    DOWN = "DOWN"
    """Not available (breakdown, outage, "offline"): a fact, not a choice."""
    MAINTENANCE = "MAINTENANCE"
    """Not available for planned work: its timing is a choice the planner can move."""
    SLOW = "SLOW"
    """Runs slower (tooling, staffing)."""


class MachineEvent(Frozen):
    """A machine event the note states. Times are plan hours; None when the note gave none
    ("M2 needs maintenance today": the futures choose the window)."""

    machine_id: Id
    kind: EventKind
    start_time: Hour | None = None
    end_time: Hour | None = None

    @model_validator(mode="after")
    def _window(self) -> MachineEvent:
        if (
            self.start_time is not None
            and self.end_time is not None
            and self.start_time >= self.end_time
        ):
            raise ValueError(
                f"start_time ({self.start_time}) must be before end_time ({self.end_time})"
            )
        return self


MAX_EVENTS = 4


class ScenarioIntent(Frozen):
    """What the planner cares about today, in enums and real ids only.

    Which ids are real is checked against a factory by ``validate_scenario_intent``.
    """

    objective: Objective = Objective.BALANCED
    protected_job_id: Id | None = None
    risk_tolerance: RiskTolerance = RiskTolerance.MEDIUM
    rush_job_id: Id | None = None
    rush_arrival_time: Hour | None = None
    """When the note says the rush arrives ("arriving at 3")."""
    rush_due_time: Hour | None = None
    """When the note says the rush is due ("due by noon")."""
    flexible_job_ids: tuple[Id, ...] = ()
    watch_machine_id: Id | None = None
    """A machine the note worries about or calls the bottleneck."""
    events: tuple[MachineEvent, ...] = Field(default=(), max_length=MAX_EVENTS)

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
        if (
            self.rush_arrival_time is not None or self.rush_due_time is not None
        ) and self.rush_job_id is None:
            raise ValueError("rush times need a rush_job_id")
        if (
            self.rush_arrival_time is not None
            and self.rush_due_time is not None
            and self.rush_arrival_time >= self.rush_due_time
        ):
            raise ValueError("rush_arrival_time must be before rush_due_time")
        return self


DEFAULT_INTENT = ScenarioIntent(objective=Objective.BALANCED, risk_tolerance=RiskTolerance.MEDIUM)
"""The spec's fallback when the planner's text cannot be interpreted."""


class ScenarioType(StrEnum):
    BASELINE = "BASELINE"
    RUSH_ARRIVES = "RUSH_ARRIVES"
    MACHINE_SLOWDOWN = "MACHINE_SLOWDOWN"
    """The spec calls it ``M2_SLOWDOWN``; the machine is a parameter here, and the old name is
    accepted on input."""
    MACHINE_DOWN = "MACHINE_DOWN"
    """A machine unavailable in a window (nothing runs on it, no step spans it)."""


SCENARIO_TYPE_ALIASES = {"M2_SLOWDOWN": ScenarioType.MACHINE_SLOWDOWN}


class BaselineMods(Frozen):
    pass


class RushMods(Frozen):
    """An existing job becomes a rush order: it arrives at ``arrival_time`` (its release) and is
    due at ``due_time``. The job's steps are reused; no job is invented. A rush never loosens a
    due date: ``due_time`` is at most the job's own (checked against the factory)."""

    rush_job_id: Id
    arrival_time: Hour
    due_time: Annotated[int, Field(gt=0, le=MAX_HORIZON, strict=True)]

    @model_validator(mode="after")
    def _order(self) -> RushMods:
        _require_before("arrival_time", self.arrival_time, "due_time", self.due_time)
        return self


class _Window(Frozen):
    machine_id: Id
    start_time: Hour
    end_time: Hour

    @model_validator(mode="after")
    def _window(self) -> _Window:
        _require_before("start_time", self.start_time, "end_time", self.end_time)
        return self


def _require_before(first: str, first_time: int, last: str, last_time: int) -> None:
    if first_time >= last_time:
        raise ValueError(f"{first} ({first_time}) must be before {last} ({last_time})")


class SlowdownMods(_Window):
    """``machine_id`` works at ``1/slowdown_factor`` speed during ``[start_time, end_time)``."""

    slowdown_factor: Annotated[float, Field(gt=1.0, le=3.0, allow_inf_nan=False)]


class DownMods(_Window):
    """``machine_id`` is not available during ``[start_time, end_time)``. ``planned``: planned
    maintenance, whose timing is the planner's choice (a lever); otherwise an outage (a fact)."""

    planned: bool = False


Mods = BaselineMods | RushMods | SlowdownMods | DownMods
MODS_BY_TYPE: dict[ScenarioType, type[Frozen]] = {
    ScenarioType.BASELINE: BaselineMods,
    ScenarioType.RUSH_ARRIVES: RushMods,
    ScenarioType.MACHINE_SLOWDOWN: SlowdownMods,
    ScenarioType.MACHINE_DOWN: DownMods,
}

Label = Annotated[
    str,
    Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.,:()/+\-–×']*$"),
]
"""A scenario label is a dict key, a table header and a Gantt title: short, plain characters
(no ``|``, ``*``, ``[`` or backticks that would break markdown or terminal markup)."""

Origin = Literal["note", "ticket", "probe"]


class ScenarioSpec(Frozen):
    """One future to simulate: a type from the closed set and its bounded parameters."""

    type: ScenarioType
    label: Label
    modifications: Mods
    origin: Origin = "probe"
    """``note``: the planner stated it; ``ticket``: a plant work order implies it; ``probe``: made
    up to test the day (never offered as something to fix). Set by the pipeline, not by agents."""
    ticket_id: Annotated[str, Field(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")] | (
        None
    ) = None
    cause: Annotated[str, Field(max_length=120, pattern=r"^[^\x00-\x1f\x7f|*`\[\]<>#]*$")] = ""
    """Why, in a few plain words ("bearing replacement", "maintenance"): shown in the briefing."""

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
            model = MODS_BY_TYPE[ScenarioType(kind)]
        except (ValueError, KeyError):
            return data  # the type field's own error says what is wrong
        if isinstance(mods, Mapping):
            try:
                data["modifications"] = model.model_validate(mods)
            except ValidationError as exc:
                detail = "; ".join(
                    f"modifications.{loc_to_path(e['loc'])}: {plain_message(e)}"
                    if e["loc"]
                    else f"modifications: {plain_message(e)}"
                    for e in exc.errors()
                )
                raise PydanticCustomError("modifications", "{detail}", {"detail": detail}) from None
        return data

    @model_validator(mode="after")
    def _mods_match_type(self) -> ScenarioSpec:
        expected = MODS_BY_TYPE[self.type]
        if type(self.modifications) is not expected:
            raise ValueError(f"modifications do not match type {self.type.value}")
        return self

    @property
    def rush(self) -> RushMods | None:
        return self.modifications if isinstance(self.modifications, RushMods) else None

    @property
    def slowdown(self) -> SlowdownMods | None:
        return self.modifications if isinstance(self.modifications, SlowdownMods) else None

    @property
    def down(self) -> DownMods | None:
        return self.modifications if isinstance(self.modifications, DownMods) else None

    @property
    def is_fact(self) -> bool:
        """Stated by the planner or implied by a work order (not a probe)."""
        return self.origin != "probe"


BASELINE_SPEC = ScenarioSpec(type=ScenarioType.BASELINE, label="Baseline", modifications={})
