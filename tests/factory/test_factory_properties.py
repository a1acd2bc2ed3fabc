"""Property-based tests on random factories: whatever the config, the schedule keeps every
invariant, the metrics stay in range, the greedy rule holds, and the pipeline briefs on it."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.factory import run_pipeline
from engine.factory.briefing import validate_markdown
from engine.factory.intent import intent_offline
from engine.factory.metrics import compute_metrics, step_waits
from engine.factory.models import FactoryConfig
from engine.factory.scenario import BASELINE_SPEC, ScenarioSpec
from engine.factory.scheduler import check_result, simulate, slowed_end
from engine.factory.text_checks import unknown_ids
from engine.factory.validation import validate_scenario_intent


@st.composite
def factories(draw: st.DrawFn, max_jobs: int = 8) -> FactoryConfig:
    horizon = draw(st.integers(8, 60))
    n_machines = draw(st.integers(1, 5))
    machines = []
    for i in range(n_machines):
        start = draw(st.integers(0, horizon // 2))
        end = draw(st.integers(start + 1, horizon))
        machines.append(
            {"id": f"R{i}", "name": f"Machine {i}", "available_start": start, "available_end": end}
        )
    jobs = []
    for j in range(draw(st.integers(1, max_jobs))):
        release = draw(st.integers(0, horizon - 1))
        due = draw(st.integers(release + 1, horizon))
        steps: list[dict[str, Any]] = []
        for k in range(draw(st.integers(1, 4))):
            preds = draw(st.lists(st.integers(0, k - 1), unique=True, max_size=2)) if k else []
            steps.append(
                {
                    "id": f"W{j}-{k}",
                    "machine_id": f"R{draw(st.integers(0, n_machines - 1))}",
                    "duration_hours": draw(st.integers(1, 6)),
                    "precedence": [f"W{j}-{p}" for p in preds],
                }
            )
        jobs.append(
            {
                "id": f"W{j}",
                "name": f"Work order {j}",
                "due_time": due,
                "release_time": release,
                "priority": draw(st.integers(0, 2)),
                "steps": steps,
            }
        )
    heuristic = draw(st.sampled_from(["earliest_due_date", "fcfs"]))
    return FactoryConfig.model_validate(
        {
            "time_horizon": horizon,
            "machines": machines,
            "jobs": jobs,
            "scheduling_heuristic": heuristic,
        }
    )


@st.composite
def factory_and_scenario(draw: st.DrawFn) -> tuple[FactoryConfig, ScenarioSpec]:
    factory = draw(factories())
    kind = draw(st.sampled_from(["BASELINE", "RUSH_ARRIVES", "MACHINE_SLOWDOWN"]))
    h = factory.time_horizon
    if kind == "RUSH_ARRIVES":
        arrival = draw(st.integers(0, h - 1))
        mods = {
            "rush_job_id": draw(st.sampled_from(factory.job_ids)),
            "arrival_time": arrival,
            "due_time": draw(st.integers(arrival + 1, h)),
        }
    elif kind == "MACHINE_SLOWDOWN":
        start = draw(st.integers(0, h - 1))
        mods = {
            "machine_id": draw(st.sampled_from(factory.machine_ids)),
            "slowdown_factor": draw(st.sampled_from([1.25, 1.5, 2.0, 2.5, 3.0])),
            "start_time": start,
            "end_time": draw(st.integers(start + 1, h)),
        }
    else:
        mods = {}
    return factory, ScenarioSpec(type=kind, label="Random", modifications=mods)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(factory_and_scenario())
def test_schedule_keeps_every_invariant(case) -> None:
    factory, spec = case
    result = simulate(factory, spec)
    assert check_result(result, factory) == []
    # Deterministic: the same input gives the same output.
    assert simulate(factory, spec).model_dump() == result.model_dump()


@PROPERTY
@given(factory_and_scenario())
def test_metrics_are_in_range_and_consistent(case) -> None:
    factory, spec = case
    result = simulate(factory, spec)
    m = compute_metrics(result, factory)
    assert all(0.0 <= u <= 1.0 for u in m.utilization_by_machine.values())
    assert set(m.utilization_by_machine) == set(factory.machine_ids)
    assert m.bottleneck_machine_id in factory.machine_ids
    assert m.busy_hours_by_machine[m.bottleneck_machine_id] == max(m.busy_hours_by_machine.values())
    assert m.num_late_jobs == len(m.late_job_ids) <= m.num_jobs == len(factory.jobs)
    for jid, tl in result.job_timelines.items():
        done = m.completion_by_job[jid]
        assert (jid in m.late_job_ids) == (done is None or done > tl.due_time)
    assert m.makespan_hours <= factory.time_horizon


@PROPERTY
@given(factory_and_scenario())
def test_no_step_could_have_started_earlier(case) -> None:
    """The greedy rule: every hour between a step's ready time and its start was blocked (the
    step would overlap work already on the machine, or run past the window), so no scheduled
    step could have started earlier."""
    factory, spec = case
    result = simulate(factory, spec)
    waits = step_waits(result, factory)
    slow = spec.slowdown
    for machine in factory.machines:
        allocs = result.machine_allocations[machine.id]
        for a in allocs:
            ready, _ = waits[a.step_id]
            work = next(
                s.duration_hours for j in factory.jobs for s in j.steps if s.id == a.step_id
            )
            machine_slow = slow if slow is not None and slow.machine_id == machine.id else None
            for t in range(max(ready, machine.available_start), a.start_time):
                end = slowed_end(t, work, machine_slow)
                blocked = end > machine.available_end or any(
                    o.step_id != a.step_id and o.start_time < end and t < o.end_time for o in allocs
                )
                assert blocked, (a.step_id, t)


@PROPERTY
@given(factory_and_scenario(), st.data())
def test_pulling_a_job_first_keeps_the_invariants(case, data) -> None:
    factory, spec = case
    first = data.draw(st.sampled_from(factory.job_ids))
    result = simulate(factory, spec, first=(first,))
    assert check_result(result, factory) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(factories(max_jobs=6), st.sampled_from(["", "rush W0, protect W1", "R0 might fail"]))
def test_pipeline_briefs_any_factory_offline(factory, text) -> None:
    state = run_pipeline(text, factory, "2026-01-05", llm="off")
    assert state.pipeline_completed and state.pipeline_errors == ()
    assert state.briefing_source == "offline"  # the offline briefing passed its own checks
    assert validate_markdown(state.briefing_markdown) == []
    # Only the note's own unknown references are named (once, as ignored); nothing invented.
    assert unknown_ids(state.briefing_markdown, factory) == set(state.ignored_refs)
    assert 2 <= len(state.scenarios) <= 3
    assert state.plan is not None and check_result(state.plan.result, factory) == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gives_a_valid_intent(text) -> None:
    factory = FactoryConfig.model_validate(
        {
            "machines": [{"id": "M1", "name": "Mill"}, {"id": "M2", "name": "Lathe"}],
            "jobs": [
                {
                    "id": "J1",
                    "name": "Widget",
                    "due_time": 10,
                    "steps": [{"id": "J1-a", "machine_id": "M1", "duration_hours": 2}],
                }
            ],
        }
    )
    data, notes = intent_offline(text, factory)
    intent, error = validate_scenario_intent(data, factory)
    assert error is None and intent is not None
    assert all(isinstance(n, str) for n in notes)


def test_baseline_of_every_shipped_factory_is_sound(toy, press, two_shift) -> None:
    for factory in (toy, press, two_shift):
        result = simulate(factory, BASELINE_SPEC)
        assert check_result(result, factory) == []


@PROPERTY
@given(factory_and_scenario(), st.randoms(use_true_random=False))
def test_one_placement_rule_however_it_is_computed(case, rng) -> None:
    """The flat and the blocked free-time decoders place every sequence identically, and the
    fast metrics the levers use equal the metrics of the built result."""
    from engine.factory.metrics import evaluate
    from engine.factory.scheduler import planned_sequence
    from engine.factory.shop import _decode_blocked, _decode_flat, compile_shop

    factory, spec = case
    shop = compile_shop(factory, spec)
    sequence = planned_sequence(shop)
    for _ in range(3):
        a, b = _decode_flat(shop, sequence), _decode_blocked(shop, sequence)
        assert (a.starts, a.ends, a.order) == (b.starts, b.ends, b.order)
        rng.shuffle(sequence)
    assert evaluate(factory, spec) == compute_metrics(simulate(factory, spec), factory)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(factories(max_jobs=6), st.sampled_from(["", "rush W0, protect W1", "R0 is down until 3"]))
def test_the_plan_is_sound_and_never_worse_than_the_planned_day(factory, text) -> None:
    from engine.factory.plan import find_plan

    found = find_plan(factory, BASELINE_SPEC, seconds=0.05)
    assert check_result(found.result, factory) == []
    assert found.score <= found.baseline_score


@PROPERTY
@given(factory_and_scenario(), st.sampled_from(["EDD", "ATC", "MDD", "MOD"]))
def test_a_dispatch_schedule_is_the_decoder_s(case, rule) -> None:
    """The schedule a dispatch rule returns beside its sequence (so the plan need not decode
    the seeds again) is exactly what the decoder makes of that sequence."""
    from engine.factory.dispatch import dispatch_decoded
    from engine.factory.shop import compile_shop, decode

    factory, spec = case
    shop = compile_shop(factory, spec)
    sequence, got = dispatch_decoded(shop, rule)
    want = decode(shop, sequence)
    assert (got.starts, got.ends, got.ready, got.order) == (
        want.starts,
        want.ends,
        want.ready,
        want.order,
    )


@PROPERTY
@given(factory_and_scenario(), st.randoms(use_true_random=False))
def test_no_job_ends_before_it_would_alone(case, rng) -> None:
    """The search's lower bound: whatever the sequence, every job ends no earlier than it does
    alone on the empty shop, and a job that cannot finish alone never finishes."""
    from engine.factory.search import _alone
    from engine.factory.shop import compile_shop, decode, job_completions

    factory, spec = case
    shop = compile_shop(factory, spec)
    alone = job_completions(shop, _alone(shop))
    for _ in range(4):
        queues = [list(ops) for ops in shop.job_ops]  # each job's steps in precedence order
        sequence = []
        while any(queues):
            sequence.append(rng.choice([q for q in queues if q]).pop(0))
        done = job_completions(shop, decode(shop, sequence))
        for a, d in zip(alone, done, strict=True):
            assert (a < 0 and d < 0) or (a >= 0 and (d < 0 or d >= a))


@PROPERTY
@given(
    factory_and_scenario(),
    st.randoms(use_true_random=False),
    st.integers(1, 5),
    st.booleans(),
)
def test_a_resumed_decode_places_as_from_scratch(case, rng, every, flat) -> None:
    """The search decodes a neighbour from the mark its base left before the first changed
    step: the same schedule as placing the whole sequence again, flat or blocked."""
    from engine.factory.shop import _decode, compile_shop

    factory, spec = case
    shop = compile_shop(factory, spec)
    base = [op for ops in shop.job_ops for op in ops]
    rng.shuffle(base)
    marked = _decode(shop, base, flat=flat, every=every)
    for _ in range(3):
        first = rng.randrange(len(base) + 1)
        tail = base[first:]
        rng.shuffle(tail)
        sequence = base[:first] + tail
        got = _decode(shop, sequence, flat=flat, resume=marked, first=first, every=every)
        want = _decode(shop, sequence, flat=flat)
        assert (got.starts, got.ends, got.ready, got.order) == (
            want.starts,
            want.ends,
            want.ready,
            want.order,
        )
        assert all(m.at % every == 0 for m in got.marks)
