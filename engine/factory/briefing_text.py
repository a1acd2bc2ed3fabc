"""The offline briefing writer (also the fallback): every sentence built from the pipeline's
typed outputs — metrics, schedules, the plan, the levers and the work orders.

What it puts first, because that is what a planner asks first:

- **Today at a Glance** answers "what should I expect?": the day as planned (which jobs are
  late and by how much), what the facts in the note (or a work order) do to it, then the single
  action that helps most — the recommended plan when it beats the planned sequence, else the
  best lever on a fact, never a fix for a disruption the system made up.
- **Recommended Actions** lead with the plan: the order on the bottleneck, its effect on total
  lateness, late jobs and makespan against the baseline, and who pays.

Length: the spec asks 500-800 words. The toy world always lands there (optional detail is
added or dropped by priority); a larger factory may go longer, and the limitations say why.

Why one module of ~540 lines: every section of the briefing is one sentence builder over the same
typed outputs, and the length budget (``_fit_length``) drops and adds their optional parts by one
priority list; split by section, that budget would have to reach into every part. The offline
planning it describes lives elsewhere (``briefing.py``, ``margins.py``).
"""

from __future__ import annotations

from dataclasses import replace

from engine.factory.briefing import (
    ACTIONS_RANGE,
    MARGIN_JOBS_SHOWN,
    RISKS_RANGE,
    BriefingContext,
    Draft,
    effects,
    id_list,
    late_text,
    md_escape,
    pct,
    queue_reason,
    rank_what_ifs,
    render_markdown,
    risk_rows,
    table_rows,
    word_count,
)
from engine.factory.metrics import waits_of
from engine.factory.models import Job, Machine
from engine.factory.results import Margin, Plan, WhatIfResult, WindowStretch
from engine.factory.scenario import ScenarioSpec
from engine.factory.scheduler import job_sequence

WORDS = (500, 800)


def write_offline(ctx: BriefingContext) -> Draft:
    draft = Draft(
        glance=_glance(ctx),
        scenario_lines={s.label: _scenario_line(ctx, s) for s in ctx.scenarios},
        risks=tuple(_risks(ctx)),
        jobs_note=_jobs_note(ctx),
        bottleneck_lines={s.label: _bottleneck_line(ctx, s) for s in ctx.scenarios},
        actions=tuple(_actions(ctx)),
        limitations=_limitations(ctx, ""),
    )
    return _fit_length(draft, ctx)


def _fit_length(draft: Draft, ctx: BriefingContext) -> Draft:
    """Add optional detail (by priority) until the spec's 500 words; over 800 on a large
    factory, say why."""
    extras = [
        ("risks", _slack_risk(ctx)),
        ("jobs_note", _rules_sentence(ctx)),
        ("limitations", _method_sentence(ctx)),
        ("jobs_note", _sequence_sentence(ctx)),
        ("limitations", _search_limits_sentence()),
    ]
    for where, text in extras:
        if word_count(render_markdown(draft, ctx)) >= WORDS[0]:
            break
        if not text:
            continue
        if where == "risks" and len(draft.risks) < RISKS_RANGE[1]:
            draft = replace(draft, risks=(*draft.risks, text))
        elif where == "jobs_note":
            draft = replace(draft, jobs_note=f"{draft.jobs_note} {text}")
        elif where == "limitations":
            draft = replace(draft, limitations=f"{draft.limitations} {text}")
    while word_count(render_markdown(draft, ctx)) > WORDS[1] and len(draft.risks) > RISKS_RANGE[0]:
        draft = replace(draft, risks=draft.risks[:-1])
    words = word_count(render_markdown(draft, ctx))
    if words > WORDS[1]:
        why = (
            f" This briefing runs past the usual 800 words because the factory has "
            f"{len(ctx.factory.jobs)} jobs on {len(ctx.factory.machines)} machines and "
            f"{len(ctx.scenarios)} scenarios to compare."
        )
        draft = replace(draft, limitations=draft.limitations + why)
    return draft


# --------------------------------------------------------------------------------------------
# Today at a Glance
# --------------------------------------------------------------------------------------------


def _late_summary(ctx: BriefingContext, label: str) -> str:
    m = ctx.metrics[label]
    if not m.late_job_ids:
        return f"all {m.num_jobs} jobs finish on time (makespan {m.makespan_hours}h)"
    ranked = sorted(
        m.late_job_ids,
        key=lambda j: (m.lateness_by_job[j] is not None, -(m.lateness_by_job[j] or 0)),
    )
    listed = ", ".join(f"{j} {late_text(m.lateness_by_job[j])}" for j in ranked[:4])
    more = f" and {len(ranked) - 4} more" if len(ranked) > 4 else ""
    return f"{m.num_late_jobs} of {m.num_jobs} jobs late ({listed}{more})"


