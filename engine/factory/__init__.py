"""Factory day: a deterministic job-shop day with LLM agents at its edges (spec 003).

Public API (what the CLI and the TUI use)::

    from engine.factory import run_pipeline, load_factory, list_factories, render_gantt

    state = run_pipeline("Rush order for J2; protect J3", "toy_day", "2026-11-23", llm="off",
                         on_log=print)
    state.briefing_markdown                     # the seven-section morning briefing
    render_gantt(state.sim_results["Rush J2"], state.factory, width=80)
    jobs_at_risk_table(state)                   # (headers, rows) for a table widget

Modules: ``models`` (every type and invariant), ``config`` (files), ``scheduler`` (EDD +
greedy allocation), ``metrics``, ``intent`` / ``futures`` / ``briefing`` (offline agents),
``agents`` (both implementations, prompts, schemas), ``llm`` (Claude client and cache),
``validation`` and ``text_checks`` (every boundary check), ``whatif``, ``gantt``, ``report``,
``orchestrator`` (the pipeline).
"""

from engine.factory.config import FactoryConfigError, list_factories, load_factory
from engine.factory.gantt import render_gantt
from engine.factory.llm import LLMUnavailable
from engine.factory.models import FactoryConfig, FactoryState
from engine.factory.orchestrator import run_pipeline
from engine.factory.report import jobs_at_risk_rows, jobs_at_risk_table

__all__ = [
    "FactoryConfig",
    "FactoryConfigError",
    "FactoryState",
    "LLMUnavailable",
    "jobs_at_risk_rows",
    "jobs_at_risk_table",
    "list_factories",
    "load_factory",
    "render_gantt",
    "run_pipeline",
]
