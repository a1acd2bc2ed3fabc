"""The factory-day pipeline: a hand-rolled, strictly sequential orchestrator (spec section 6).

    intent agent -> validate -> futures agent -> validate -> (+ plant work orders)
    -> simulate + check invariants -> metrics -> plan (rules + search) -> levers
    -> briefing agent -> validate -> done

Each step takes the :class:`FactoryState` and returns a new one (the models are frozen; the
factory passed in is never modified). Each agent runs through :func:`_first_valid`: Claude
when enabled, then the offline implementation, then the spec's default; every reply passes the
same validator; a rejected reply is recorded in ``pipeline_errors`` and replaced by the next in
line. A simulation or plan that breaks an invariant is a bug, not bad input: the pipeline halts
there with ``pipeline_completed=False`` rather than brief on it.

Every step emits a typed :class:`StepEvent` as it completes (``on_event``); the spec's log line
is rendered from it (``on_log`` gets the line), and the TUI shows the event's fields.

Why one module of ~540 lines: it is the spec's explicit orchestrator; its six steps and the one
fallback chain they share read top to bottom in one place, which is the point of not using a
framework.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from engine.factory import agents as ag
from engine.factory.briefing import (
    BriefingContext,
    Draft,
    check_draft,
    render_markdown,
    validate_markdown,
    word_count,
)
from engine.factory.briefing_text import write_offline
from engine.factory.config import load_factory
from engine.factory.futures import assign_origins, rush_spec
from engine.factory.intent import unknown_references
from engine.factory.llm import ClaudeClient, LLMError, resolve_llm
from engine.factory.margins import find_margins
from engine.factory.metrics import compute_metrics
from engine.factory.models import FactoryConfig
from engine.factory.plan import PlanError, make_plan, plan_seconds
from engine.factory.results import AgentSource, FactoryState, StepEvent, StepKind, StepStatus
from engine.factory.scenario import DEFAULT_INTENT, ScenarioIntent, ScenarioSpec
from engine.factory.scheduler import check_result, job_sequence, simulate
from engine.factory.shop import gc_paused
from engine.factory.validation import (
    MAX_WITH_PLANT,
    validate_scenario_intent,
    validate_scenarios,
)
from engine.factory.whatif import explore

if TYPE_CHECKING:
    from engine.schemas import Ticket

LogFn = Callable[[str], None]
EventFn = Callable[[StepEvent], None]
T = TypeVar("T")

SPEC_DEFAULT_FUTURES: list[dict[str, Any]] = [
    {"type": "BASELINE", "label": "Baseline", "modifications": {}},
    {
        "type": "RUSH_ARRIVES",
        "label": "Rush J2",
        "modifications": {"rush_job_id": "J2", "arrival_time": 2, "due_time": 12},
    },
    {
        "type": "M2_SLOWDOWN",
        "label": "M2 slowdown",
        "modifications": {
            "machine_id": "M2",
            "slowdown_factor": 2.0,
            "start_time": 8,
            "end_time": 14,
        },
    },
]
"""The spec's fallback futures, used as written when the factory has J2 and M2."""


class PipelineHalted(RuntimeError):
    pass


def resolve_date(value: dt.date | str | None) -> str:
    if value is None:
        return dt.date.today().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise ValueError(f"date must be YYYY-MM-DD, not {value!r}") from None


