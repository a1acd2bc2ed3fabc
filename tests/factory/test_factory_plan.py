"""The plan behind the briefing: the dispatch rules (hand-checked answers), the improvement
search (seeded, bounded, never worse than a rule) and the briefing leading with the plan."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from engine.cli import main
from engine.factory import run_pipeline
from engine.factory.dispatch import RULES
from engine.factory.models import FactoryConfig
from engine.factory.plan import SPEC_RULE, find_plan
from engine.factory.scenario import BASELINE_SPEC
from engine.factory.scheduler import check_result, simulate
from engine.factory.search import Budget, improve
from engine.factory.shop import compile_shop, decode, score

DATE = "2026-11-23"


def factory_of(jobs: dict[str, tuple[int, list[tuple[str, int]]]], horizon: int = 48) -> dict:
    """A factory config from ``{job: (due, [(machine, hours), ...])}`` (a chain per job)."""
    machines = sorted({m for _, route in jobs.values() for m, _ in route})
    return {
        "name": "Plan test",
        "time_horizon": horizon,
        "machines": [{"id": m, "name": f"Machine {m}"} for m in machines],
        "jobs": [
            {
                "id": jid,
                "name": f"Job {jid}",
                "due_time": due,
                "steps": [
                    {"id": f"{jid}-s{k + 1}", "machine_id": m, "duration_hours": p}
                    for k, (m, p) in enumerate(route)
                ],
            }
            for jid, (due, route) in jobs.items()
        ],
    }


# One machine: A (10h, due 5) and B (1h, due 6). EDD runs A first (A 5h late, B 5h late: 10h);
# MDD max(due, t + p), MOD (one step: the same) and ATC (A has no slack, but B's 1h step has
# the higher cost rate) run B first: B on time, A 6h late, 6h in total, the optimum.
SPT_WINS = factory_of({"A": (5, [("M1", 10)]), "B": (6, [("M1", 1)])})

# Non-delay: J2's 5h step on M1 is ready at 0; J1's 1h step on M1 (due 4) only at 3, after its
# 3h on M0. Non-delay EDD starts J2 at 0 (the only ready step) and J1 waits to 5: 2h late. The
# spec's list rule schedules J1 whole first (M0 0-3, M1 3-4), then J2 at 4-9: nobody late.
NON_DELAY = factory_of({"J1": (4, [("M0", 3), ("M1", 1)]), "J2": (20, [("M1", 5)])})


def test_dispatch_rules_hand_checked() -> None:
    factory = FactoryConfig.model_validate(SPT_WINS)
    found = find_plan(factory, BASELINE_SPEC, seconds=0.05)
    assert found.rule_lateness == {SPEC_RULE: 10, "EDD": 10, "ATC": 6, "MDD": 6, "MOD": 6}
    first = {a.job_id for a in found.result.machine_allocations["M1"][:1]}
    assert first == {"B"} and found.score <= min(found.rule_scores.values())


def test_non_delay_edd_starts_the_ready_step_the_list_rule_waits() -> None:
    factory = FactoryConfig.model_validate(NON_DELAY)
    found = find_plan(factory, BASELINE_SPEC, seconds=0.05)
    assert found.rule_lateness[SPEC_RULE] == 0 and found.rule_lateness["EDD"] == 2
    edd = simulate(
        factory.model_copy(update={"scheduling_heuristic": "edd_dispatch"}), BASELINE_SPEC
    )
    assert [(a.job_id, a.start_time) for a in edd.machine_allocations["M1"]] == [
        ("J2", 0),
        ("J1", 5),
    ]
    assert check_result(edd, factory) == []


def random_shop(
    seed: int, jobs: int = 8, machines: int = 4, tightness: float = 1.3
) -> FactoryConfig:
    rng = random.Random(seed)
    spec = {}
    for j in range(jobs):
        order = rng.sample([f"M{m}" for m in range(machines)], machines)
        route = [(m, rng.randint(1, 9)) for m in order]
        spec[f"J{j}"] = (max(1, int(tightness * sum(p for _, p in route))), route)
    horizon = sum(p for _, route in spec.values() for _, p in route)
    return FactoryConfig.model_validate(factory_of(spec, horizon))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_search_is_seeded_bounded_and_never_worse_than_a_rule(seed) -> None:
    factory = random_shop(seed)
    shop = compile_shop(factory, BASELINE_SPEC)
    from engine.factory.dispatch import dispatch
    from engine.factory.scheduler import planned_sequence

    seeds = {SPEC_RULE: planned_sequence(shop), **{r: dispatch(shop, r) for r in RULES}}
    budget = Budget(evaluations=300, seconds=60)
    a = improve(shop, seeds, budget=budget, seed=7)
    b = improve(shop, seeds, budget=budget, seed=7)
    assert a.sequence == b.sequence and a.score == b.score  # seeded: the same plan
    assert a.evaluations <= 300 + len(seeds)
    assert a.score <= min(score(shop, decode(shop, s)) for s in seeds.values())
    assert score(shop, decode(shop, a.sequence)) == a.score  # the simulator agrees
    found = find_plan(factory, BASELINE_SPEC, seconds=0.2)
    assert check_result(found.result, factory) == []
    assert found.score <= min(found.rule_scores.values())


def test_search_beats_every_rule_somewhere() -> None:
    """Over a few tight shops the search finds lateness no rule found (it is a search, not a
    rule picker)."""
    gains = 0
    for seed in range(1, 6):
        found = find_plan(random_shop(seed, jobs=10, machines=5), BASELINE_SPEC, seconds=0.3)
        total = sum(tl.lateness_hours or 0 for tl in found.result.job_timelines.values())
        gains += total < min(found.rule_lateness.values())
    assert gains >= 3


def test_the_briefing_leads_with_the_plan_and_says_who_pays(tmp_path, capsys) -> None:
    factory = FactoryConfig.model_validate(SPT_WINS)
    state = run_pipeline("", factory, DATE, llm="off")
    plan = state.plan
    assert plan is not None and plan.improves
    assert (plan.baseline_total_lateness, plan.total_lateness) == (10, 6)
    assert plan.payers == {"A": (5, 6)}  # A gets later: the briefing must say so
    actions = state.briefing_markdown.split("## Recommended Actions\n")[1]
    first = actions.splitlines()[0]
    assert first.startswith("- **Recommended plan**") and "run B → A" in first
    assert "total lateness 10h → 6h" in first and "who pays: A 5h late → 6h late" in first
    glance = state.briefing_markdown.split("## Today at a Glance\n")[1].split("\n")[0]
    assert "Recommended: the re-sequenced plan" in glance and "10h → 6h" in glance
    # --rule: the planner picks the rule the day runs under; the plan is compared with it.
    path = tmp_path / "spt.yaml"
    path.write_text(yaml.safe_dump(SPT_WINS))
    assert main(["brief", "", "--factory", str(path), "--llm", "off", "--json", "--rule", "mdd",
                 "--date", DATE]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["schedules"]["Baseline"]["machines"]["M1"][0]["job_id"] == "B"
    assert data["plan"]["total_lateness"] == 6 and data["plan"]["rules"]["MDD"] == 6


def test_the_toy_s_re_plan_search_stops_when_its_neighbourhood_is_spent() -> None:
    """The toy's 8 steps get one walk and a stall limit of the order of their insertion moves
    (2·8² + 4·8 = 160 schedules without a gain), not four walks of 360 (1,316 schedules for
    one re-plan): its result is the same, the brief much cheaper."""
    import re

    state = run_pipeline(
        "Rush order for J2 today; protect J3, J1 can slip.", "toy_day", DATE, llm="off"
    )
    replans = [w for w in state.what_ifs if w.kind == "replan"]
    assert replans, "the M2 slowdown has a late job: a re-plan is offered"
    for w in replans:
        tried = re.search(r"\((\d+) schedules tried\)", str(w.params["method"]))
        assert tried is not None, w.params["method"]
        assert int(tried.group(1)) <= 2 * 8 * 8 + 4 * 8 + 20  # one start, stall limit + gains
    assert [w.title for w in replans] == ["Re-plan: on M2 run J3 → J2 → J1"]


def test_the_search_stops_at_its_lower_bound() -> None:
    """When the best plan's lateness equals what each job could do alone, nothing can be
    better: the search stops there instead of spending its stall limit."""
    from engine.factory.search import lower_bound

    # A needs 4h and is due at 3h: 1h late even alone. B has room. The spec's list order (A
    # first) makes A 1h late and B on time: already the bound, so no schedule is tried after
    # the seed (without the bound: a stall limit of 2·4² + 4·4 = 48).
    factory = FactoryConfig.model_validate(
        factory_of({"A": (3, [("M1", 3), ("M2", 1)]), "B": (20, [("M2", 2), ("M1", 2)])})
    )
    shop = compile_shop(factory, BASELINE_SPEC)
    floor = lower_bound(shop)
    assert floor[:4] == (0, 0, 2, 1)  # A 1h late (weight 2), one late job
    seeds = {SPEC_RULE: [0, 1, 2, 3]}
    out = improve(shop, seeds, budget=Budget(evaluations=10_000, seconds=60), seed=1)
    assert out.score[:4] == floor[:4]
    assert out.evaluations == len(seeds) and out.stopped_by == "converged"
