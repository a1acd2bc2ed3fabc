"""Agent B fed a fleet's tick at once (``feed_batch``, the arrays of ``diagnosis_bank``): the same
reports, state and counts as feeding the same samples one by one — also when the bus mangles
some of them (partial, reordered, duplicated, late, repeated within a tick) and when the agent
is restored, forgets a pump or has its state exported mid-run."""

from __future__ import annotations

import math

import numpy as np

from engine.agent_files import load_rules
from engine.agents.diagnosis import BATCH_FROM, DiagnosisAgent
from engine.agents.diagnosis_bank import HistoryBank
from engine.agents.diagnosis_history import AssetHistory
from engine.agents.diagnosis_state import DiagnosisState
from engine.agents.monitor import Monitor
from engine.evaluation.replay import fleet_ticks
from engine.plant.fleet import fleet_scenarios
from engine.plant.scenario import load_scenario
from engine.plant.signals import SIGNAL_ORDER
from engine.schemas import AlertEvent, DiagnosisReport, Telemetry

from .conftest import short

RULES = load_rules()
PUMPS = BATCH_FROM + 4


def _mangle(k: int, tick: list[Telemetry], before: list[Telemetry]) -> list[Telemetry]:
    """Tick ``k`` as a hostile bus may deliver it: now and then a sample missing a signal,
    one with its signals reordered, a duplicate, a late sample from the tick ``before``, two
    samples of one pump in one tick."""
    out = list(tick)
    if k % 97 == 5:
        t = out[3]
        sig = dict(list(t.signals.items())[1:])
        out[3] = t.model_copy(update={"signals": sig})
    if k % 89 == 7:
        t = out[4]
        out[4] = t.model_copy(update={"signals": dict(reversed(list(t.signals.items())))})
    if k % 83 == 11:
        out.append(out[5])  # a duplicate, at the end of the tick
    if k % 79 == 13:
        out.insert(2, out[6])  # the same sample twice in one tick
    if k % 73 == 17:
        out.append(before[9])  # late: the previous tick's sample of a pump after its new one
    return out


Inputs = list[tuple[list[Telemetry], list[AlertEvent]]]


def _inputs() -> Inputs:
    fleet = fleet_scenarios(short(load_scenario("sudden_clog_and_drift"), 2400), PUMPS, seed=3)
    monitor = Monitor(id_prefix="t")
    out: Inputs = []
    before: list[Telemetry] = []
    for k, tick in enumerate(fleet_ticks(fleet, 1.0)):
        out.append((_mangle(k, tick, before), monitor.feed_batch(tick)))
        before = tick
    return out


def _run(inputs: Inputs, batch: bool) -> tuple[list[str], list[str], dict[str, int], list[str]]:
    agent = DiagnosisAgent(RULES)
    reports: list[DiagnosisReport] = []
    states, rejected = [], []
    for k, (tick, alerts) in enumerate(inputs):
        if batch:
            reports += agent.feed_batch(tick)
        else:
            for t in tick:
                reports += agent.feed(t)
        for a in alerts:
            reports += agent.feed(a)
        rejected += [r.reason for r in agent.take_rejections()]
        if k % 400 == 399:  # mid-run: export everything, then carry on from a restored copy
            saved = agent.export_state(tail_s=600).model_dump_json()
            states.append(saved)
            agent = DiagnosisAgent(RULES)
            agent.restore_state(DiagnosisState.model_validate_json(saved))
        if k == 1700:
            reports += agent.forget(tick[7].asset)
    reports += agent.flush()
    states.append(agent.export_state(tail_s=300).model_dump_json())
    return [r.to_json() for r in reports], states, agent.stats, rejected


def test_a_tick_at_once_says_what_sample_by_sample_would() -> None:
    inputs = _inputs()
    one, batch = _run(inputs, False), _run(inputs, True)
    assert batch[0] == one[0]
    assert batch[1] == one[1]
    assert batch[2] == one[2] and batch[3] == one[3]
    rejected = one[3]
    assert any(r.startswith("duplicate") for r in rejected)
    assert any(r.startswith("late") for r in rejected)
    assert sum('"stage":"final"' in r for r in one[0]) >= 10  # faults were diagnosed


def test_the_bank_steps_as_the_per_sample_model() -> None:
    """``HistoryBank.step`` against ``AssetHistory.push`` on random readings, stops and starts
    included (negative drive, speed below the current model's range): rows equal bit for bit."""
    rng = np.random.default_rng(2)
    pumps, ticks = 24, 300
    # flow, suction, discharge, bearing, ambient, vibration, current, power, speed, valve
    lo = np.array([-5.0, 0.5, 3.0, 20.0, 10.0, 0.0, 0.0, 0.0, 2900.0, 0.0])
    hi = np.array([250.0, 2.5, 9.0, 90.0, 40.0, 8.0, 120.0, 100.0, 2960.0, 100.0])
    assert len(lo) == len(SIGNAL_ORDER)
    alone = [AssetHistory(1800.0, 600.0) for _ in range(pumps)]
    banked = [AssetHistory(1800.0, 600.0) for _ in range(pumps)]
    bank: HistoryBank | None = None
    slots: list[int] = []
    for k in range(ticks):
        values = lo + (hi - lo) * rng.random((pumps, len(lo)))
        values[rng.random(pumps) < 0.05, SIGNAL_ORDER.index("speed")] = 0.0  # stops
        values[rng.random(pumps) < 0.05, SIGNAL_ORDER.index("speed")] = 40.0  # below 2 % speed
        msgs = [
            Telemetry(
                msg_id=f"m{k}-{i}",
                asset=f"p{i}",
                seq=k,
                ts=float(k),
                signals=dict(zip(SIGNAL_ORDER, v.tolist(), strict=True)),
            )
            for i, v in enumerate(values)
        ]
        for h, t in zip(alone, msgs, strict=True):
            h.push(t)
        if k < 3:  # set-up: the per-sample path
            for h, t in zip(banked, msgs, strict=True):
                h.push(t)
            continue
        if bank is None:
            bank = HistoryBank(1800.0, 1.0, 30.0)
            slots = [bank.adopt(h) for h in banked]
            for s, h in zip(slots, banked, strict=True):
                bank.sync_in(s, h)
        pos = []
        for h in banked:
            assert h.hist is not None
            pos.append(h.hist.k % h.hist.n)
            h.hist.k += 1
        bank.step(slots, pos, [float(k)] * pumps, [tuple(v) for v in values.tolist()])
    assert bank is not None
    for s, a, b in zip(slots, alone, banked, strict=True):
        bank.sync_out(s, b)
        assert a.hist is not None and b.hist is not None
        assert np.array_equal(a.hist.rows, b.hist.rows) and np.array_equal(a.hist.ts, b.hist.ts)
        assert a.observer is not None and b.observer is not None
        assert a.observer.aligned == b.observer.aligned
        assert (a.observer.q_fluid, a.observer.q_pred, a.observer.thermal.value) == (
            b.observer.q_fluid,
            b.observer.q_pred,
            b.observer.thermal.value,
        )
        assert a.steady is not None and b.steady is not None
        assert (a.steady.steady_for, a.steady.last_speed) == (
            b.steady.steady_for,
            b.steady.last_speed,
        )
        assert a.last_signals == b.last_signals
        assert not any(math.isnan(x) for x in a.last_signals)