def run_pipeline(
    user_text: str,
    factory: FactoryConfig | str | Path | None = None,
    date: dt.date | str | None = None,
    llm: str | ClaudeClient = "auto",
    on_log: LogFn | None = None,
    *,
    on_event: EventFn | None = None,
    tickets: Sequence[Ticket] = (),
    environ: Mapping[str, str] | None = None,
) -> FactoryState:
    """Run the whole factory day for ``user_text``; returns the final state.

    ``factory``: a config, a file path or a name in ``scenarios/factory`` (default: toy world).
    ``llm``: ``auto`` (Claude when ``environ``, the entry's resolved environment, has
    ``ANTHROPIC_API_KEY``; no ``environ``, no key: offline), ``off``, ``on``, or a
    :class:`ClaudeClient` (tests). ``tickets``: open plant work orders (``engine.schemas``
    tickets); those on assets mapped to machines become scenarios. Raises only for bad
    arguments (``FactoryConfigError``, ``ValueError`` for the date, ``LLMUnavailable`` for
    ``on`` without a key); everything that goes wrong inside is logged, recorded and survived.
    """
    started = time.perf_counter()
    config = factory if isinstance(factory, FactoryConfig) else load_factory(factory)
    day = resolve_date(date)
    client = resolve_llm(llm, environ)
    text = user_text if isinstance(user_text, str) else ""
    state = FactoryState(
        factory=config,
        user_input=text,
        date=day,
        llm=client.label if client is not None else "offline",
    )
    run = _Run(on_log, on_event)
    try:
        with gc_paused():
            state = step_intent(state, client, run)
            state = step_futures(state, client, run, tickets)
            state = step_simulate(state, run)
            state = step_plan(state, run)
            state = step_what_ifs(state, run)
            state = step_briefing(state, client, run)
        completed = True
    except PipelineHalted as exc:
        state = run.error(state, str(exc))
        completed = False
    elapsed = round((time.perf_counter() - started) * 1000)
    words = word_count(state.briefing_markdown or "")
    state = state.evolve(pipeline_completed=completed, elapsed_ms=elapsed)
    return run.emit(
        state,
        StepEvent(
            kind="pipeline",
            name="Pipeline",
            latency_ms=elapsed,
            status="ok" if completed else "halted",
            output=f"Scenarios: {len(state.scenarios)} | Errors: {len(state.pipeline_errors)} "
            f"| Briefing: {words} words",
            errors=len(state.pipeline_errors),
        ),
    )


class _Run:
    """Event delivery for one pipeline run."""

    def __init__(self, on_log: LogFn | None, on_event: EventFn | None) -> None:
        self.on_log = on_log
        self.on_event = on_event

    def emit(self, state: FactoryState, event: StepEvent) -> FactoryState:
        if event.kind != "pipeline":
            event = event.model_copy(
                update={
                    "at": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
                    "errors": len(state.pipeline_errors),
                }
            )
        state = state.evolve(events=(*state.events, event))
        deliveries: list[Callable[[], None]] = []
        if self.on_event is not None:
            deliveries.append(partial(self.on_event, event))
        if self.on_log is not None:
            deliveries.append(partial(self.on_log, event.line()))
        for deliver in deliveries:
            try:
                deliver()
            except Exception as exc:  # the caller's display must not break the pipeline
                state = state.evolve(
                    pipeline_errors=(*state.pipeline_errors, f"log callback failed: {exc!r}")
                )
        return state

    def step(
        self,
        state: FactoryState,
        kind: StepKind,
        name: str,
        ms: float | None,
        output: str,
        status: StepStatus = "ok",
    ) -> FactoryState:
        latency = None if ms is None else round(ms)
        event = StepEvent(kind=kind, name=name, latency_ms=latency, status=status, output=output)
        return self.emit(state, event)

    def error(self, state: FactoryState, message: str) -> FactoryState:
        return state.evolve(pipeline_errors=(*state.pipeline_errors, message))


def _short(text: str, limit: int = 60) -> str:
    text = re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f]", " ", text)).strip()
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return f'"{shown}"'


def describe_intent(i: ScenarioIntent) -> str:
    parts = [i.objective.value]
    if i.rush_job_id:
        rush = f"rush={i.rush_job_id}"
        if i.rush_arrival_time is not None or i.rush_due_time is not None:
            rush += f"@{_hour(i.rush_arrival_time)}-{_hour(i.rush_due_time)}"
        parts.append(rush)
    if i.protected_job_id:
        parts.append(f"protect={i.protected_job_id}")
    if i.flexible_job_ids:
        parts.append(f"slip={'/'.join(i.flexible_job_ids)}")
    if i.watch_machine_id:
        parts.append(f"watch={i.watch_machine_id}")
    for e in i.events:
        parts.append(
            f"{e.machine_id} {e.kind.value.lower()} {_hour(e.start_time)}-{_hour(e.end_time)}"
        )
    parts.append(f"risk={i.risk_tolerance.value}")
    return ", ".join(parts)


