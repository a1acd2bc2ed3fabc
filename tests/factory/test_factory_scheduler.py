"""Known answers for the scheduler, metrics and what-ifs, worked out by hand.

Toy world (scenarios/factory/toy_day.yaml): J1 M1 2h -> M2 5h -> M3 2h due 11; J2 M1 2h ->
M2 4h -> M3 1h due 14; J3 M2 3h -> M3 2h due 16; all machines 0-24h.
Press shop (scenarios/factory/press_shop.json): windows PRESS 6-22, OVEN 0-24, PACK 8-20, a
parallel branch in ORD-102, a release time on ORD-103.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from factory_data import job

from engine.factory.futures import down_spec
from engine.factory.metrics import compute_metrics
from engine.factory.models import FactoryConfig
from engine.factory.scenario import BASELINE_SPEC, ScenarioIntent, ScenarioSpec, SlowdownMods
from engine.factory.scheduler import check_result, job_sequence, simulate, slowed_end
from engine.factory.whatif import explore

RUSH_J2 = ScenarioSpec(
    type="RUSH_ARRIVES",
    label="Rush J2",
    modifications={"rush_job_id": "J2", "arrival_time": 2, "due_time": 10},
)
SLOW_M2 = ScenarioSpec(
    type="M2_SLOWDOWN",  # the spec's name is accepted as input
    label="M2 slowdown",
    modifications={"machine_id": "M2", "slowdown_factor": 2.0, "start_time": 8, "end_time": 14},
)


def placements(result) -> dict[str, list[tuple[str, int, int]]]:
    return {
        mid: [(a.step_id, a.start_time, a.end_time) for a in allocs]
        for mid, allocs in result.machine_allocations.items()
    }


def test_toy_baseline_known_answer(toy: FactoryConfig) -> None:
    result = simulate(toy, BASELINE_SPEC)
    assert check_result(result, toy) == []
    assert placements(result) == {
        "M1": [("J1-s1", 0, 2), ("J2-s1", 2, 4)],
        "M2": [("J1-s2", 2, 7), ("J2-s2", 7, 11), ("J3-s1", 11, 14)],
        "M3": [("J1-s3", 7, 9), ("J2-s3", 11, 12), ("J3-s2", 14, 16)],
    }
    m = compute_metrics(result, toy)
    assert m.late_job_ids == () and m.makespan_hours == 16
    assert m.completion_by_job == {"J1": 9, "J2": 12, "J3": 16}
    assert m.bottleneck_machine_id == "M2"
    assert m.busy_hours_by_machine == {"M1": 4, "M2": 12, "M3": 5}
    assert m.utilization_by_machine == {"M1": 0.1667, "M2": 0.5, "M3": 0.2083}


def test_toy_rush_fills_the_early_gap_and_makes_j1_late(toy: FactoryConfig) -> None:
    result = simulate(toy, RUSH_J2)
    assert check_result(result, toy) == []
    # J2 (due 10) goes first from its 2h arrival; J1's 5h M2 step no longer fits before it and
    # waits until 8h; J3's 3h M2 step drops into the free 0-3h gap.
    assert placements(result) == {
        "M1": [("J1-s1", 0, 2), ("J2-s1", 2, 4)],
        "M2": [("J3-s1", 0, 3), ("J2-s2", 4, 8), ("J1-s2", 8, 13)],
        "M3": [("J3-s2", 3, 5), ("J2-s3", 8, 9), ("J1-s3", 13, 15)],
    }
    m = compute_metrics(result, toy)
    assert m.late_job_ids == ("J1",)
    assert m.lateness_by_job == {"J1": 4, "J2": 0, "J3": 0}
    assert m.max_lateness_hours == 4 and m.avg_lateness_hours == 1.33 and m.makespan_hours == 15
    assert result.job_timelines["J2"].release_time == 2
    assert result.job_timelines["J2"].due_time == 10


def test_toy_slowdown_stretches_work_inside_the_window(toy: FactoryConfig) -> None:
    result = simulate(toy, SLOW_M2)
    assert result.scenario.type.value == "MACHINE_SLOWDOWN"
    assert check_result(result, toy) == []
    # J2-s2 starts at 7: 1h of work at full speed, then 3h of work at half speed = 6h -> 14h.
    assert placements(result)["M2"] == [("J1-s2", 2, 7), ("J2-s2", 7, 14), ("J3-s1", 14, 17)]
    j2 = result.job_timelines["J2"].steps_timeline[1]
    assert (j2.duration_hours, j2.base_duration_hours) == (7, 4)
    m = compute_metrics(result, toy)
    assert m.lateness_by_job == {"J1": 0, "J2": 1, "J3": 3}
    assert m.makespan_hours == 19 and m.busy_hours_by_machine["M2"] == 15
    assert m.utilization_by_machine["M2"] == 0.625


def test_toy_tuning_gives_three_different_days(toy: FactoryConfig) -> None:
    base, rush, slow = (
        compute_metrics(simulate(toy, s), toy) for s in (BASELINE_SPEC, RUSH_J2, SLOW_M2)
    )
    assert base.num_late_jobs == 0
    assert rush.num_late_jobs >= 1
    assert slow.num_late_jobs >= 1 and slow.makespan_hours != base.makespan_hours


@pytest.mark.parametrize(
    ("start", "work", "window", "factor", "end"),
    [
        (2, 5, (8, 14), 2.0, 7),  # entirely before the window
        (14, 3, (8, 14), 2.0, 17),  # entirely after
        (7, 4, (8, 14), 2.0, 14),  # 1h before + 3h of work at half speed
        (8, 3, (8, 14), 1.5, 13),  # 4.5h exact -> rounds half up
        (13, 1, (8, 14), 2.0, 15),  # 0.5 done in the window, 0.5 after: 1.5h -> 2h
        (0, 20, (8, 14), 2.0, 23),  # spans the window: 6h there do only 3h of work
        (9, 1, (8, 14), 1.5, 11),  # 1.5h -> 2h (halves up)
    ],
)
def test_slowed_end(start, work, window, factor, end) -> None:
    slow = SlowdownMods(
        machine_id="M2", slowdown_factor=factor, start_time=window[0], end_time=window[1]
    )
    assert slowed_end(start, work, slow) == end
    assert slowed_end(start, work, None) == start + work


def test_press_shop_known_answer_with_windows_parallel_branch_and_unscheduled_step(
    press: FactoryConfig,
) -> None:
    result = simulate(press, BASELINE_SPEC)
    assert check_result(result, press) == []
    assert placements(result) == {
        # the press only opens at 6h; ORD-101 (due 12) first, then EDD
        "PRESS": [
            ("ORD-101-press", 6, 8),
            ("ORD-100-press", 8, 11),
            ("ORD-102-press", 11, 15),
            ("ORD-103-press", 15, 20),
        ],
        # ORD-102's cure has no predecessor: it runs at once, in parallel with its pressing
        "OVEN": [("ORD-102-cure", 0, 3), ("ORD-100-cure", 11, 13), ("ORD-103-cure", 20, 24)],
        # packing opens at 8h; ORD-102-pack waits for both branches (15h)
        "PACK": [("ORD-101-pack", 8, 10), ("ORD-100-pack", 13, 14), ("ORD-102-pack", 15, 17)],
    }
    [missing] = result.unscheduled
    assert missing.step_id == "ORD-103-pack"
    assert "ready at 24h" in missing.reason and "closes at 20h" in missing.reason
    tl = result.job_timelines["ORD-103"]
    assert (
        tl.completion_time is None and tl.is_late and tl.unscheduled_step_ids == ("ORD-103-pack",)
    )
    m = compute_metrics(result, press)
    assert m.late_job_ids == ("ORD-103",) and m.incomplete_job_ids == ("ORD-103",)
    assert m.lateness_by_job == {"ORD-100": 0, "ORD-101": 0, "ORD-102": 0, "ORD-103": None}
    assert m.max_lateness_hours == 0 and m.avg_lateness_hours == 0.0
    assert m.makespan_hours == 24
    assert m.busy_hours_by_machine == {"PRESS": 14, "OVEN": 9, "PACK": 5}
    assert m.utilization_by_machine == {"PRESS": 0.875, "OVEN": 0.375, "PACK": 0.4167}
    assert m.bottleneck_machine_id == "PRESS"


def test_press_shop_rush_hand_checked(press: FactoryConfig) -> None:
    rush = ScenarioSpec(
        type="RUSH_ARRIVES",
        label="Rush ORD-103",
        modifications={"rush_job_id": "ORD-103", "arrival_time": 2, "due_time": 11},
    )
    result = simulate(press, rush)
    assert check_result(result, press) == []
    # EDD: ORD-103 (11) -> ORD-101 (12) -> ORD-100 (14) -> ORD-102 (20).
    assert placements(result) == {
        "PRESS": [
            ("ORD-103-press", 6, 11),
            ("ORD-101-press", 11, 13),
            ("ORD-100-press", 13, 16),
            ("ORD-102-press", 16, 20),
        ],
        "OVEN": [("ORD-102-cure", 0, 3), ("ORD-103-cure", 11, 15), ("ORD-100-cure", 16, 18)],
        "PACK": [("ORD-101-pack", 13, 15), ("ORD-103-pack", 15, 18), ("ORD-100-pack", 18, 19)],
    }
    m = compute_metrics(result, press)
    assert m.lateness_by_job == {"ORD-100": 5, "ORD-101": 3, "ORD-102": None, "ORD-103": 7}
    assert m.incomplete_job_ids == ("ORD-102",)
    assert m.unscheduled_step_ids == ("ORD-102-pack",)
    assert m.max_lateness_hours == 7 and m.avg_lateness_hours == 5.0


def _two_jobs(**overrides) -> FactoryConfig:
    base = {
        "machines": [{"id": "A", "name": "Only machine"}],
        "jobs": [job("X1", "First", 10, ("A", 2)), job("X2", "Second", 10, ("A", 2))],
    }
    for path, value in overrides.items():
        index, field = path.split(".")
        base["jobs"][int(index)][field] = value
    return FactoryConfig.model_validate(base)


def test_tie_breaks_priority_then_release_then_config_order() -> None:
    assert [j.id for j in job_sequence(_two_jobs())] == ["X1", "X2"]
    assert [j.id for j in job_sequence(_two_jobs(**{"1.priority": 2}))] == ["X2", "X1"]
    assert [j.id for j in job_sequence(_two_jobs(**{"0.release_time": 1}))] == ["X2", "X1"]
    assert [j.id for j in job_sequence(_two_jobs(**{"1.due_time": 5}))] == ["X2", "X1"]
    assert [j.id for j in job_sequence(_two_jobs(), first=["X2"])] == ["X2", "X1"]


def test_fcfs_sequences_by_release() -> None:
    data = _two_jobs(**{"0.release_time": 3, "1.due_time": 20}).model_dump()
    data["scheduling_heuristic"] = "fcfs"
    data["time_horizon"] = 24
    config = FactoryConfig.model_validate(data)
    assert [j.id for j in job_sequence(config)] == ["X2", "X1"]


def test_step_that_does_not_fit_before_the_window_closes_is_unscheduled_with_its_successors() -> (
    None
):
    config = FactoryConfig.model_validate(
        {
            "time_horizon": 10,
            "machines": [
                {"id": "A", "name": "Mill", "available_end": 6},
                {"id": "B", "name": "Pack"},
            ],
            "jobs": [
                job("K1", "Fills A", 10, ("A", 4)),
                job("K2", "Too long", 10, ("A", 3), ("B", 1)),
            ],
        }
    )
    result = simulate(config, BASELINE_SPEC)
    assert check_result(result, config) == []
    assert [u.step_id for u in result.unscheduled] == ["K2-a", "K2-b"]
    assert result.unscheduled[0].reason == "no free 3h slot on A between 0h and its window end 6h"
    assert "predecessor K2-a did not run" in result.unscheduled[1].reason
    assert result.machine_allocations["B"] == ()
    assert compute_metrics(result, config).incomplete_job_ids == ("K2",)


def test_check_result_catches_a_broken_schedule(toy: FactoryConfig) -> None:
    result = simulate(toy, BASELINE_SPEC)
    m2 = list(result.machine_allocations["M2"])
    m2[1] = m2[1].model_copy(update={"start_time": 10, "end_time": 14})  # overlaps J3-s1
    broken = result.model_copy(
        update={"machine_allocations": {**result.machine_allocations, "M2": tuple(m2)}}
    )
    problems = check_result(broken, toy)
    assert "J2-s2 and J3-s1 overlap on M2" in problems
    assert any("J2-s3 starts before its predecessor J2-s2 ends" in p for p in problems)
    late = result.model_copy(update={"makespan": 99})
    assert any("makespan" in p for p in check_result(late, toy))


def test_levers_on_the_toy_world_are_honest(toy: FactoryConfig) -> None:
    rush_note = RUSH_J2.model_copy(update={"origin": "note"})
    rush_probe = RUSH_J2.model_copy(update={"label": "Rush J2 test"})
    maintenance = down_spec("M2", 4, 10, planned=True).model_copy(update={"origin": "note"})
    outage = down_spec("M2", 4, 10, planned=False, label="M2 out").model_copy(
        update={"origin": "note"}
    )
    specs = [BASELINE_SPEC, rush_note, rush_probe, SLOW_M2, maintenance, outage]
    results = {s.label: simulate(toy, s) for s in specs}
    metrics = {k: compute_metrics(r, toy) for k, r in results.items()}
    found = {(w.scenario_label, w.kind): w for w in explore(toy, specs, metrics, results)}
    # The rush the planner stated: negotiate (never past J2's own 14h), or re-plan.
    relax = found[("Rush J2", "relax_rush_due")]
    assert relax.title == "Agree J2 at 12h instead of 10h" and relax.late_after == 0
    assert relax.params["due_time"] <= toy.job("J2").due_time
    replan = found[("Rush J2", "replan")]
    assert replan.lateness_after == {"J1": 0, "J2": 2, "J3": 0}
    assert replan.title == "Re-plan: on M2 run J1 → J2 → J3"
    # A rush the system made up to test the day is not negotiated away.
    assert ("Rush J2 test", "relax_rush_due") not in found
    # A made-up slowdown is never "moved" (that would only bring back the baseline); planned
    # maintenance is, and an outage is not.
    assert not any(kind == "move_window" and label == "M2 slowdown" for label, kind in found)
    moved = found[("M2 maintenance 4-10h", "move_window")]
    assert moved.title == "Move the M2 maintenance to 14-20h" and moved.late_after == 0
    assert ("M2 out", "move_window") not in found
    assert all(w.scenario_label != "Baseline" for w in found.values())  # nothing late there
    assert all(w.total_lateness_after < w.total_lateness_before for w in found.values())


def test_levers_respect_a_job_that_may_slip(toy: FactoryConfig) -> None:
    """The spec's example: J1 may slip. Saving J1 by making the rush later is a concession
    spent on a job the planner let go: not offered."""
    intent = ScenarioIntent(
        objective="RUSH_FIRST", rush_job_id="J2", protected_job_id="J3", flexible_job_ids=("J1",)
    )
    rush = RUSH_J2.model_copy(update={"origin": "note"})
    specs = [BASELINE_SPEC, rush]
    results = {s.label: simulate(toy, s) for s in specs}
    metrics = {k: compute_metrics(r, toy) for k, r in results.items()}
    assert explore(toy, specs, metrics, results, intent) == []


def test_a_down_window_keeps_the_machine_empty(toy: FactoryConfig) -> None:
    spec = down_spec("M2", 0, 10, planned=False)
    result = simulate(toy, spec)
    assert check_result(result, toy) == []
    assert all(a.start_time >= 10 for a in result.machine_allocations["M2"])
    # No step spans the stop either: a 5h step ready at 2 waits for 10, not 2-4 + 10-13.
    assert placements(result)["M2"][0] == ("J1-s2", 10, 15)
    broken = result.model_copy(
        update={
            "machine_allocations": {
                **result.machine_allocations,
                "M2": (
                    result.machine_allocations["M2"][0].model_copy(
                        update={"start_time": 5, "end_time": 10}
                    ),
                    *result.machine_allocations["M2"][1:],
                ),
            }
        }
    )
    assert any("while M2 is down" in p for p in check_result(broken, toy))


def test_slowdown_factor_fraction_is_exact() -> None:
    # 2.5x as a float is exact, and the arithmetic runs on Fractions: no drift across runs.
    slow = SlowdownMods(machine_id="A", slowdown_factor=2.5, start_time=0, end_time=10)
    assert slowed_end(0, 2, slow) == 5
    assert Fraction(2.5) == Fraction(5, 2)
