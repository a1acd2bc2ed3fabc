"""The recommended plan: dispatch rules compared on the simulator, then improved by search.

:func:`find_plan` is the whole method, for any scenario:

1. Seeds: the spec's EDD list schedule (the baseline everything is compared with) and one
   non-delay dispatch per rule (``EDD``, ``ATC``, ``MDD``, ``MOD``), all decoded by the
   simulator's placement rule.
2. ``search.improve`` from the best seed, under a budget scaled to the factory's size: on a
   small shop, up to :data:`SEARCH_STARTS` searches (one per :data:`STEPS_PER_START` steps)
   with their own random streams share it and a memo of the sequences tried; the best wins.
3. The winner is rebuilt as a ``SimulationResult`` and checked against every invariant before
   anyone sees it (a broken schedule raises: it is a bug, never a recommendation).

What the planner said shapes the objective: the protected job and the rush job must not be
late (the second key of the score), a job the note lets slip weighs half as much as the others,
so no effort is spent on it at the others' expense.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from engine.factory.dispatch import RULES, dispatch_decoded
from engine.factory.models import FactoryConfig
from engine.factory.results import Plan, ScenarioMetrics, SimulationResult
from engine.factory.scenario import ScenarioIntent, ScenarioSpec
from engine.factory.scheduler import (
    HEURISTIC_NAMES,
    build_result,
    check_result,
    job_sequence,
    planned_sequence,
)
from engine.factory.search import Budget, Memo, Outcome, improve
from engine.factory.shop import (
    Decoded,
    Score,
    Shop,
    compile_shop,
    decode,
    gc_paused,
    job_order_sequence,
    score,
)

SPEC_RULE = "EDD list"
"""The spec's scheduler: whole jobs in EDD order (the baseline)."""
SMALL_SHOP_OPS = 400
"""Up to this many steps, ATC is also tried with k = 1 and 3 (cheap, sometimes better)."""
MIN_SECONDS = 0.05
SEARCH_STARTS = 4
"""Independent searches (each a share of the budget, its own seed) on a small shop."""
STEPS_PER_START = 10
"""One start per this many steps, up to :data:`SEARCH_STARTS` (all four from 40 steps)."""


class PlanError(RuntimeError):
    """The search produced a schedule that breaks an invariant (a bug, reported loudly)."""


@dataclass(frozen=True)
class PlanFound:
    result: SimulationResult
    sequence: tuple[str, ...]
    """Step ids in the order the simulator placed them."""
    method: str
    rule_lateness: dict[str, int]
    """Total lateness (hours) of each seed: the spec's list rule and each dispatch rule."""
    rule_scores: dict[str, Score]
    score: Score
    baseline_score: Score
    evaluations: int
    stopped_by: str
    planned: str
    """The name of the factory's own rule (``EDD list`` unless it names another)."""


def weights_for(shop: Shop, intent: ScenarioIntent | None) -> list[int] | None:
    """0 = must not be late (protected, rush), 1 = may slip, 2 = normal; None without intent."""
    if intent is None:
        return None
    must = {intent.protected_job_id, intent.rush_job_id} - {None}
    flexible = set(intent.flexible_job_ids)
    return [0 if j in must else 1 if j in flexible else 2 for j in shop.job_ids]