def _hour(value: int | None) -> str:
    return "?" if value is None else f"{value}h"


@dataclass(frozen=True)
class _Attempt(Generic[T]):
    source: AgentSource
    call: Callable[[], Any]


Agent = TypeVar("Agent", ag.IntentAgent, ag.FuturesAgent, ag.BriefingAgent)


def _attempts(
    client: ClaudeClient | None, claude: Callable[[ClaudeClient], Agent], offline: Agent, *args: Any
) -> list[_Attempt[Any]]:
    """Every agent's chain, in the one order: Claude when enabled, then the offline agent (the
    spec's default, last, is ``_first_valid``'s), each called with ``args``."""
    agents = [offline] if client is None else [claude(client), offline]
    return [_Attempt(a.source, partial(a.run, *args)) for a in agents]


def _first_valid(
    state: FactoryState,
    run: _Run,
    name: str,
    kind: StepKind,
    given: str,
    attempts: Sequence[_Attempt[T]],
    accept: Callable[[Any], tuple[T | None, str | None]],
    describe: Callable[[T], str],
    default: Callable[[], T],
) -> tuple[FactoryState, T, AgentSource, str | None]:
    """The one fallback chain: try each agent in order; the first reply that ``accept``
    validates wins. Each try emits an event; rejections are recorded. Returns (state, value,
    source, first error)."""
    first_error: str | None = None
    for position, attempt in enumerate(attempts):
        t0 = time.perf_counter()
        value: T | None = None
        try:
            value, error = accept(attempt.call())
            status: StepStatus = "valid" if value is not None else "invalid"
        except LLMError as exc:
            error = str(exc)
            status = "invalid" if exc.kind in ("invalid_json", "empty", "truncated") else "error"
        except ValueError as exc:
            error, status = str(exc), "invalid"
        except Exception as exc:  # an agent bug must not take the pipeline down
            error, status = f"{type(exc).__name__}: {exc}", "error"
        ms = (time.perf_counter() - t0) * 1000
        event = StepEvent(
            kind=kind,
            name=name,
            latency_ms=round(ms),
            status=status,
            input=given,
            output=describe(value) if value is not None else (error or ""),
            source=attempt.source,
            fallback=position > 0,
        )
        if value is not None:
            return run.emit(state, event), value, attempt.source, first_error
        message = f"{kind} ({attempt.source}): {error}"
        first_error = first_error or message
        state = run.emit(run.error(state, message), event)
    value = default()
    event = StepEvent(
        kind=kind,
        name=name,
        status="fallback",
        output=describe(value),
        source="default",
        fallback=True,
    )
    return run.emit(state, event), value, "default", first_error


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


def step_intent(state: FactoryState, client: ClaudeClient | None, run: _Run) -> FactoryState:
    factory, text = state.factory, state.user_input
    notes: list[str] = []

    def accept(reply: Any) -> tuple[ScenarioIntent | None, str | None]:
        data, agent_notes = reply
        intent, error = validate_scenario_intent(data, factory)
        if intent is not None:
            notes[:] = agent_notes
        return intent, error

    state, intent, source, error = _first_valid(
        state,
        run,
        "Intent Agent",
        "intent",
        _short(text),
        _attempts(client, ag.ClaudeIntent, ag.OfflineIntent(), text, factory),
        accept,
        describe_intent,
        lambda: DEFAULT_INTENT,
    )
    return state.evolve(
        intent=intent,
        intent_source=source,
        intent_error=error,
        notes=tuple(dict.fromkeys(notes)),
        ignored_refs=tuple(unknown_references(text, factory)),
    )


