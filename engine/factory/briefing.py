"""The morning briefing: a draft of seven sections, rendered to markdown by one function.

Both briefing agents produce a :class:`Draft` (prose per section); :func:`render_markdown`
adds the header, the note as read, the jobs-at-risk table and the section order, so the
figures that matter most (per-job lateness per scenario) always come straight from the
metrics, whoever wrote the prose.

- ``briefing_text.write_offline`` is the deterministic writer (and the fallback).
- :func:`draft_from_reply` turns a Claude reply into a Draft (shape, one line per scenario, the
  bottleneck the metrics name); :func:`check_draft` then checks every sentence of any draft for
  real ids only and figures from the simulation only (:mod:`engine.factory.text_checks`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from engine.factory.metrics import waits_of
from engine.factory.models import FactoryConfig
from engine.factory.report import JobRiskRow, cell_for
from engine.factory.results import (
    FactoryState,
    Margin,
    Plan,
    ScenarioMetrics,
    SimulationResult,
    TicketCitation,
    WhatIfResult,
)
from engine.factory.scenario import ScenarioIntent, ScenarioSpec, ScenarioType
from engine.factory.text_checks import Facts, check_prose, collect_facts

SECTIONS = (
    "Today at a Glance",
    "Scenarios Analyzed",
    "Key Risks",
    "Jobs at Risk",
    "Bottleneck Machines",
    "Recommended Actions",
    "Limitations of This Model",
)
MAX_TABLE_JOBS = 12
MAX_FIELD_CHARS = 700
RISKS_RANGE = (2, 5)
MARGIN_JOBS_SHOWN = 2
"""Jobs named per harmed stretch of a margin ("J3 on time → 6h late and 2 more")."""
ACTIONS_RANGE = (2, 4)


@dataclass(frozen=True)
class BriefingContext:
    """Everything a briefing may use: the typed outputs of the earlier steps."""

    factory: FactoryConfig
    intent: ScenarioIntent
    scenarios: tuple[ScenarioSpec, ...]
    results: Mapping[str, SimulationResult]
    metrics: Mapping[str, ScenarioMetrics]
    what_ifs: tuple[WhatIfResult, ...] = ()
    notes: tuple[str, ...] = ()
    intent_source: str = "offline"
    date: str = ""
    plan: Plan | None = None
    tickets: tuple[TicketCitation, ...] = ()
    ignored_refs: tuple[str, ...] = ()
    margins: tuple[Margin, ...] = ()

    @classmethod
    def from_state(cls, state: FactoryState) -> BriefingContext:
        assert state.intent is not None
        return cls(
            factory=state.factory,
            intent=state.intent,
            scenarios=tuple(state.scenarios),
            results=state.sim_results,
            metrics=state.metrics,
            what_ifs=tuple(state.what_ifs),
            notes=tuple(state.notes),
            intent_source=state.intent_source,
            date=state.date,
            plan=state.plan,
            tickets=state.tickets,
            ignored_refs=state.ignored_refs,
            margins=state.margins,
        )

    @cached_property
    def facts(self) -> Facts:
        facts = collect_facts(
            self.factory,
            self.scenarios,
            dict(self.results),
            dict(self.metrics),
            self.what_ifs,
            self.date,
        )
        for cite in self.tickets:
            facts.extra_ids.update((cite.ticket_id, cite.asset))
        if self.plan is not None:
            p = self.plan
            facts.add(p.total_lateness, p.baseline_total_lateness, len(p.late_jobs))
            facts.add(len(p.baseline_late_jobs), p.makespan, p.baseline_makespan)
            facts.add(
                p.baseline_total_lateness - p.total_lateness, p.makespan - p.baseline_makespan
            )
            facts.add(*p.rules.values(), len(p.rules))
            facts.add(*(int(n) for n in re.findall(r"\d+", p.method)))
            for before, after in p.payers.values():
                facts.add(before, after)
            for tl in p.result.job_timelines.values():
                facts.add(tl.completion_time, tl.lateness_hours)
                for st in tl.steps_timeline:
                    facts.add(st.start_time, st.end_time)
        for margin in self.margins:
            for side in margin.stretches:
                facts.add(side.safe_hours, side.safe_hours + 1, side.harmed_at, side.worse_count)
                facts.add(margin.start_time - side.safe_hours, margin.end_time + side.safe_hours)
                facts.add(side.worse_count - MARGIN_JOBS_SHOWN, side.worse_count - 1)
                for before, after in side.worse.values():
                    facts.add(before, after)
        for result in self.results.values():
            for u in result.unscheduled:
                facts.add(*(int(n) for n in re.findall(r"\d+", u.reason)))
        # Counts the writers print when a list is cut short ("and 7 more", "988 jobs on time
        # everywhere are not listed").
        for m in self.metrics.values():
            facts.add(*(m.num_late_jobs - k for k in range(1, 7)))
            facts.add(*(len(m.unscheduled_step_ids) - k for k in range(1, 7)))
        rows = risk_rows(self)
        facts.add(len(rows) - len(table_rows(self, rows)), sum(r.at_risk for r in rows))
        return facts

    @cached_property
    def rows(self) -> list[JobRiskRow]:
        """One jobs-at-risk row per job (built once: the writers ask several times)."""
        return _risk_rows(self)

    def spec(self, label: str) -> ScenarioSpec:
        return next(s for s in self.scenarios if s.label == label)

    @property
    def baseline(self) -> ScenarioSpec:
        return next(
            (s for s in self.scenarios if s.type is ScenarioType.BASELINE), self.scenarios[0]
        )


@dataclass(frozen=True)
class Draft:
    glance: str
    scenario_lines: dict[str, str]
    risks: tuple[str, ...]
    jobs_note: str
    bottleneck_lines: dict[str, str]
    actions: tuple[str, ...]
    limitations: str


# --------------------------------------------------------------------------------------------
# Small formatting helpers (every number they print comes from their arguments)
# --------------------------------------------------------------------------------------------


def md_escape(text: str) -> str:
    return re.sub(r"([\\|*_`\[\]<>#])", r"\\\1", text)


def pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def late_text(hours: int | None) -> str:
    if hours is None:
        return "incomplete"
    return "on time" if hours == 0 else f"{hours}h late"


def id_list(ids: list[str], limit: int = 4) -> str:
    text = ", ".join(ids[:limit])
    return f"{text} and others" if len(ids) > limit else text


def effects(w: WhatIfResult, intent: ScenarioIntent | None = None) -> str:
    """``J1 4h late → on time, J2 on time → 2h late (the rush); makespan 15h → 16h``: a rush or
    protected job that gets later is named as such, never hidden."""
    changed = [
        jid for jid in w.lateness_after if w.lateness_after[jid] != w.lateness_before.get(jid)
    ]
    if len(changed) <= 4:
        parts = [
            f"{jid} {late_text(w.lateness_before.get(jid))} → {late_text(w.lateness_after[jid])}"
            + _role_if_worse(jid, w.lateness_before.get(jid), w.lateness_after[jid], intent)
            for jid in changed
        ]
    else:
        parts = [
            f"late jobs {w.late_before} → {w.late_after}, total lateness "
            f"{w.total_lateness_before}h → {w.total_lateness_after}h"
        ]
    text = ", ".join(parts) if parts else "no job's lateness changes"
    if w.makespan_after != w.makespan_before:
        text += f"; makespan {w.makespan_before}h → {w.makespan_after}h"
    return text


def _role_if_worse(
    jid: str, before: int | None, after: int | None, intent: ScenarioIntent | None
) -> str:
    worse = (after is None and before is not None) or (
        after is not None and before is not None and after > before
    )
    if not worse or intent is None:
        return ""
    if jid == intent.rush_job_id:
        return " (the rush)"
    if jid == intent.protected_job_id:
        return " (the job you protect)"
    return ""


def rank_what_ifs(ctx: BriefingContext) -> list[WhatIfResult]:
    """Most useful first: facts (the note, a work order) before probes; saving the protected
    job; then the biggest cut in total lateness, fewest late jobs left."""
    order = {s.label: i for i, s in enumerate(ctx.scenarios)}
    facts = {s.label for s in ctx.scenarios if s.is_fact}
    kinds = {"replan": 0, "move_window": 1, "relax_rush_due": 2}
    protected = ctx.intent.protected_job_id

    def key(w: WhatIfResult) -> tuple[Any, ...]:
        saves_protected = (
            protected is not None
            and w.lateness_before.get(protected) != 0
            and w.lateness_after.get(protected) == 0
        )
        return (
            w.scenario_label not in facts,
            not saves_protected,
            -(w.total_lateness_before - w.total_lateness_after),
            w.late_after,
            order.get(w.scenario_label, 99),
            kinds[w.kind],
        )

    return sorted(ctx.what_ifs, key=key)


def risk_rows(ctx: BriefingContext) -> list[JobRiskRow]:
    return ctx.rows


def _risk_rows(ctx: BriefingContext) -> list[JobRiskRow]:
    rows = []
    for job in ctx.factory.jobs:
        cells = {}
        for spec in ctx.scenarios:
            due = ctx.results[spec.label].job_timelines[job.id].due_time
            cells[spec.label] = cell_for(ctx.metrics[spec.label], job.id, due)
        rows.append(JobRiskRow(job.id, job.name, cells))
    return rows


def queue_reason(ctx: BriefingContext, label: str, job_id: str) -> str:
    """Why a job is late in a scenario: the step that waited longest, and behind whom."""
    result = ctx.results[label]
    tl = result.job_timelines[job_id]
    if not tl.is_complete:
        first = next(u for u in result.unscheduled if u.job_id == job_id)
        return f"{first.step_id} cannot be scheduled ({first.reason})"
    waits = waits_of(result, ctx.factory)
    worst = max(tl.steps_timeline, key=lambda st: (waits[st.step_id][1], -st.start_time))
    ready, wait = waits[worst.step_id]
    slow = worst.duration_hours - worst.base_duration_hours
    if wait == 0 and slow > 0:
        return (
            f"{worst.step_id} takes {worst.duration_hours}h instead of "
            f"{worst.base_duration_hours}h on slowed {worst.machine_id}"
        )
    if wait == 0:
        return f"its route alone takes until {tl.completion_time}h"
    blockers = [
        a.job_id
        for a in result.machine_allocations[worst.machine_id]
        if a.start_time < worst.start_time and a.end_time > ready and a.job_id != job_id
    ]
    behind = f" behind {id_list(list(dict.fromkeys(blockers)))}" if blockers else ""
    return f"{worst.step_id} waited {wait}h for {worst.machine_id}{behind}"


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def intent_line(ctx: BriefingContext) -> str:
    """How the note was read, and every reference in it that matched nothing (named)."""
    i = ctx.intent
    parts = [f"objective {i.objective.value}"]
    if i.rush_job_id:
        rush = f"rush {i.rush_job_id}"
        if i.rush_arrival_time is not None:
            rush += f" arriving {i.rush_arrival_time}h"
        if i.rush_due_time is not None:
            rush += f" due {i.rush_due_time}h"
        parts.append(rush)
    if i.protected_job_id:
        parts.append(f"protect {i.protected_job_id}")
    if i.flexible_job_ids:
        parts.append(f"{', '.join(i.flexible_job_ids)} may slip")
    if i.watch_machine_id:
        parts.append(f"watch {i.watch_machine_id}")
    for e in i.events:
        when = ""
        if e.start_time is not None and e.end_time is not None:
            when = f" {e.start_time}-{e.end_time}h"
        parts.append(f"{e.machine_id} {e.kind.value.lower()}{when}")
    parts.append(f"risk tolerance {i.risk_tolerance.value}")
    if ctx.intent_source == "default":
        lead = "Your note could not be interpreted; the default was used"
    else:
        lead = "Your note was read as"
    line = f"{lead}: {', '.join(parts)}."
    refs = [md_escape(r) for r in ctx.ignored_refs]
    if len(refs) == 1:
        line += f" {refs[0]} is not in this factory; ignored."
    elif refs:
        line += f" {', '.join(refs[:-1])} and {refs[-1]} are not in this factory; ignored."
    return line


def table_rows(ctx: BriefingContext, rows: list[JobRiskRow]) -> list[JobRiskRow]:
    if len(rows) <= MAX_TABLE_JOBS:
        return rows
    at_risk = sorted((r for r in rows if r.at_risk), key=lambda r: tuple(-x for x in r.worst))
    return at_risk[:MAX_TABLE_JOBS]


def render_markdown(draft: Draft, ctx: BriefingContext) -> str:
    title = f"# Morning Briefing: {ctx.date} — {md_escape(ctx.factory.name)}"
    out = [title, ""]
    out += ["## Today at a Glance", draft.glance, ""]
    out += ["## Scenarios Analyzed", intent_line(ctx), ""]
    for spec in ctx.scenarios:
        out.append(f"- **{spec.label}** ({spec.type.value}): {draft.scenario_lines[spec.label]}")
    out += ["", "## Key Risks"]
    out += [f"- {r}" for r in draft.risks]
    out += ["", "## Jobs at Risk"]
    rows = table_rows(ctx, risk_rows(ctx))
    labels = [s.label for s in ctx.scenarios]
    out.append("| Job | " + " | ".join(labels) + " |")
    out.append("|---|" + "---|" * len(labels))
    for row in rows:
        name = md_escape(ctx.factory.job(row.job_id).name)
        out.append(f"| {row.job_id} ({name}) | " + " | ".join(row.texts()) + " |")
    if not rows:
        out.append("| (none) |" + " |" * len(labels))
    out += ["", draft.jobs_note, "", "## Bottleneck Machines"]
    for spec in ctx.scenarios:
        neck = ctx.metrics[spec.label].bottleneck_machine_id
        out.append(f"- **{spec.label}**: {neck} — {draft.bottleneck_lines[spec.label]}")
    out += ["", "## Recommended Actions"]
    out += [f"- {a}" for a in draft.actions]
    out += ["", "## Limitations of This Model", draft.limitations, ""]
    return "\n".join(out)


def word_count(markdown: str) -> int:
    return len(re.findall(r"[^\s|#*\-–—→:()]+", markdown))


def validate_markdown(markdown: str) -> list[str]:
    """Structural check of a finished briefing: the seven sections, in order, none empty."""
    problems = []
    if not markdown or not markdown.strip():
        return ["briefing is empty"]
    headings = re.findall(r"^## (.+?)\s*$", markdown, flags=re.MULTILINE)
    if tuple(headings) != SECTIONS:
        problems.append(f"sections must be {list(SECTIONS)}, got {headings}")
    bodies = re.split(r"^## .+$", markdown, flags=re.MULTILINE)[1:]
    for heading, body in zip(headings, bodies, strict=False):
        if not body.strip():
            problems.append(f"section {heading!r} is empty")
    if markdown.count("```") % 2:
        problems.append("unbalanced code fence")
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    if len({line.count("|") - line.count("\\|") for line in table}) > 1:
        problems.append("table rows have different column counts")
    return problems


# --------------------------------------------------------------------------------------------
# Checking a model's reply
# --------------------------------------------------------------------------------------------


def _clean(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string")
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", value).strip()
    text = re.sub(r"\s+", " ", text)
    if not text:
        raise ValueError(f"{where} is empty")
    if len(text) > MAX_FIELD_CHARS:
        raise ValueError(f"{where} is longer than {MAX_FIELD_CHARS} characters")
    if re.search(r"(^|\s)#{1,6}\s|<[A-Za-z/!]|```|\|", text):
        raise ValueError(f"{where} contains markdown structure or HTML")
    return text


def draft_from_reply(data: Any, ctx: BriefingContext) -> Draft:
    """A model's structured reply as a Draft; ValueError says what is wrong with its shape."""
    return _parse_reply(data, ctx)