def budget_for(shop: Shop, seconds: float) -> Budget:
    """The search is bounded by *work* (steps placed, about 1.6 µs each on a quiet 2-core
    machine, so ``seconds`` there): the same on any machine, so the same plan on any machine.
    The wall-time cap, ten times that, is only a safety net for a badly overloaded machine;
    when it trips the plan's method says so (and the result may then differ)."""
    seconds = max(MIN_SECONDS, seconds)
    work = int(seconds / 0.6e-6)
    return Budget(evaluations=max(4, work // max(1, shop.n_ops)), work=work, seconds=10 * seconds)


def find_plan(
    factory: FactoryConfig,
    spec: ScenarioSpec,
    *,
    intent: ScenarioIntent | None = None,
    seconds: float = 0.6,
    rules: Sequence[str] = RULES,
    seed: int = 0,
    hard: bool = False,
) -> PlanFound:
    """The best plan for ``factory`` under ``spec``: every rule, then the search (see the
    module). ``hard``: the work budget only, no wall-time cap (quality measurements on a
    loaded machine, where the result must not depend on the load)."""
    with gc_paused():
        return _find_plan(factory, spec, intent, seconds, rules, seed, hard)


def _find_plan(
    factory: FactoryConfig,
    spec: ScenarioSpec,
    intent: ScenarioIntent | None,
    seconds: float,
    rules: Sequence[str],
    seed: int,
    hard: bool,
) -> PlanFound:
    shop = compile_shop(factory, spec)
    weights = weights_for(shop, intent)
    planned = HEURISTIC_NAMES[shop.factory.scheduling_heuristic]
    seeds: dict[str, list[int]] = {planned: planned_sequence(shop)}
    if planned != SPEC_RULE:
        index = {jid: j for j, jid in enumerate(shop.job_ids)}
        edd = [
            index[j.id]
            for j in job_sequence(
                shop.factory.model_copy(update={"scheduling_heuristic": "earliest_due_date"})
            )
        ]
        seeds[SPEC_RULE] = job_order_sequence(shop, edd)
    decoded = {name: decode(shop, s) for name, s in seeds.items()}
    for rule in rules:
        if rule in seeds:
            continue
        seeds[rule], decoded[rule] = dispatch_decoded(shop, rule)
        if rule == "ATC" and shop.n_ops <= SMALL_SHOP_OPS:
            for k in (1.0, 3.0):
                alt, alt_decoded = dispatch_decoded(shop, rule, k=k)
                if score(shop, alt_decoded, weights) < score(shop, decoded[rule], weights):
                    seeds[rule], decoded[rule] = alt, alt_decoded
    rule_scores = {name: score(shop, d, weights) for name, d in decoded.items()}
    rule_lateness = {name: _total_lateness(shop, d) for name, d in decoded.items()}
    budget = budget_for(shop, seconds)
    if hard:
        budget = Budget(budget.evaluations, budget.work, 1e9, patience=10**9)
    # Several shorter searches with their own random streams beat one long one: a single
    # walk often settles in one basin (Lawrence 10x5 tardiness: mean 1.08x -> 1.04x the best
    # known at the same total work). A large shop, whose budget buys few schedules, gets one.
    # A tiny shop (the toy's 8 steps) has a neighbourhood one walk covers: the other starts
    # only re-walk it (each ended on the same score in the toy's re-plans).
    starts = min(SEARCH_STARTS, max(1, shop.n_ops // STEPS_PER_START))
    if shop.n_ops > SMALL_SHOP_OPS:
        starts = 1
    share = Budget(
        max(1, budget.evaluations // starts),
        budget.work // starts,
        budget.seconds / starts,
        budget.patience,
    )
    runs: list[Outcome] = []
    memo = Memo()  # the starts share what they learn about the same shop
    for k in range(starts):
        runs.append(
            improve(
                shop,
                seeds,
                weights=weights,
                budget=share,
                seed=seed * starts + k,
                decoded=decoded,
                memo=memo,
            )
        )
        if runs[-1].score[:3] == (0, 0, 0):
            break  # nothing late: no other start can do better on lateness
    outcome = min(runs, key=lambda o: o.score)  # the first of equals: deterministic
    outcome = replace(
        outcome,
        evaluations=sum(o.evaluations for o in runs),
        stopped_by="time" if any(o.stopped_by == "time" for o in runs) else outcome.stopped_by,
    )
    result = build_result(shop, outcome.decoded, factory)
    problems = check_result(result, factory)
    if problems:
        raise PlanError(f"plan for [{spec.label}] broke its invariants: {'; '.join(problems[:3])}")
    searched = outcome.score < rule_scores[outcome.seed_name]
    method = (
        f"iterated local search from {outcome.seed_name} ({outcome.evaluations} schedules tried)"
        if searched
        else f"{outcome.seed_name} dispatch (search found nothing better in "
        f"{outcome.evaluations} schedules)"
    )
    if outcome.seed_name == planned and not searched:
        method = f"the planned {planned} schedule (nothing better in {outcome.evaluations} tried)"
    if outcome.stopped_by == "time":
        method += "; stopped by the time limit"
    return PlanFound(
        result=result,
        sequence=tuple(shop.step_ids[o] for o in outcome.decoded.order),
        method=method,
        rule_lateness=rule_lateness,
        rule_scores=rule_scores,
        score=outcome.score,
        baseline_score=rule_scores[planned],
        evaluations=outcome.evaluations,
        stopped_by=outcome.stopped_by,
        planned=planned,
    )


def _total_lateness(shop: Shop, d: Decoded) -> int:
    total = 0
    for j, ops in enumerate(shop.job_ops):
        ends = [d.ends[o] for o in ops]
        if min(ends) >= 0:
            total += max(0, max(ends) - shop.job_due[j])
    return total


def intent_score(metrics: ScenarioMetrics, intent: ScenarioIntent | None) -> Score:
    """``shop.score`` computed from metrics (same keys, same weights)."""
    must = set() if intent is None else {intent.protected_job_id, intent.rush_job_id} - {None}
    flexible = set() if intent is None else set(intent.flexible_job_ids)
    must_late = weighted = 0
    for jid, late in metrics.lateness_by_job.items():
        if not late:
            continue
        if jid in must:
            must_late += late
        else:
            weighted += late * (1 if jid in flexible else 2)
    return (
        len(metrics.incomplete_job_ids),
        must_late,
        weighted,
        metrics.num_late_jobs,
        metrics.makespan_hours,
    )


def respects_note(
    before: ScenarioMetrics,
    after: ScenarioMetrics,
    intent: ScenarioIntent | None,
    *,
    free_only: bool = False,
) -> bool:
    """Whether a lever is worth offering given the note: it must improve the day for the jobs
    the planner did not let slip; a gain only for a job that may slip counts only when it costs
    nothing (no other job gets later) and the lever itself is free (not a concession)."""
    if intent is None or not intent.flexible_job_ids:
        return intent_score(after, intent) < intent_score(before, intent)
    firm = ScenarioIntent(protected_job_id=intent.protected_job_id, rush_job_id=intent.rush_job_id)
    flexible = set(intent.flexible_job_ids)
    strip = _without(flexible)
    if intent_score(strip(after), firm) < intent_score(strip(before), firm):
        return True
    if free_only:
        return False
    nobody_later = all(
        not _later(after.lateness_by_job[j], before.lateness_by_job[j])
        for j in before.lateness_by_job
        if j not in flexible
    )
    return nobody_later and intent_score(after, intent) < intent_score(before, intent)


def _without(jobs: set[str]) -> Callable[[ScenarioMetrics], ScenarioMetrics]:
    def strip(m: ScenarioMetrics) -> ScenarioMetrics:
        lateness = {j: v for j, v in m.lateness_by_job.items() if j not in jobs}
        late = tuple(j for j in m.late_job_ids if j not in jobs)
        return m.model_copy(
            update={
                "lateness_by_job": lateness,
                "late_job_ids": late,
                "num_late_jobs": len(late),
                "incomplete_job_ids": tuple(j for j in m.incomplete_job_ids if j not in jobs),
                "makespan_hours": 0,
            }
        )

    return strip


def plan_seconds(factory: FactoryConfig, total: float = 0.6) -> float:
    """The baseline plan's search budget: ``total`` on a small factory, less on a large one
    (whose every evaluation is slower), so the whole brief stays interactive at any size."""
    steps = sum(len(j.steps) for j in factory.jobs)
    return max(MIN_SECONDS, min(total, total * 500 / max(1, steps)))


def make_plan(
    factory: FactoryConfig,
    baseline: SimulationResult,
    baseline_metrics: ScenarioMetrics,
    intent: ScenarioIntent | None,
    seconds: float,
) -> Plan:
    """The recommended plan for the day as known (baseline conditions), as the briefing and
    ``brief --json`` show it."""
    from engine.factory.metrics import compute_metrics, total_lateness
    from engine.factory.whatif import job_order_on, order_text

    found = find_plan(factory, baseline.scenario, intent=intent, seconds=seconds)
    better = found.score[:4] < found.baseline_score[:4]  # lateness, not makespan alone
    result = found.result if better else baseline
    metrics = compute_metrics(result, factory) if better else baseline_metrics
    neck = baseline_metrics.bottleneck_machine_id
    actions: list[str] = []
    if better:
        order = job_order_on(result, neck)
        if order != job_order_on(baseline, neck):
            actions.append(f"On {neck} (the bottleneck), run {order_text(order, 10)}.")
        for machine in factory.machines:
            if machine.id == neck or len(actions) >= 3:
                continue
            mine = job_order_on(result, machine.id)
            if mine != job_order_on(baseline, machine.id):
                actions.append(f"On {machine.id}, run {order_text(mine)}.")
        if not actions:
            actions.append("Start each step as the plan's schedule shows (same orders, new times).")
    else:
        actions.append(
            f"Keep the planned {found.planned} sequence: no dispatch rule or re-sequencing "
            "tried does better."
        )
    others = ", ".join(r for r in found.rule_lateness if r != found.planned)
    if better:
        method = found.method
    elif found.baseline_score[:3] == (0, 0, 0):
        method = f"the planned {found.planned} schedule: no job is late, nothing to re-sequence"
    else:
        method = (
            f"no dispatch rule ({others}) or re-sequencing ({found.evaluations} schedules "
            f"tried) beats the planned {found.planned} sequence"
        )
    payers = {
        jid: (baseline_metrics.lateness_by_job[jid], late)
        for jid, late in metrics.lateness_by_job.items()
        if _later(late, baseline_metrics.lateness_by_job[jid])
    }
    return Plan(
        label="Recommended plan",
        method=method,
        actions=tuple(actions),
        result=result.model_copy(update={"scenario_label": "Recommended plan"}),
        total_lateness=total_lateness(metrics),
        late_jobs=metrics.late_job_ids,
        baseline_total_lateness=total_lateness(baseline_metrics),
        baseline_late_jobs=baseline_metrics.late_job_ids,
        baseline_makespan=baseline_metrics.makespan_hours,
        makespan=metrics.makespan_hours,
        rules=found.rule_lateness,
        payers=payers,
        sequence=found.sequence if better else (),
    )


def _later(after: int | None, before: int | None) -> bool:
    if after is None:
        return before is not None
    return before is not None and after > before
