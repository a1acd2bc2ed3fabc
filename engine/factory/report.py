"""Views of a finished pipeline for screens and machines: jobs-at-risk rows, JSON export.

The TUI's jobs-at-risk table and the briefing's markdown table are built from the same rows,
so both always say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.factory.results import FactoryState, Plan, ScenarioMetrics, SimulationResult


@dataclass(frozen=True)
class JobCell:
    """One job in one scenario."""

    status: str  # "on time" | "late" | "incomplete"
    lateness_hours: int | None
    completion_time: int | None
    due_time: int

    @property
    def text(self) -> str:
        if self.status == "incomplete":
            return "incomplete"
        if self.status == "late":
            return f"{self.lateness_hours}h late"
        return f"on time ({self.due_time - (self.completion_time or 0)}h slack)"


@dataclass(frozen=True)
class JobRiskRow:
    job_id: str
    job_name: str
    cells: dict[str, JobCell]
    """Scenario label -> cell, in scenario order."""

    @property
    def at_risk(self) -> bool:
        return any(c.status != "on time" for c in self.cells.values())

    @property
    def worst(self) -> tuple[int, int]:
        """Sort key: incomplete first, then most hours late."""
        incomplete = sum(c.status == "incomplete" for c in self.cells.values())
        hours = max((c.lateness_hours or 0 for c in self.cells.values()), default=0)
        return (incomplete, hours)

    def texts(self) -> list[str]:
        return [c.text for c in self.cells.values()]


def cell_for(metrics: ScenarioMetrics, job_id: str, due_time: int) -> JobCell:
    lateness = metrics.lateness_by_job[job_id]
    completion = metrics.completion_by_job[job_id]
    if lateness is None:
        status = "incomplete"
    elif lateness > 0:
        status = "late"
    else:
        status = "on time"
    return JobCell(status, lateness, completion, due_time)


def jobs_at_risk_rows(state: FactoryState, *, only_at_risk: bool = False) -> list[JobRiskRow]:
    """One row per job (config order), a cell per scenario. ``only_at_risk`` keeps jobs that
    are late or incomplete somewhere, worst first."""
    rows = []
    for job in state.factory.jobs:
        cells = {}
        for spec in state.scenarios:
            metrics = state.metrics.get(spec.label)
            result = state.sim_results.get(spec.label)
            if metrics is None or result is None:
                continue
            due = result.job_timelines[job.id].due_time
            cells[spec.label] = cell_for(metrics, job.id, due)
        rows.append(JobRiskRow(job.id, job.name, cells))
    if only_at_risk:
        rows = [r for r in rows if r.at_risk]
        rows.sort(key=lambda r: tuple(-x for x in r.worst))
    return rows


def jobs_at_risk_table(
    state: FactoryState, *, only_at_risk: bool = False
) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of strings) ready for a table widget."""
    headers = ["Job", "Name", *state.labels]
    rows = [
        [r.job_id, r.job_name, *r.texts()]
        for r in jobs_at_risk_rows(state, only_at_risk=only_at_risk)
    ]
    return headers, rows


def schedule_json(result: SimulationResult) -> dict[str, Any]:
    """One schedule as ``brief --json`` shows it (``schedules[label]`` and ``plan.schedule``)."""
    return {
        "makespan": result.makespan,
        "machines": {
            mid: [a.model_dump(mode="json") for a in allocs]
            for mid, allocs in result.machine_allocations.items()
        },
        "unscheduled": [u.model_dump(mode="json") for u in result.unscheduled],
    }


def plan_json(plan: Plan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {
        "label": plan.label,
        "method": plan.method,
        "actions": list(plan.actions),
        "schedule": schedule_json(plan.result),
        "total_lateness": plan.total_lateness,
        "late_jobs": list(plan.late_jobs),
        "makespan": plan.makespan,
        "baseline": {
            "total_lateness": plan.baseline_total_lateness,
            "late_jobs": list(plan.baseline_late_jobs),
            "makespan": plan.baseline_makespan,
        },
        "rules": dict(plan.rules),
        "who_pays": {j: {"before": b, "after": a} for j, (b, a) in plan.payers.items()},
        "sequence": list(plan.sequence),
    }


def state_to_json(state: FactoryState, gantt: dict[str, str]) -> dict[str, Any]:
    """The ``controlroom brief --json`` object."""
    return {
        "factory": state.factory.name,
        "date": state.date,
        "llm": state.llm,
        "user_input": state.user_input,
        "intent": state.intent.model_dump(mode="json") if state.intent else None,
        "intent_source": state.intent_source,
        "notes": list(state.notes),
        "scenarios": [s.model_dump(mode="json") for s in state.scenarios],
        "futures_source": state.futures_source,
        "metrics": {k: v.model_dump(mode="json") for k, v in state.metrics.items()},
        "schedules": {label: schedule_json(r) for label, r in state.sim_results.items()},
        "plan": plan_json(state.plan),
        "what_ifs": [w.model_dump(mode="json") for w in state.what_ifs],
        "margins": [m.model_dump(mode="json") for m in state.margins],
        "ignored_references": list(state.ignored_refs),
        "tickets": [c.model_dump(mode="json") for c in state.tickets],
        "briefing_markdown": state.briefing_markdown,
        "briefing_source": state.briefing_source,
        "gantt": gantt,
        "logs": list(state.logs),
        "events": [e.model_dump(mode="json") for e in state.events],
        "errors": list(state.pipeline_errors),
        "pipeline_completed": state.pipeline_completed,
        "elapsed_ms": state.elapsed_ms,
    }