def default_futures(factory: FactoryConfig) -> list[ScenarioSpec]:
    """The spec's default futures when they fit this factory, else a baseline and a rush of
    the second job in EDD order (always valid)."""
    specs, _ = validate_scenarios(SPEC_DEFAULT_FUTURES, factory)
    if specs is not None:
        return specs
    order = job_sequence(factory)
    job = order[1] if len(order) > 1 else order[0]
    specs, error = validate_scenarios(
        [
            {"type": "BASELINE", "label": "Baseline", "modifications": {}},
            rush_spec(factory, job).model_dump(mode="json", exclude={"origin"}),
        ],
        factory,
    )
    if specs is None:
        raise PipelineHalted(f"no valid default futures for this factory: {error}")
    return specs


def step_futures(
    state: FactoryState,
    client: ClaudeClient | None,
    run: _Run,
    tickets: Sequence[Ticket] = (),
) -> FactoryState:
    assert state.intent is not None
    factory, intent = state.factory, state.intent
    state, specs, source, error = _first_valid(
        state,
        run,
        "Futures Agent",
        "futures",
        describe_intent(intent),
        _attempts(client, ag.ClaudeFutures, ag.OfflineFutures(), factory, intent),
        lambda reply: validate_scenarios(reply, factory),
        lambda value: "[" + ", ".join(s.label for s in value) + "]",
        lambda: default_futures(factory),
    )
    specs = assign_origins(specs, intent)
    state = state.evolve(scenarios=tuple(specs), futures_source=source, futures_error=error)
    if tickets:
        state = step_tickets(state, run, tickets)
    return state


def step_tickets(state: FactoryState, run: _Run, tickets: Sequence[Ticket]) -> FactoryState:
    """Open work orders on mapped assets become scenarios: they replace probes first."""
    from engine.factory.plant_feed import ticket_scenarios

    t0 = time.perf_counter()
    specs, citations = ticket_scenarios(state.factory, tickets)
    scenarios = list(state.scenarios)
    labels = {s.label.casefold() for s in scenarios}
    for spec in specs:
        if spec.label.casefold() in labels:
            continue
        while len(scenarios) >= MAX_WITH_PLANT:
            probes = [i for i, s in enumerate(scenarios) if s.origin == "probe"]
            if not probes:
                break
            scenarios.pop(probes[-1])
        if len(scenarios) < MAX_WITH_PLANT:
            scenarios.append(spec)
            labels.add(spec.label.casefold())
    used = {s.label for s in scenarios}
    citations = [
        c
        if c.scenario_label in used or c.scenario_label is None
        else c.model_copy(update={"scenario_label": None})
        for c in citations
    ]
    state = state.evolve(scenarios=tuple(scenarios), tickets=tuple(citations))
    cited = ", ".join(f"{c.ticket_id}→{c.scenario_label or 'noted'}" for c in citations[:4])
    return run.step(
        state,
        "tickets",
        "Plant work orders",
        (time.perf_counter() - t0) * 1000,
        f"{len(tickets)} open, {len(citations)} on mapped machines"
        + (f": {cited}" if cited else ""),
    )


def step_simulate(state: FactoryState, run: _Run) -> FactoryState:
    """Simulate each scenario, check the result's invariants, then compute its metrics."""
    results = dict(state.sim_results)
    metrics = dict(state.metrics)
    for spec in state.scenarios:
        t0 = time.perf_counter()
        result = simulate(state.factory, spec)
        problems = check_result(result, state.factory)
        ms = (time.perf_counter() - t0) * 1000
        if problems:
            raise PipelineHalted(
                f"simulation [{spec.label}] broke its invariants: {'; '.join(problems[:3])}"
            )
        m = compute_metrics(result, state.factory)
        results[spec.label] = result
        metrics[spec.label] = m
        late = f"{m.num_late_jobs}"
        if m.late_job_ids:
            late += f" ({', '.join(m.late_job_ids[:6])}{', …' if m.num_late_jobs > 6 else ''})"
        unscheduled = f", Unscheduled: {len(result.unscheduled)}" if result.unscheduled else ""
        state = state.evolve(sim_results=dict(results))
        state = run.step(
            state,
            "simulation",
            f"Simulation [{spec.label}]",
            ms,
            f"Makespan: {result.makespan}h, Late: {late}, Bottleneck: "
            f"{m.bottleneck_machine_id}{unscheduled}",
        )
        state = state.evolve(metrics=dict(metrics))
        state = run.step(
            state,
            "metrics",
            f"Metrics [{spec.label}]",
            None,
            f"late_count={m.num_late_jobs}, bottleneck={m.bottleneck_machine_id}, "
            f"max_lateness={m.max_lateness_hours}h, makespan={m.makespan_hours}h",
        )
    return state


