"""The factory-day pipeline: a hand-rolled, strictly sequential orchestrator (spec section 6).

    intent agent -> validate -> futures agent -> validate -> simulate + check invariants
    -> metrics -> what-if levers -> briefing agent -> validate -> done

Each step takes the :class:`FactoryState` and returns a new one (the models are frozen; the
factory passed in is never modified). Each agent is tried in order of preference (Claude when
enabled, then the offline implementation, then the spec's default) and every reply passes the
same validator; a rejected reply is logged with its reason, recorded in ``pipeline_errors``
and replaced by the next in line. A simulation that breaks an invariant is a bug, not bad
input: the pipeline halts there with ``pipeline_completed=False`` rather than brief on it.

Log lines follow spec section 10 and reach ``on_log`` as each step completes::

    2026-11-23 06:30:15 | Intent Agent | Latency: 1ms | Status: valid | Input: "We have…" | ...
    2026-11-23 06:30:15 | Simulation [Rush J2] | Latency: 0ms | Makespan: 15h, Late: 1 (J1), ...
    Pipeline completed in 41ms | Scenarios: 3 | Errors: 0 | Briefing: 642 words
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.factory import agents as ag
from engine.factory.briefing import (
    BriefingContext,
    draft_from_reply,
    render_markdown,
    validate_markdown,
    word_count,
    write_offline,
)
from engine.factory.config import load_factory
from engine.factory.futures import rush_spec
from engine.factory.intent import reference_notes
from engine.factory.llm import ClaudeClient, LLMError, resolve_llm
from engine.factory.metrics import compute_metrics
from engine.factory.models import (
    DEFAULT_INTENT,
    FactoryConfig,
    FactoryState,
    ScenarioIntent,
    ScenarioSpec,
)
from engine.factory.scheduler import check_result, job_sequence, simulate
from engine.factory.validation import validate_scenario_intent, validate_scenarios
from engine.factory.whatif import explore

LogFn = Callable[[str], None]

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
) -> FactoryState:
    """Run the whole factory day for ``user_text``; returns the final state.

    ``factory``: a config, a file path or a name in ``scenarios/factory`` (default: toy world).
    ``llm``: ``auto`` (Claude when ``ANTHROPIC_API_KEY`` is set), ``off``, ``on``, or a
    :class:`ClaudeClient` (tests). Raises only for bad arguments (``FactoryConfigError``,
    ``ValueError`` for the date, ``LLMUnavailable`` for ``on`` without a key); everything that
    goes wrong inside the pipeline is logged, recorded and survived.
    """
    started = time.perf_counter()
    config = factory if isinstance(factory, FactoryConfig) else load_factory(factory)
    day = resolve_date(date)
    client = resolve_llm(llm)
    text = user_text if isinstance(user_text, str) else ""
    state = FactoryState(
        factory=config,
        user_input=text,
        date=day,
        llm=client.label if client is not None else "offline",
    )
    run = _Run(on_log)
    try:
        state = step_intent(state, client, run)
        state = step_futures(state, client, run)
        state = step_simulate(state, run)
        state = step_what_ifs(state, run)
        state = step_briefing(state, client, run)
        completed = True
    except PipelineHalted as exc:
        state = run.error(state, str(exc))
        completed = False
    elapsed = round((time.perf_counter() - started) * 1000)
    words = word_count(state.briefing_markdown or "")
    verb = "completed" if completed else "halted"
    state = run.log(
        state.evolve(pipeline_completed=completed, elapsed_ms=elapsed),
        f"Pipeline {verb} in {elapsed}ms | Scenarios: {len(state.scenarios)} | "
        f"Errors: {len(state.pipeline_errors)} | Briefing: {words} words",
        stamp=False,
    )
    return state


class _Run:
    """Log formatting and delivery for one pipeline run."""

    def __init__(self, on_log: LogFn | None) -> None:
        self.on_log = on_log

    def log(self, state: FactoryState, line: str, *, stamp: bool = True) -> FactoryState:
        if stamp:
            line = f"{dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')} | {line}"
        state = state.evolve(logs=(*state.logs, line))
        if self.on_log is not None:
            try:
                self.on_log(line)
            except Exception as exc:  # the caller's display must not break the pipeline
                state = state.evolve(
                    pipeline_errors=(*state.pipeline_errors, f"on_log callback failed: {exc!r}")
                )
        return state

    def error(self, state: FactoryState, message: str) -> FactoryState:
        return state.evolve(pipeline_errors=(*state.pipeline_errors, message))

    def agent(
        self,
        state: FactoryState,
        name: str,
        ms: float,
        status: str,
        given: str,
        output: str,
        source: str,
        fallback: str,
    ) -> FactoryState:
        return self.log(
            state,
            f"{name} | Latency: {ms:.0f}ms | Status: {status} | Input: {given} | "
            f"Output: {output} | Source: {source} | Fallback: {fallback}",
        )


def _short(text: str, limit: int = 60) -> str:
    text = re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f]", " ", text)).strip()
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return f'"{shown}"'


def _describe_intent(i: ScenarioIntent) -> str:
    parts = [i.objective.value]
    if i.rush_job_id:
        parts.append(f"rush={i.rush_job_id}")
    if i.protected_job_id:
        parts.append(f"protect={i.protected_job_id}")
    if i.flexible_job_ids:
        parts.append(f"slip={'/'.join(i.flexible_job_ids)}")
    if i.watch_machine_id:
        parts.append(f"watch={i.watch_machine_id}")
    parts.append(f"risk={i.risk_tolerance.value}")
    return ", ".join(parts)


def _timed(fn: Callable[[], Any]) -> tuple[Any, str | None, str, float]:
    """(value, error, status, ms). A reply that is unreadable or fails a check is ``invalid``;
    no reply at all (timeout, overload, refusal, an agent crash) is ``error``."""
    t0 = time.perf_counter()
    try:
        value = fn()
        return value, None, "valid", (time.perf_counter() - t0) * 1000
    except LLMError as exc:
        status = "invalid" if exc.kind in ("invalid_json", "empty", "truncated") else "error"
        return None, str(exc), status, (time.perf_counter() - t0) * 1000
    except ValueError as exc:
        return None, str(exc), "invalid", (time.perf_counter() - t0) * 1000
    except Exception as exc:  # an agent bug must not take the pipeline down
        return None, f"{type(exc).__name__}: {exc}", "error", (time.perf_counter() - t0) * 1000


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


def step_intent(state: FactoryState, client: ClaudeClient | None, run: _Run) -> FactoryState:
    chain: list[ag.IntentAgent] = [ag.OfflineIntent()]
    if client is not None:
        chain.insert(0, ag.ClaudeIntent(client))
    factory, text = state.factory, state.user_input
    first_error: str | None = None
    for position, agent in enumerate(chain):
        reply, error, status, ms = _timed(lambda a=agent: a.run(text, factory))
        intent = None
        notes: list[str] = []
        if error is None:
            data, notes = reply
            intent, error = validate_scenario_intent(data, factory)
            status = "valid" if intent is not None else "invalid"
        fallback = "false" if position == 0 else "true"
        if intent is not None:
            state = run.agent(
                state,
                "Intent Agent",
                ms,
                status,
                _short(text),
                _describe_intent(intent),
                agent.source,
                fallback,
            )
            all_notes = tuple(dict.fromkeys([*notes, *reference_notes(text, factory)]))
            return state.evolve(
                intent=intent,
                intent_source=agent.source,
                intent_error=first_error,
                notes=all_notes,
            )
        message = f"intent ({agent.source}): {error}"
        first_error = first_error or message
        state = run.error(state, message)
        state = run.agent(
            state, "Intent Agent", ms, status, _short(text), error or "", agent.source, fallback
        )
    state = run.log(
        state,
        f"Intent Agent | Status: fallback | Output: {_describe_intent(DEFAULT_INTENT)} | "
        "Source: default | Fallback: true",
    )
    return state.evolve(
        intent=DEFAULT_INTENT,
        intent_source="default",
        intent_error=first_error,
        notes=tuple(reference_notes(text, factory)),
    )


def default_futures(factory: FactoryConfig) -> list[ScenarioSpec]:
    """The spec's default futures when they fit this factory, else a baseline and a rush of
    the second job in EDD order (always valid)."""
    specs, error = validate_scenarios(SPEC_DEFAULT_FUTURES, factory)
    if specs is not None:
        return specs
    order = job_sequence(factory)
    job = order[1] if len(order) > 1 else order[0]
    specs, error = validate_scenarios(
        [
            {"type": "BASELINE", "label": "Baseline", "modifications": {}},
            rush_spec(factory, job).model_dump(mode="json"),
        ],
        factory,
    )
    assert specs is not None, error
    return specs


def step_futures(state: FactoryState, client: ClaudeClient | None, run: _Run) -> FactoryState:
    assert state.intent is not None
    chain: list[ag.FuturesAgent] = [ag.OfflineFutures()]
    if client is not None:
        chain.insert(0, ag.ClaudeFutures(client))
    factory, intent = state.factory, state.intent
    given = _describe_intent(intent)
    first_error: str | None = None
    for position, agent in enumerate(chain):
        reply, error, status, ms = _timed(lambda a=agent: a.run(factory, intent))
        specs = None
        if error is None:
            specs, error = validate_scenarios(reply, factory)
            status = "valid" if specs is not None else "invalid"
        fallback = "false" if position == 0 else "true"
        if specs is not None:
            state = run.agent(
                state,
                "Futures Agent",
                ms,
                status,
                given,
                "[" + ", ".join(s.label for s in specs) + "]",
                agent.source,
                fallback,
            )
            return state.evolve(
                scenarios=tuple(specs), futures_source=agent.source, futures_error=first_error
            )
        message = f"futures ({agent.source}): {error}"
        first_error = first_error or message
        state = run.error(state, message)
        state = run.agent(
            state, "Futures Agent", ms, status, given, error or "", agent.source, fallback
        )
    specs = default_futures(factory)
    state = run.log(
        state,
        "Futures Agent | Status: fallback | Output: ["
        + ", ".join(s.label for s in specs)
        + "] | Source: default | Fallback: true",
    )
    return state.evolve(scenarios=tuple(specs), futures_source="default", futures_error=first_error)


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
        state = run.log(
            state,
            f"Simulation [{spec.label}] | Latency: {ms:.0f}ms | Makespan: {result.makespan}h, "
            f"Late: {late}, Bottleneck: {m.bottleneck_machine_id}{unscheduled}",
        )
        state = state.evolve(sim_results=dict(results))
        state = run.log(
            state,
            f"Metrics [{spec.label}] | late_count={m.num_late_jobs}, "
            f"bottleneck={m.bottleneck_machine_id}, max_lateness={m.max_lateness_hours}h, "
            f"makespan={m.makespan_hours}h",
        )
        state = state.evolve(metrics=dict(metrics))
    return state


def step_what_ifs(state: FactoryState, run: _Run) -> FactoryState:
    t0 = time.perf_counter()
    found = explore(state.factory, state.scenarios, dict(state.metrics), state.intent)
    ms = (time.perf_counter() - t0) * 1000
    tried = "; ".join(f"{w.title} ({w.scenario_label})" for w in found[:3])
    more = f"; {len(found) - 3} more" if len(found) > 3 else ""
    listed = f" | {tried}{more}" if found else ""
    state = run.log(
        state, f"What-if | Latency: {ms:.0f}ms | Improving levers: {len(found)}{listed}"
    )
    return state.evolve(what_ifs=tuple(found))


def step_briefing(state: FactoryState, client: ClaudeClient | None, run: _Run) -> FactoryState:
    ctx = BriefingContext.from_state(state)
    chain: list[ag.BriefingAgent] = [ag.OfflineBriefing()]
    if client is not None:
        chain.insert(0, ag.ClaudeBriefing(client))
    given = f"{len(ctx.scenarios)} scenarios, {len(ctx.what_ifs)} what-ifs"
    first_error: str | None = None
    for position, agent in enumerate(chain):
        reply, error, status, ms = _timed(lambda a=agent: a.run(ctx))
        markdown = None
        if error is None:
            draft, error = draft_from_reply(reply, ctx)
            if draft is not None:
                markdown = render_markdown(draft, ctx)
                problems = validate_markdown(markdown)
                if problems:
                    markdown, error = None, "; ".join(problems)
            status = "valid" if markdown is not None else "invalid"
        fallback = "false" if position == 0 else "true"
        if markdown is not None:
            state = run.agent(
                state,
                "Briefing Agent",
                ms,
                status,
                given,
                f"{word_count(markdown)} words",
                agent.source,
                fallback,
            )
            return state.evolve(
                briefing_markdown=markdown, briefing_source=agent.source, briefing_error=first_error
            )
        message = f"briefing ({agent.source}): {error}"
        first_error = first_error or message
        state = run.error(state, message)
        state = run.agent(
            state, "Briefing Agent", ms, status, given, error or "", agent.source, fallback
        )
    # Last resort: the offline draft rendered without the prose checks (logged as such).
    markdown = render_markdown(write_offline(ctx), ctx)
    state = run.log(
        state,
        f"Briefing Agent | Status: fallback | Output: {word_count(markdown)} words | "
        "Source: default | Fallback: true",
    )
    return state.evolve(
        briefing_markdown=markdown, briefing_source="default", briefing_error=first_error
    )