def _glance(ctx: BriefingContext) -> str:
    base = ctx.baseline.label
    neck = ctx.metrics[base].bottleneck_machine_id
    sentences = [f"As planned, {_late_summary(ctx, base)}; {neck} is the bottleneck."]
    facts = [s for s in ctx.scenarios if s.is_fact and s.label != base]
    for spec in facts[:2]:
        m = ctx.metrics[spec.label]
        what = _what_it_is(ctx, spec)
        if m.late_job_ids:
            sentences.append(f"{what}: {_late_summary(ctx, spec.label)}.")
        else:
            sentences.append(f"{what}: every job still finishes on time{_thin_margin(ctx, spec)}.")
    action = _best_action(ctx)
    if action:
        sentences.append(f"Recommended: {action}")
    else:
        sentences.append(
            f"Recommended: keep the planned sequence and protect {neck}'s hours; any time lost "
            "there moves every job queued behind it."
        )
    return " ".join(sentences)


def _thin_margin(ctx: BriefingContext, spec: ScenarioSpec) -> str:
    """The nearest hour at which a harmless stated stop starts to cost, if any."""
    margin = next((m for m in ctx.margins if m.scenario_label == spec.label), None)
    harmed = [] if margin is None else [s for s in margin.stretches if s.harmed_at is not None]
    if not harmed:
        return ""
    st = min(harmed, key=lambda s: (s.safe_hours, s.direction))
    when = "it starts" if st.direction == "earlier" else "it ends"
    spare = "no hour" if st.safe_hours == 0 else f"only {st.safe_hours}h"
    (jid, (_, after)), *_ = st.worse.items()
    ends = "does not finish" if after is None else f"ends {late_text(after)}"
    more = f" (and {st.worse_count - 1} more jobs later)" if st.worse_count > 1 else ""
    return f", with {spare} to spare: if {when} at {st.harmed_at}h, {jid} {ends}{more}"


def _what_it_is(ctx: BriefingContext, spec: ScenarioSpec) -> str:
    if spec.origin == "ticket":
        return f"With work order {spec.ticket_id} ({spec.label})"
    if spec.rush is not None:
        return f"With the rush of {spec.rush.rush_job_id} you describe"
    if spec.down is not None:
        d = spec.down
        word = "maintenance" if d.planned else "outage"
        return f"With the {d.machine_id} {word} {d.start_time}-{d.end_time}h from your note"
    if spec.slowdown is not None:
        return f"With {spec.slowdown.machine_id} running slow as your note says"
    return f"In {spec.label}"


def _best_action(ctx: BriefingContext) -> str | None:
    plan = ctx.plan
    if plan is not None and plan.improves:
        return (
            f"the re-sequenced plan ({_plan_order(ctx, plan)}) cuts total lateness "
            f"{plan.baseline_total_lateness}h → {plan.total_lateness}h and late jobs "
            f"{len(plan.baseline_late_jobs)} → {len(plan.late_jobs)}{_payers_clause(ctx, plan)}."
        )
    facts = {s.label for s in ctx.scenarios if s.is_fact}
    for w in rank_what_ifs(ctx):
        if w.scenario_label in facts:
            return f"{_lever_title(ctx, w)} ({w.scenario_label}): {effects(w, ctx.intent)}."
    return None


def _plan_order(ctx: BriefingContext, plan: Plan) -> str:
    first = plan.actions[0] if plan.actions else ""
    return first.rstrip(".").replace(" (the bottleneck)", "")[:160] or "new start times"


def _payers_clause(ctx: BriefingContext, plan: Plan) -> str:
    if not plan.payers:
        return ", and no job finishes later"
    payers = list(plan.payers.items())[:3]
    listed = ", ".join(f"{j} {late_text(b)} → {late_text(a)}" for j, (b, a) in payers)
    more = f" and {len(plan.payers) - 3} more" if len(plan.payers) > 3 else ""
    return f"; who pays: {listed}{more}"


def _lever_title(ctx: BriefingContext, w: WhatIfResult) -> str:
    title = w.title[:1].lower() + w.title[1:] if w.title[:2] != w.title[:2].upper() else w.title
    if w.kind == "move_window":
        title += " (its timing is your choice)"
    return title


# --------------------------------------------------------------------------------------------
# Scenarios, risks, jobs, bottlenecks
# --------------------------------------------------------------------------------------------


