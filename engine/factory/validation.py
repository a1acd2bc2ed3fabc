"""The explicit checks between each agent and the next step (spec section 6).

Each returns ``(value, None)`` or ``(None, reason)``: the orchestrator logs the reason and
falls back, it never lets an unchecked agent output reach the simulator or the next agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from engine.factory.models import FactoryConfig, loc_to_path
from engine.factory.scenario import Objective, ScenarioIntent, ScenarioSpec, ScenarioType
from engine.factory.text_checks import unknown_ids

MIN_SCENARIOS = 2
MAX_SCENARIOS = 3
"""What an agent may propose; work orders from the plant may add one more (``MAX_WITH_PLANT``)."""
MAX_WITH_PLANT = 4


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    err = errors[0]
    path = loc_to_path(err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}: {msg}{more}" if path != "(root)" else f"{msg}{more}"


def validate_scenario_intent(
    data: Any, factory: FactoryConfig
) -> tuple[ScenarioIntent | None, str | None]:
    """Schema (enums), then every referenced id against the factory.

    PROTECT_JOB without a job is not an error but the spec's "unclear": it becomes BALANCED.
    """
    if not isinstance(data, dict):
        return None, f"intent must be a JSON object, got {type(data).__name__}"
    data = dict(data)
    if (
        data.get("objective") == Objective.PROTECT_JOB.value
        and data.get("protected_job_id") is None
    ):
        data["objective"] = Objective.BALANCED.value
    try:
        intent = ScenarioIntent.model_validate(data)
    except ValidationError as exc:
        return None, _first_error(exc)
    jobs = set(factory.job_ids)
    for name, value in (
        ("protected_job_id", intent.protected_job_id),
        ("rush_job_id", intent.rush_job_id),
    ):
        if value is not None and value not in jobs:
            return None, f"{name}: {value!r} is not a job of this factory"
    for value in intent.flexible_job_ids:
        if value not in jobs:
            return None, f"flexible_job_ids: {value!r} is not a job of this factory"
    if intent.watch_machine_id is not None and intent.watch_machine_id not in factory.machine_ids:
        return (
            None,
            f"watch_machine_id: {intent.watch_machine_id!r} is not a machine of this factory",
        )
    horizon = factory.time_horizon
    for name, hour in (
        ("rush_arrival_time", intent.rush_arrival_time),
        ("rush_due_time", intent.rush_due_time),
    ):
        if hour is not None and hour > horizon:
            return None, f"{name}: {hour} is past the time horizon ({horizon})"
    for i, event in enumerate(intent.events):
        if event.machine_id not in factory.machine_ids:
            return (
                None,
                f"events[{i}].machine_id: {event.machine_id!r} is not a machine of this factory",
            )
        for name, hour in (("start_time", event.start_time), ("end_time", event.end_time)):
            if hour is not None and hour > horizon:
                return None, f"events[{i}].{name}: {hour} is past the time horizon ({horizon})"
    return intent, None


def validate_scenario_spec(
    data: Any, factory: FactoryConfig
) -> tuple[ScenarioSpec | None, str | None]:
    """Closed type set, typed modifications, real ids, times inside the horizon."""
    if isinstance(data, ScenarioSpec):
        data = data.model_dump(mode="json")
    if not isinstance(data, dict):
        return None, f"scenario must be a JSON object, got {type(data).__name__}"
    try:
        spec = ScenarioSpec.model_validate(data)
    except ValidationError as exc:
        return None, _first_error(exc)
    horizon = factory.time_horizon
    rush, window = spec.rush, spec.slowdown or spec.down
    if rush is not None:
        if rush.rush_job_id not in factory.job_ids:
            return None, f"rush_job_id: {rush.rush_job_id!r} is not a job of this factory"
        own = factory.job(rush.rush_job_id).due_time
        if rush.due_time > own:
            return None, (
                f"due_time: a rush never loosens a due date ({rush.due_time}h is after "
                f"{rush.rush_job_id}'s own {own}h)"
            )
        if rush.arrival_time >= horizon:
            return None, f"arrival_time: {rush.arrival_time} is not inside the horizon ({horizon})"
    if window is not None:
        if window.machine_id not in factory.machine_ids:
            return None, f"machine_id: {window.machine_id!r} is not a machine of this factory"
        if window.end_time > horizon:
            return None, f"end_time: {window.end_time} is past the time horizon ({horizon})"
    strangers = unknown_ids(spec.label, factory)
    if strangers:
        return None, f"label: names {', '.join(sorted(strangers))}, not in this factory"
    return spec, None


def validate_scenarios(
    data: Any, factory: FactoryConfig
) -> tuple[list[ScenarioSpec] | None, str | None]:
    """2-3 valid scenarios, BASELINE among them, unique labels, no duplicate futures."""
    if isinstance(data, dict) and isinstance(data.get("scenarios"), list):
        data = data["scenarios"]
    if not isinstance(data, Sequence) or isinstance(data, str | bytes):
        return None, "scenarios must be a JSON array"
    if not MIN_SCENARIOS <= len(data) <= MAX_SCENARIOS:
        return None, f"need {MIN_SCENARIOS}-{MAX_SCENARIOS} scenarios, got {len(data)}"
    specs: list[ScenarioSpec] = []
    for i, item in enumerate(data):
        spec, error = validate_scenario_spec(item, factory)
        if spec is None:
            return None, f"scenarios[{i}].{error}"
        specs.append(spec)
    if not any(s.type is ScenarioType.BASELINE for s in specs):
        return None, "no BASELINE scenario"
    labels = [s.label.casefold() for s in specs]
    if len(set(labels)) != len(labels):
        return None, "scenario labels must be unique"
    shapes = [(s.type, s.modifications) for s in specs]
    if len(set(shapes)) != len(shapes):
        return None, "two scenarios are the same future"
    # Baseline first: every comparison in the briefing reads against it.
    specs.sort(key=lambda s: s.type is not ScenarioType.BASELINE)
    return specs, None
