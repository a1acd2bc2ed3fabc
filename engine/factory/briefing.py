"""The morning briefing: a draft of seven sections, rendered to markdown by one function.

Both briefing agents produce a :class:`Draft` (prose per section); :func:`render_markdown`
adds the header, the jobs-at-risk table and the section order, so the figures that matter most
(per-job lateness per scenario) always come straight from the metrics, whoever wrote the prose.

- :func:`write_offline` is the deterministic writer (and the fallback): every sentence is
  built from metrics, schedules and what-if results.
- :func:`draft_from_reply` checks a Claude reply: shape, one line per scenario, the bottleneck
  the metrics name, and, in every sentence, only real ids and only figures from the
  simulation (:mod:`engine.factory.text_checks`). Anything else is rejected with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from engine.factory.metrics import step_waits
from engine.factory.models import (
    FactoryConfig,
    FactoryState,
    ScenarioIntent,
    ScenarioMetrics,
    ScenarioSpec,
    ScenarioType,
    SimulationResult,
    WhatIfResult,
)
from engine.factory.report import JobRiskRow, cell_for
from engine.factory.scheduler import job_sequence
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


def effects(w: WhatIfResult) -> str:
    """``J1 4h late → on time, J2 on time → 2h late; makespan 15h → 16h``."""
    changed = [
        jid for jid in w.lateness_after if w.lateness_after[jid] != w.lateness_before.get(jid)
    ]
    if len(changed) <= 4:
        parts = [
            f"{jid} {late_text(w.lateness_before.get(jid))} → {late_text(w.lateness_after[jid])}"
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


def rank_what_ifs(ctx: BriefingContext) -> list[WhatIfResult]:
    """Most useful first: biggest cut in total lateness, then fewest late jobs left."""
    order = {s.label: i for i, s in enumerate(ctx.scenarios)}
    kinds = {"relax_rush_due": 0, "move_slowdown": 1, "run_first": 2}
    protected = ctx.intent.protected_job_id

    def key(w: WhatIfResult) -> tuple[Any, ...]:
        saves_protected = (
            protected is not None
            and w.lateness_before.get(protected) != 0
            and w.lateness_after.get(protected) == 0
        )
        return (
            not saves_protected,
            -(w.total_lateness_before - w.total_lateness_after),
            w.late_after,
            order.get(w.scenario_label, 99),
            kinds[w.kind],
        )

    return sorted(ctx.what_ifs, key=key)


def risk_rows(ctx: BriefingContext) -> list[JobRiskRow]:
    rows = []
    for job in ctx.factory.jobs:
        cells = {}
        for spec in ctx.scenarios:
            due = ctx.results[spec.label].job_timelines[job.id].due_time
            cells[spec.label] = cell_for(ctx.metrics[spec.label], job.id, due)
        rows.append(JobRiskRow(job.id, job.name, cells))
    return rows


def _queue_reason(ctx: BriefingContext, label: str, job_id: str) -> str:
    """Why a job is late in a scenario: the step that waited longest, and behind whom."""
    result = ctx.results[label]
    tl = result.job_timelines[job_id]
    if not tl.is_complete:
        first = next(u for u in result.unscheduled if u.job_id == job_id)
        return f"{first.step_id} cannot be scheduled ({first.reason})"
    waits = step_waits(result, ctx.factory)
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
# The offline writer
# --------------------------------------------------------------------------------------------


def write_offline(ctx: BriefingContext) -> Draft:
    return Draft(
        glance=_glance(ctx),
        scenario_lines={s.label: _scenario_line(ctx, s) for s in ctx.scenarios},
        risks=tuple(_risks(ctx)),
        jobs_note=_jobs_note(ctx),
        bottleneck_lines={s.label: _bottleneck_line(ctx, s) for s in ctx.scenarios},
        actions=tuple(_actions(ctx)),
        limitations=_limitations(ctx),
    )


def _worst(ctx: BriefingContext) -> tuple[str, str] | None:
    """(scenario, job) of the biggest risk: the protected job first, then jobs the planner did
    not allow to slip, then incomplete before late, then most hours late."""
    protected = ctx.intent.protected_job_id
    flexible = set(ctx.intent.flexible_job_ids)
    best: tuple[tuple[int, ...], str, str] | None = None
    for spec in ctx.scenarios:
        m = ctx.metrics[spec.label]
        for jid in m.late_job_ids:
            late = m.lateness_by_job[jid]
            key = (jid == protected, jid not in flexible, late is None, late or 0)
            if best is None or key > best[0]:
                best = (key, spec.label, jid)
    return None if best is None else (best[1], best[2])


def _tightest(ctx: BriefingContext) -> tuple[str, int, str] | None:
    """(job, slack hours, scenario label) with the least slack in the baseline."""
    label = ctx.baseline.label
    m = ctx.metrics[label]
    best = None
    for job in ctx.factory.jobs:
        done = m.completion_by_job[job.id]
        if done is None:
            continue
        slack = ctx.results[label].job_timelines[job.id].due_time - done
        if slack >= 0 and (best is None or slack < best[1]):
            best = (job.id, slack, label)
    return best


def _glance(ctx: BriefingContext) -> str:
    worst = _worst(ctx)
    ranked = rank_what_ifs(ctx)
    if worst is None:
        n_jobs, n_sc = len(ctx.factory.jobs), len(ctx.scenarios)
        tight = _tightest(ctx)
        bottleneck = ctx.metrics[ctx.baseline.label].bottleneck_machine_id
        first = f"All {n_jobs} jobs finish on time in all {n_sc} scenarios"
        if tight:
            first += f"; the tightest is {tight[0]} with {tight[1]}h of slack in {tight[2]}"
        return (
            f"{first}, and {bottleneck} is the bottleneck. Recommended: keep the planned "
            f"sequence and protect {bottleneck}'s hours, since any time lost there moves every "
            "job queued behind it."
        )
    label, jid = worst
    m = ctx.metrics[label]
    tl = ctx.results[label].job_timelines[jid]
    who = f"{jid}, which you asked to protect," if jid == ctx.intent.protected_job_id else jid
    if tl.completion_time is None:
        first = f"Biggest risk: in **{label}**, {who} does not finish within the plan"
    else:
        first = (
            f"Biggest risk: in **{label}**, {who} finishes at {tl.completion_time}h, "
            f"{m.lateness_by_job[jid]}h after its {tl.due_time}h due time"
        )
    first += f" ({_queue_reason(ctx, label, jid)})."
    fixes = (
        [w for w in ranked if w.scenario_label == label and w.lateness_after.get(jid) == 0]
        or [w for w in ranked if w.scenario_label == label]
        or ranked
    )
    if fixes:
        top = fixes[0]
        where = "" if top.scenario_label == label else f" ({top.scenario_label})"
        second = f" Recommended: {_lower_first(top.title)}{where}: {effects(top)}."
    else:
        second = (
            " None of the levers tried (running a job first, moving the disruption) "
            "improves it: plan extra capacity on "
            f"{m.bottleneck_machine_id} or agree a later date for {jid}."
        )
    return first + second


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _scenario_line(ctx: BriefingContext, spec: ScenarioSpec) -> str:
    f = ctx.factory
    if spec.rush is not None:
        r = spec.rush
        job = f.job(r.rush_job_id)
        why = " — the rush your note describes" if ctx.intent.rush_job_id == job.id else ""
        return (
            f"{job.id} ({md_escape(job.name)}) becomes a rush order: it arrives at "
            f"{r.arrival_time}h and is due at {r.due_time}h instead of {job.due_time}h{why}."
        )
    if spec.slowdown is not None:
        s = spec.slowdown
        machine = f.machine(s.machine_id)
        baseline_neck = ctx.metrics[ctx.baseline.label].bottleneck_machine_id
        if ctx.intent.watch_machine_id == machine.id:
            why = "; the machine your note is worried about"
        elif baseline_neck == machine.id:
            why = "; the baseline bottleneck"
        else:
            why = ""
        return (
            f"{machine.id} ({md_escape(machine.name)}) runs at {s.slowdown_factor:.1f}× duration "
            f"from {s.start_time}h to {s.end_time}h (tooling, maintenance or staffing){why}."
        )
    order = [j.id for j in job_sequence(f)]
    rule = "EDD" if f.scheduling_heuristic == "earliest_due_date" else "FCFS"
    seq = " → ".join(order) if len(order) <= 8 else " → ".join(order[:5]) + " → and so on"
    return f"the day as planned: {len(order)} jobs in {rule} order {seq}."


def _risks(ctx: BriefingContext) -> list[str]:
    risks: list[str] = []
    for spec in ctx.scenarios:
        m = ctx.metrics[spec.label]
        if not m.late_job_ids:
            continue
        ranked = sorted(
            m.late_job_ids,
            key=lambda j: (m.lateness_by_job[j] is not None, -(m.lateness_by_job[j] or 0)),
        )
        listed = ", ".join(f"{j} {late_text(m.lateness_by_job[j])}" for j in ranked[:3])
        if len(ranked) > 3:
            listed += f" and {len(ranked) - 3} more"
        risks.append(f"**{spec.label}**: {listed}; {_queue_reason(ctx, spec.label, ranked[0])}.")
    if not risks:
        risks.append(f"No job is late in any of the {len(ctx.scenarios)} scenarios.")
    protected = ctx.intent.protected_job_id
    if protected:
        late_in = [
            (s.label, ctx.metrics[s.label].lateness_by_job[protected])
            for s in ctx.scenarios
            if protected in ctx.metrics[s.label].late_job_ids
        ]
        if late_in:
            where = ", ".join(f"{late_text(h)} in {label}" for label, h in late_in)
            risks.append(f"{protected}, which you asked to protect, is at risk: {where}.")
        else:
            risks.append(f"{protected}, which you asked to protect, is on time in every scenario.")
    for jid in ctx.intent.flexible_job_ids[:2]:
        late_in = [
            (s.label, ctx.metrics[s.label].lateness_by_job[jid])
            for s in ctx.scenarios
            if jid in ctx.metrics[s.label].late_job_ids
        ]
        if late_in:
            where = ", ".join(f"{late_text(h)} in {label}" for label, h in late_in)
            risks.append(f"{jid}, which your note allows to slip, absorbs the pressure: {where}.")
    neck = ctx.metrics[ctx.baseline.label].bottleneck_machine_id
    utils = [(s.label, ctx.metrics[s.label].utilization_by_machine[neck]) for s in ctx.scenarios]
    trend = ", ".join(f"{pct(u)} in {label}" for label, u in utils)
    risks.append(f"{neck} utilization (busy hours / window): {trend}.")
    spans = ", ".join(f"{ctx.metrics[s.label].makespan_hours}h in {s.label}" for s in ctx.scenarios)
    risks.append(f"Makespan: {spans}.")
    necks = {ctx.metrics[s.label].bottleneck_machine_id for s in ctx.scenarios}
    if len(necks) > 1:
        shifted = [
            f"{ctx.metrics[s.label].bottleneck_machine_id} in {s.label}"
            for s in ctx.scenarios
            if ctx.metrics[s.label].bottleneck_machine_id != neck
        ]
        risks.insert(1, f"The bottleneck moves off {neck}: {', '.join(shifted)}.")
    for spec in ctx.scenarios:
        un = ctx.results[spec.label].unscheduled
        if un:
            risks.insert(
                1,
                f"**{spec.label}**: {len(un)} steps find no room before their machine's window "
                f"closes ({id_list([u.step_id for u in un], 3)}); those jobs are incomplete.",
            )
    return risks[: RISKS_RANGE[1]]


def _jobs_note(ctx: BriefingContext) -> str:
    rows = risk_rows(ctx)
    at_risk = [r for r in rows if r.at_risk]
    if not at_risk:
        tight = _tightest(ctx)
        extra = f" Least slack: {tight[0]}, {tight[1]}h in {tight[2]}." if tight else ""
        return f"No job is late or incomplete in any scenario.{extra}"
    notes = []
    for row in sorted(at_risk, key=lambda r: tuple(-x for x in r.worst))[:3]:
        label = max(
            (lbl for lbl, c in row.cells.items() if c.status != "on time"),
            key=lambda lbl: (
                row.cells[lbl].status == "incomplete",
                row.cells[lbl].lateness_hours or 0,
            ),
        )
        notes.append(f"{row.job_id} in {label}: {_queue_reason(ctx, label, row.job_id)}.")
    hidden = len(rows) - len(table_rows(ctx, rows))
    tail = f" {hidden} jobs on time everywhere are not listed." if hidden > 0 else ""
    return "Why: " + " ".join(notes) + tail


def _bottleneck_line(ctx: BriefingContext, spec: ScenarioSpec) -> str:
    m = ctx.metrics[spec.label]
    neck = m.bottleneck_machine_id
    machine = ctx.factory.machine(neck)
    users = sum(any(s.machine_id == neck for s in j.steps) for j in ctx.factory.jobs)
    text = (
        f"{m.busy_hours_by_machine[neck]}h busy in its {machine.available_hours}h window "
        f"({pct(m.utilization_by_machine[neck])}); {users} of {len(ctx.factory.jobs)} jobs "
        "need it"
    )
    base = ctx.metrics[ctx.baseline.label]
    extra = m.busy_hours_by_machine[neck] - base.busy_hours_by_machine[neck]
    if spec.slowdown is not None and spec.slowdown.machine_id == neck and extra > 0:
        text += f"; the slowdown adds {extra}h of busy time"
    waits = step_waits(ctx.results[spec.label], ctx.factory)
    queued = [
        (w, sid)
        for sid, (_, w) in waits.items()
        if w > 0 and sid in {a.step_id for a in ctx.results[spec.label].machine_allocations[neck]}
    ]
    if queued:
        w, sid = max(queued, key=lambda t: (t[0], t[1]))
        text += f"; longest queue: {sid} waited {w}h for it"
    return text + "."


def _actions(ctx: BriefingContext) -> list[str]:
    ranked = rank_what_ifs(ctx)
    chosen: list[WhatIfResult] = []
    for w in ranked:  # one per scenario first, then the next best
        if all(c.scenario_label != w.scenario_label for c in chosen):
            chosen.append(w)
    for w in ranked:
        if w not in chosen:
            chosen.append(w)
    actions = [
        f"**{w.scenario_label}: {w.title}.** Simulated: {effects(w)}."
        for w in chosen[: ACTIONS_RANGE[1] - 1]
    ]
    neck = ctx.metrics[ctx.baseline.label].bottleneck_machine_id
    base = ctx.metrics[ctx.baseline.label]
    if not actions:
        tight = _tightest(ctx)
        if tight:
            start = ctx.results[tight[2]].job_timelines[tight[0]].steps_timeline[0].start_time
            actions.append(
                f"Keep the planned sequence; start {tight[0]} at {start}h as scheduled: it has "
                f"only {tight[1]}h of slack."
            )
    actions.append(
        f"Guard {neck}: it carries {base.busy_hours_by_machine[neck]}h of work in the baseline "
        f"({pct(base.utilization_by_machine[neck])}); schedule maintenance and changeovers on it "
        "outside those hours."
    )
    if len(actions) < ACTIONS_RANGE[0]:
        actions.append("Re-run this briefing when an order or a machine window changes.")
    return actions[: ACTIONS_RANGE[1]]


def _limitations(ctx: BriefingContext) -> str:
    return (
        f"This is a deterministic plan of one {ctx.factory.time_horizon}h horizon: durations are "
        "exact whole hours, machines do not break down, material always arrives and operators "
        "are always there. Each scenario changes one thing at a time, and setup times, "
        "transport between machines and combined disruptions are not modelled. Use it to see "
        "where the day is fragile, and confirm the plan with the floor lead."
    )


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _intent_line(ctx: BriefingContext) -> str:
    i = ctx.intent
    parts = [f"objective {i.objective.value}"]
    if i.rush_job_id:
        parts.append(f"rush {i.rush_job_id}")
    if i.protected_job_id:
        parts.append(f"protect {i.protected_job_id}")
    if i.flexible_job_ids:
        parts.append(f"{', '.join(i.flexible_job_ids)} may slip")
    if i.watch_machine_id:
        parts.append(f"watch {i.watch_machine_id}")
    parts.append(f"risk tolerance {i.risk_tolerance.value}")
    if ctx.intent_source == "default":
        lead = "Your note could not be interpreted; the default was used"
    else:
        lead = "Your note was read as"
    line = f"{lead}: {', '.join(parts)}."
    ignored = sum("not a job" in n or "not a machine" in n for n in ctx.notes)
    if ignored:
        line += (
            f" {ignored} reference(s) in it matched no job or machine of this factory and "
            "were ignored."
        )
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
    out += ["## Scenarios Analyzed", _intent_line(ctx), ""]
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


def draft_from_reply(data: Any, ctx: BriefingContext) -> tuple[Draft | None, str | None]:
    """Validate a model's structured reply against the schema and the simulation's facts."""
    try:
        draft = _parse_reply(data, ctx)
    except ValueError as exc:
        return None, str(exc)
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
        return None, "; ".join(problems[:3]) + (
            f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        )
    return draft, None


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