def _origin_text(ctx: BriefingContext, spec: ScenarioSpec) -> str:
    if spec.origin == "ticket":
        cite = next((c for c in ctx.tickets if c.scenario_label == spec.label), None)
        if cite is not None:
            return (
                f" From work order {cite.ticket_id} ({cite.root_cause.replace('_', ' ')} on "
                f"{cite.asset}, {cite.severity}, {cite.state}): {cite.work}."
            )
        return f" From work order {spec.ticket_id}."
    if spec.origin == "probe":
        return " A test the system added, not something your note said."
    return " From your note."


def _named(thing: Job | Machine) -> str:
    """A job or machine as each scenario line names it: its id, then its own name."""
    return f"{thing.id} ({md_escape(thing.name)})"


def _scenario_line(ctx: BriefingContext, spec: ScenarioSpec) -> str:
    f = ctx.factory
    origin = _origin_text(ctx, spec)
    if spec.rush is not None:
        r = spec.rush
        job = f.job(r.rush_job_id)
        return (
            f"{_named(job)} becomes a rush order: it arrives at "
            f"{r.arrival_time}h and is due at {r.due_time}h instead of {job.due_time}h.{origin}"
        )
    if spec.slowdown is not None:
        s = spec.slowdown
        neck = ctx.metrics[ctx.baseline.label].bottleneck_machine_id
        why = " It is the baseline bottleneck." if neck == s.machine_id else ""
        return (
            f"{_named(f.machine(s.machine_id))} runs at {s.slowdown_factor:.1f}× duration "
            f"from {s.start_time}h to {s.end_time}h.{why}{origin}"
        )
    if spec.down is not None:
        d = spec.down
        kind = "planned maintenance (its timing is a choice)" if d.planned else "not available"
        return (
            f"{_named(f.machine(d.machine_id))} is {kind} from {d.start_time}h to "
            f"{d.end_time}h: nothing runs on it and no step spans the stop.{origin}"
        )
    order = [j.id for j in job_sequence(f)]
    rule = "EDD" if f.scheduling_heuristic == "earliest_due_date" else "FCFS"
    seq = " → ".join(order) if len(order) <= 8 else " → ".join(order[:5]) + " → and so on"
    return f"the day as planned: {len(order)} jobs in {rule} order {seq}."


def _late_in(ctx: BriefingContext, job_id: str) -> str:
    """How late ``job_id`` is in each scenario where it is late ("3h in Rush, …"); empty when
    it is on time in every scenario."""
    return ", ".join(
        f"{late_text(ctx.metrics[s.label].lateness_by_job[job_id])} in {s.label}"
        for s in ctx.scenarios
        if job_id in ctx.metrics[s.label].late_job_ids
    )


def _risks(ctx: BriefingContext) -> list[str]:
    risks: list[str] = []
    ordered = sorted(ctx.scenarios, key=lambda s: (not s.is_fact, ctx.scenarios.index(s)))
    for spec in ordered:
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
        tag = "" if spec.is_fact else " (test)"
        risks.append(
            f"**{spec.label}**{tag}: {listed}; {queue_reason(ctx, spec.label, ranked[0])}."
        )
    if not risks:
        risks.append(f"No job is late in any of the {len(ctx.scenarios)} scenarios.")
    risks.extend(_margin_risk(ctx, m) for m in ctx.margins[:2])
    protected = ctx.intent.protected_job_id
    if protected:
        where = _late_in(ctx, protected)
        if where:
            risks.insert(0, f"{protected}, which you asked to protect, is at risk: {where}.")
        else:
            risks.append(f"{protected}, which you asked to protect, is on time in every scenario.")
    for jid in ctx.intent.flexible_job_ids[:2]:
        where = _late_in(ctx, jid)
        if where:
            risks.append(f"{jid}, which your note allows to slip, absorbs the pressure: {where}.")
    neck = ctx.metrics[ctx.baseline.label].bottleneck_machine_id
    utils = [(s.label, ctx.metrics[s.label].utilization_by_machine[neck]) for s in ctx.scenarios]
    trend = ", ".join(f"{pct(u)} in {label}" for label, u in utils)
    spans = ", ".join(f"{ctx.metrics[s.label].makespan_hours}h in {s.label}" for s in ctx.scenarios)
    # The general figures go last: past the cap, they give way to the day's specific news.
    general = [f"{neck} utilization (busy hours / window): {trend}.", f"Makespan: {spans}."]
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
    for cite in ctx.tickets:
        if cite.scenario_label is None:
            risks.append(
                f"Work order {cite.ticket_id} ({cite.root_cause.replace('_', ' ')} on "
                f"{cite.asset}, {cite.machine_id}) needs no stop today: {cite.work}."
            )
    return [*risks, *general][: RISKS_RANGE[1]]


