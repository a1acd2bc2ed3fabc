"""A fleet's ticks as arrays (``FleetTick``): the agents read the values directly and skip the
per-sample checks while the same pumps keep coming in order (issue 14). They must say exactly
what they say when given the same ticks as lists of Telemetry — also when the per-sample path
cuts in (a sample fed alone, a pump forgotten, the diagnosis restored from its state) — and the
tick's messages, built after the agents read it, must be the ones the simulator publishes."""

from __future__ import annotations

from engine.agent_files import load_rules
from engine.agents.diagnosis import BATCH_FROM, DiagnosisAgent
from engine.agents.diagnosis_state import DiagnosisState
from engine.agents.monitor import Monitor
from engine.evaluation.replay import fleet_ticks
from engine.plant.fleet import fleet_scenarios
from engine.plant.fleet_simulator import FleetSimulator
from engine.plant.fleet_tick import FleetTick
from engine.plant.scenario import load_scenario

from .conftest import short

RULES = load_rules()
PUMPS = BATCH_FROM + 4


def _run(as_ticks: bool) -> tuple[list[str], list[str], dict[str, int], dict[str, int], int]:
    fleet = fleet_scenarios(short(load_scenario("sudden_clog_and_drift"), 2400), PUMPS, seed=5)
    monitor, agent = Monitor(id_prefix="t"), DiagnosisAgent(RULES)
    said: list[str] = []
    published: list[str] = []
    planned = 0
    for k, tick in enumerate(fleet_ticks(fleet, 1.0)):
        assert isinstance(tick, FleetTick)
        batch = tick if as_ticks else list(tick)
        alerts = monitor.feed_batch(batch)
        reports = agent.feed_batch(batch)
        for a in alerts:
            reports += agent.feed(a)
        said += [m.to_json() for m in (*alerts, *reports)]
        # the agents' private plans: the array path did run (not only the per-sample one)
        planned += monitor._plan is not None and agent._plan is not None
        if k == 900:  # a sample again, alone (a redelivery): the per-sample paths cut in
            said += [m.to_json() for m in (*monitor.feed(tick[3]), *agent.feed(tick[3]))]
        if k == 1500:
            said += [m.to_json() for m in (*monitor.forget("pump05"), *agent.forget("pump05"))]
        if k == 1800:
            saved = agent.export_state(tail_s=600).model_dump_json()
            agent = DiagnosisAgent(RULES)
            agent.restore_state(DiagnosisState.model_validate_json(saved))
        published += [tick[k % len(tick)].to_json(), tick[-1].to_json()]
    said += [r.to_json() for r in agent.flush()]
    return said, published, monitor.counters, agent.stats, planned


def test_fleet_ticks_get_the_decisions_lists_of_telemetry_get() -> None:
    ticks, lists = _run(True), _run(False)
    assert ticks[:4] == lists[:4]
    assert sum('"stage":"final"' in m for m in ticks[0]) >= 5  # faults were diagnosed
    assert ticks[4] > 2000 and lists[4] == 0


def test_a_tick_built_late_is_the_tick_published_then() -> None:
    """Messages built from a ``FleetTick`` after the fleet has stepped on are those ``step``
    gives at that tick (truth included: the simulator's own list moves on)."""
    fleet = fleet_scenarios(short(load_scenario("sudden_clog_and_drift"), 2400), PUMPS, seed=5)
    eager, lazy = FleetSimulator(fleet), FleetSimulator(fleet)
    kept: list[FleetTick] = []
    expected: list[str] = []
    while msgs := eager.step():
        expected += [m.to_json() for m in msgs]
        kept.append(lazy.step_tick())
    assert [m.to_json() for tick in kept for m in tick] == expected
    assert any('"fault":"none"' not in m for m in expected)
