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

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.factory.config import FactoryConfigError, list_factories, load_factory
    from engine.factory.gantt import render_gantt
    from engine.factory.llm import LLMUnavailable
    from engine.factory.models import FactoryConfig
    from engine.factory.orchestrator import run_pipeline
    from engine.factory.report import jobs_at_risk_rows, jobs_at_risk_table
    from engine.factory.results import FactoryState, StepEvent

_EXPORTS = {
    "FactoryConfig": "models",
    "FactoryConfigError": "config",
    "FactoryState": "results",
    "LLMUnavailable": "llm",
    "StepEvent": "results",
    "jobs_at_risk_rows": "report",
    "jobs_at_risk_table": "report",
    "list_factories": "config",
    "load_factory": "config",
    "render_gantt": "gantt",
    "run_pipeline": "orchestrator",
}
"""Resolved on first use (PEP 562): ``import engine.factory`` costs nothing until a name is
needed, so ``controlroom --help`` and the TUI start without building the factory models."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.factory' has no attribute {name!r}")
    return getattr(import_module(f"engine.factory.{module}"), name)


__all__ = [
    "FactoryConfig",
    "FactoryConfigError",
    "FactoryState",
    "LLMUnavailable",
    "StepEvent",
    "jobs_at_risk_rows",
    "jobs_at_risk_table",
    "list_factories",
    "load_factory",
    "render_gantt",
    "run_pipeline",
]