_SIDE_WORDS = {
    # (no harm, reached the edge), (no harm within budget), (harm after 0h), (harm after n h)
    "earlier": (
        "{what} could start as early as {edge}h with no job later",
        "starting {n}h earlier makes no job later",
        "starting 1h earlier ({at}h) makes {worse}",
        "{what} may start up to {n}h earlier ({edge}h) with no job later; starting at {at}h "
        "makes {worse}",
    ),
    "later": (
        "it may run on until {edge}h, the end of {machine}'s day, with no job later",
        "an overrun of {n}h makes no job later",
        "an overrun of 1h (to {at}h) makes {worse}",
        "it may overrun up to {n}h (to {edge}h) with no job later; ending at {at}h makes {worse}",
    ),
}


def _margin_risk(ctx: BriefingContext, margin: Margin) -> str:
    """How sure the answer for a stated stop is: the hour it may start earlier or overrun
    before a job gets later (``margins.find_margins`` simulated each)."""
    spec = ctx.spec(margin.scenario_label)
    what = "the slowdown" if spec.slowdown is not None else "the stop"
    lead = f"Margin of **{margin.scenario_label}** (simulated): "
    machine = ctx.factory.machine(margin.machine_id)
    if all(st.harmed_at is None and st.to_edge for st in margin.stretches):
        return (
            f"{lead}{what} makes no job later even over {machine.id}'s whole day "
            f"({machine.available_start}-{machine.available_end}h)."
        )
    parts: list[str] = []
    for st in margin.stretches:
        safe_edge, safe_budget, harm_now, harm_later = _SIDE_WORDS[st.direction]
        if st.harmed_at is None:
            template = safe_edge if st.to_edge else safe_budget
        else:
            template = harm_now if st.safe_hours == 0 else harm_later
        edge = (
            margin.start_time - st.safe_hours
            if st.direction == "earlier"
            else margin.end_time + st.safe_hours
        )
        parts.append(
            template.format(
                what=what,
                edge=edge,
                n=st.safe_hours,
                at=st.harmed_at,
                machine=machine.id,
                worse=_worse(st) if st.harmed_at is not None else "",
            )
        )
    return f"{lead}{'; '.join(parts)}."


def _worse(st: WindowStretch) -> str:
    shown = list(st.worse.items())[:MARGIN_JOBS_SHOWN]
    listed = ", ".join(f"{j} {late_text(b)} → {late_text(a)}" for j, (b, a) in shown)
    more = st.worse_count - len(shown)
    return listed + (f" and {more} more" if more > 0 else "")


def _slack_risk(ctx: BriefingContext) -> str:
    label = ctx.baseline.label
    m = ctx.metrics[label]
    slacks = []
    for job in ctx.factory.jobs[:8]:
        done = m.completion_by_job[job.id]
        if done is not None and done <= job.due_time:
            slacks.append(f"{job.id} {job.due_time - done}h")
    if not slacks:
        return ""
    return f"Slack in the plan as it stands: {', '.join(slacks)}; a job with 0h absorbs no delay."


def _jobs_note(ctx: BriefingContext) -> str:
    rows = risk_rows(ctx)
    at_risk = [r for r in rows if r.at_risk]
    if not at_risk:
        return "No job is late or incomplete in any scenario."
    notes = []
    for row in sorted(at_risk, key=lambda r: tuple(-x for x in r.worst))[:3]:
        label = max(
            (lbl for lbl, c in row.cells.items() if c.status != "on time"),
            key=lambda lbl: (
                row.cells[lbl].status == "incomplete",
                row.cells[lbl].lateness_hours or 0,
            ),
        )
        notes.append(f"{row.job_id} in {label}: {queue_reason(ctx, label, row.job_id)}.")
    hidden = len(rows) - len(table_rows(ctx, rows))
    tail = f" {hidden} jobs on time everywhere are not listed." if hidden > 0 else ""
    return "Why: " + " ".join(notes) + tail


def _rules_sentence(ctx: BriefingContext) -> str:
    plan = ctx.plan
    if plan is None or not plan.rules:
        return ""
    rules = ", ".join(f"{name} {hours}h" for name, hours in plan.rules.items())
    return (
        f"Total lateness of the day as planned under each dispatch rule tried: {rules}; the "
        f"recommended plan reaches {plan.total_lateness}h."
    )