def check_draft(draft: Draft, ctx: BriefingContext) -> str | None:
    """None when every sentence names only real ids and cites only the simulation's figures;
    else the first problems, each with the field it is in."""
    problems: list[str] = []
    texts: list[tuple[str, str]] = [("today_at_a_glance", draft.glance)]
    texts += [(f"scenarios_analyzed[{k}]", v) for k, v in draft.scenario_lines.items()]
    texts += [(f"key_risks[{i}]", v) for i, v in enumerate(draft.risks)]
    texts += [("jobs_at_risk_note", draft.jobs_note)]
    texts += [(f"bottleneck_machines[{k}]", v) for k, v in draft.bottleneck_lines.items()]
    texts += [(f"recommended_actions[{i}]", v) for i, v in enumerate(draft.actions)]
    texts += [("limitations", draft.limitations)]
    for where, text in texts:
        for problem in check_prose(text, ctx.factory, ctx.facts):
            problems.append(f"{where} {problem}")
    if problems:
        return "; ".join(problems[:3]) + (
            f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        )
    return None


def _parse_reply(data: Any, ctx: BriefingContext) -> Draft:
    if not isinstance(data, dict):
        raise ValueError("reply must be a JSON object")
    expected = {
        "today_at_a_glance",
        "scenarios_analyzed",
        "key_risks",
        "jobs_at_risk_note",
        "bottleneck_machines",
        "recommended_actions",
        "limitations",
    }
    if set(data) != expected:
        missing = sorted(expected - set(data))
        extra = sorted(set(data) - expected)
        raise ValueError(f"reply fields differ from the schema (missing {missing}, extra {extra})")
    labels = [s.label for s in ctx.scenarios]
    scenario_lines = _per_label(
        data["scenarios_analyzed"], "scenarios_analyzed", labels, "explanation"
    )
    bottlenecks = _per_label(data["bottleneck_machines"], "bottleneck_machines", labels, "why")
    for item in data["bottleneck_machines"]:
        named = item.get("machine_id")
        actual = ctx.metrics[item["label"]].bottleneck_machine_id
        if named != actual:
            raise ValueError(
                f"bottleneck_machines[{item['label']}]: names {named!r}, the metrics say {actual!r}"
            )
    risks = _str_list(data["key_risks"], "key_risks", RISKS_RANGE)
    actions = _str_list(data["recommended_actions"], "recommended_actions", ACTIONS_RANGE)
    return Draft(
        glance=_clean(data["today_at_a_glance"], "today_at_a_glance"),
        scenario_lines=scenario_lines,
        risks=tuple(risks),
        jobs_note=_clean(data["jobs_at_risk_note"], "jobs_at_risk_note"),
        bottleneck_lines=bottlenecks,
        actions=tuple(actions),
        limitations=_clean(data["limitations"], "limitations"),
    )


def _per_label(items: Any, where: str, labels: list[str], text_key: str) -> dict[str, str]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError(f"{where} must be a list of objects")
    got = [i.get("label") for i in items]
    if sorted(map(str, got)) != sorted(labels):
        raise ValueError(f"{where} must cover each scenario once ({labels}), got {got}")
    return {i["label"]: _clean(i.get(text_key), f"{where}[{i['label']}].{text_key}") for i in items}


def _str_list(items: Any, where: str, bounds: tuple[int, int]) -> list[str]:
    if not isinstance(items, list):
        raise ValueError(f"{where} must be a list")
    if not bounds[0] <= len(items) <= bounds[1]:
        raise ValueError(f"{where} needs {bounds[0]}-{bounds[1]} items, got {len(items)}")
    return [_clean(v, f"{where}[{i}]") for i, v in enumerate(items)]