def step_plan(state: FactoryState, run: _Run, seconds: float | None = None) -> FactoryState:
    """The recommended plan for the day as known: dispatch rules, then the search."""
    base = state.scenarios[0]
    t0 = time.perf_counter()
    try:
        plan = make_plan(
            state.factory,
            state.sim_results[base.label],
            state.metrics[base.label],
            state.intent,
            plan_seconds(state.factory) if seconds is None else seconds,
        )
    except PlanError as exc:
        raise PipelineHalted(str(exc)) from None
    rules = ", ".join(f"{k} {v}h" for k, v in plan.rules.items())
    state = state.evolve(plan=plan)
    return run.step(
        state,
        "plan",
        "Plan search",
        (time.perf_counter() - t0) * 1000,
        f"total lateness {plan.baseline_total_lateness}h → {plan.total_lateness}h, late "
        f"{len(plan.baseline_late_jobs)} → {len(plan.late_jobs)} | {plan.method} | rules: {rules}",
    )


def step_what_ifs(state: FactoryState, run: _Run) -> FactoryState:
    t0 = time.perf_counter()
    found = explore(
        state.factory,
        state.scenarios,
        dict(state.metrics),
        dict(state.sim_results),
        state.intent,
    )
    margins = find_margins(state.factory, state.scenarios, dict(state.metrics))
    ms = (time.perf_counter() - t0) * 1000
    tried = "; ".join(f"{w.title} ({w.scenario_label})" for w in found[:3])
    more = f"; {len(found) - 3} more" if len(found) > 3 else ""
    listed = f" | {tried}{more}" if found else ""
    stretched = "; ".join(
        f"{m.scenario_label} " + ", ".join(f"{s.direction} {s.safe_hours}h" for s in m.stretches)
        for m in margins[:2]
    )
    margin_text = f" | margins: {stretched}" if margins else ""
    state = state.evolve(what_ifs=tuple(found), margins=tuple(margins))
    return run.step(
        state, "what_if", "What-if", ms, f"Improving levers: {len(found)}{listed}{margin_text}"
    )


def step_briefing(state: FactoryState, client: ClaudeClient | None, run: _Run) -> FactoryState:
    ctx = BriefingContext.from_state(state)

    def accept(draft: Any) -> tuple[str | None, str | None]:
        if not isinstance(draft, Draft):
            return None, "reply is not a briefing draft"
        problem = check_draft(draft, ctx)
        if problem is not None:
            return None, problem
        markdown = render_markdown(draft, ctx)
        problems = validate_markdown(markdown)
        return (None, "; ".join(problems)) if problems else (markdown, None)

    state, markdown, source, error = _first_valid(
        state,
        run,
        "Briefing Agent",
        "briefing",
        f"{len(ctx.scenarios)} scenarios, {len(ctx.what_ifs)} what-ifs",
        _attempts(client, ag.ClaudeBriefing, ag.OfflineBriefing(), ctx),
        accept,
        lambda md: f"{word_count(md)} words",
        lambda: render_markdown(write_offline(ctx), ctx),
    )
    return state.evolve(briefing_markdown=markdown, briefing_source=source, briefing_error=error)