def _sequence_sentence(ctx: BriefingContext) -> str:
    base = ctx.results[ctx.baseline.label]
    neck = ctx.metrics[ctx.baseline.label].bottleneck_machine_id
    allocs = base.machine_allocations[neck][:6]
    if not allocs:
        return ""
    slots = ", ".join(f"{a.job_id} {a.start_time}-{a.end_time}h" for a in allocs)
    return f"As planned, {neck} runs {slots}."


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
    if spec.down is not None and spec.down.machine_id == neck:
        text += f"; it stops {spec.down.end_time - spec.down.start_time}h"
    waits = waits_of(ctx.results[spec.label], ctx.factory)
    on_neck = {a.step_id for a in ctx.results[spec.label].machine_allocations[neck]}
    queued = [(w, sid) for sid, (_, w) in waits.items() if w > 0 and sid in on_neck]
    if queued:
        w, sid = max(queued, key=lambda t: (t[0], t[1]))
        text += f"; longest queue: {sid} waited {w}h for it"
    return text + "."


# --------------------------------------------------------------------------------------------
# Recommended actions, limitations
# --------------------------------------------------------------------------------------------


def _plan_action(ctx: BriefingContext, plan: Plan) -> str:
    if not plan.improves:
        incomplete = [jid for jid, tl in plan.result.job_timelines.items() if not tl.is_complete]
        late = f"{len(plan.late_jobs)} late"
        if incomplete:  # lateness counts finished jobs only: say which never finish
            late += f" ({id_list(incomplete, 3)} incomplete)"
        return (
            f"**Keep the planned sequence.** {plan.method[:1].upper()}{plan.method[1:]}: "
            f"total lateness {plan.total_lateness}h, {late}."
        )
    steps = " ".join(plan.actions[:2])
    makespan = (
        f", makespan {plan.baseline_makespan}h → {plan.makespan}h"
        if plan.makespan != plan.baseline_makespan
        else ""
    )
    return (
        f"**Recommended plan** ({plan.method}): {steps} Simulated against the planned "
        f"sequence: total lateness {plan.baseline_total_lateness}h → {plan.total_lateness}h, "
        f"late jobs {len(plan.baseline_late_jobs)} → {len(plan.late_jobs)}{makespan}"
        f"{_payers_clause(ctx, plan)}."
    )


def _actions(ctx: BriefingContext) -> list[str]:
    actions: list[str] = []
    if ctx.plan is not None:
        actions.append(_plan_action(ctx, ctx.plan))
    facts = {s.label for s in ctx.scenarios if s.is_fact}
    chosen: list[WhatIfResult] = []
    for w in rank_what_ifs(ctx):  # one per scenario
        if all(c.scenario_label != w.scenario_label for c in chosen):
            chosen.append(w)
    for w in chosen[: ACTIONS_RANGE[1] - 2]:
        if w.scenario_label in facts:
            lead = f"**{w.scenario_label}: {w.title}.**"
        else:
            lead = f"**If {w.scenario_label} happens (a test, not your note): {w.title}.**"
        note = " Its timing is your choice." if w.kind == "move_window" else ""
        actions.append(f"{lead} Simulated: {effects(w, ctx.intent)}.{note}")
    neck = ctx.metrics[ctx.baseline.label].bottleneck_machine_id
    base = ctx.metrics[ctx.baseline.label]
    actions.append(
        f"Guard {neck}: it carries {base.busy_hours_by_machine[neck]}h of work in the baseline "
        f"({pct(base.utilization_by_machine[neck])}); schedule maintenance and changeovers on it "
        "outside those hours."
    )
    if len(actions) < ACTIONS_RANGE[0]:
        actions.append("Re-run this briefing when an order or a machine window changes.")
    return actions[: ACTIONS_RANGE[1]]


def _limitations(ctx: BriefingContext, extra: str) -> str:
    return (
        f"This is a deterministic plan of one {ctx.factory.time_horizon}h horizon: durations are "
        "exact whole hours, material always arrives and operators are always there; machines "
        "stop only where a scenario says so. Each scenario changes one thing at a time, and "
        "setup times, transport between machines and combined disruptions are not modelled. "
        "Use it to see where the day is fragile, and confirm the plan with the floor lead." + extra
    )


def _method_sentence(ctx: BriefingContext) -> str:
    plan = ctx.plan
    if plan is None:
        return ""
    return (
        "The recommended plan comes from dispatch rules and a local search that re-simulates "
        "each candidate sequence; it is the best found within a fixed budget, not a proven "
        "optimum."
    )


def _search_limits_sentence() -> str:
    return (
        "Work orders from the plant set stop windows from their severity and the repair they "
        "name; an actual repair may take longer or shorter."
    )
