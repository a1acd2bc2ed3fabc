"""The vectorised monitor decides what the per-sample monitor decides (issue 14).

``Monitor.feed_batch`` computes one tick of many assets at once (numpy over assets × channels);
``Monitor.feed`` one sample. Two monitors with the same id key, one fed per sample and one fed
per tick, must publish the same alerts — ids, times, severities, signals, revisions and clears —
on a random evaluation suite (every fault type, overlaps, fault-free pumps) and on a stream made
hostile on purpose: shuffled ticks, gaps, duplicates, late samples, a restarted run, an asset
whose samples repeat within one call, and a non-pump stream mixed into the same calls."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from engine.agents.monitor import Monitor
from engine.evaluation.replay import FLEET_SIMULATOR_FROM, fleet_ticks
from engine.plant.fleet import as_fleet, fleet_scenarios
from engine.plant.scenario import Scenario, load_scenario
from engine.plant.suite import generate_suite
from engine.schemas import AlertEvent, Telemetry

from .conftest import short


def _by_asset(alerts: list[AlertEvent]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for a in alerts:
        out[a.asset].append(a.model_dump_json())
    return dict(out)


def _both(ticks: Iterable[list[Telemetry]]) -> tuple[Monitor, Monitor, list[AlertEvent]]:
    """Feed the same calls to a per-sample and a per-tick monitor; assert equal decisions."""
    alone, batch = Monitor(id_prefix="same"), Monitor(id_prefix="same")
    said_alone: list[AlertEvent] = []
    said_batch: list[AlertEvent] = []
    for tick in ticks:
        for t in tick:
            said_alone += alone.feed(t)
        said_batch += batch.feed_batch(tick)
    assert _by_asset(said_batch) == _by_asset(said_alone)
    assert sorted(a.model_dump_json() for a in said_batch) == sorted(
        a.model_dump_json() for a in said_alone
    )
    assert batch.counters == alone.counters
    assert batch.take_rejections() == alone.take_rejections()
    for asset in {t.asset for t in tick}:
        assert batch.active_alerts(asset) == alone.active_alerts(asset)
    return alone, batch, said_batch


def _compressed(s: Scenario, seconds: float = 4200.0, onset: float = 1500.0) -> Scenario:
    """The scenario's first fault moved to ``onset`` (after the monitor's warm-up), everything
    else shifted with it, cut to ``seconds``: the same events in a third of the samples."""
    shift = max(0.0, min((f.onset_s for f in s.faults), default=onset) - onset)
    return s.model_copy(
        update={
            "duration_s": seconds,
            "faults": [
                f.model_copy(update={"onset_s": f.onset_s - shift, "ramp_s": min(f.ramp_s, 1800)})
                for f in s.faults
                if f.onset_s - shift < seconds - 600
            ],
            "manoeuvres": [
                m.model_copy(update={"at_s": m.at_s - shift})
                for m in s.manoeuvres
                if 900 < m.at_s - shift <= seconds
            ],
        }
    )


def test_a_random_suite_as_one_fleet_gets_the_alerts_of_each_pump_alone() -> None:
    """Sixteen scenarios of a suite (seed not used for tuning) played as one fleet, so the
    fleet simulator and the banks' multi-row path both run."""
    fleet = as_fleet([_compressed(s) for s in generate_suite(FLEET_SIMULATOR_FROM, seed=4141)])
    kinds = {f.type for s in fleet for f in s.faults}
    assert len(kinds) >= 5 and any(not s.faults for s in fleet)
    _, _, alerts = _both(fleet_ticks(fleet, 1.0))
    raised = {a.asset for a in alerts if a.status == "active"}
    assert len(raised) >= len([s for s in fleet if s.faults]) // 2  # the suite does alert


def _kiln(rng: np.random.Generator, i: int, step_at: int) -> Telemetry:
    """A non-pump stream (another channel layout, learned from scratch): a step at ``step_at``."""
    shift = 6.0 if i >= step_at else 0.0
    return Telemetry(
        msg_id=f"k{i}",
        asset="kiln",
        seq=i,
        ts=float(i),
        signals={
            "zone_temp": 800.0 + shift * 3 + float(rng.normal(0, 1.0)),
            "fan_amps": 40.0 + float(rng.normal(0, 0.3)),
            "draft": -1.2 + shift * 0.05 + float(rng.normal(0, 0.02)),
        },
    )


def test_hostile_ticks_get_the_same_decisions_batched_or_not() -> None:
    """Ticks shuffled, 3 % of samples missing, duplicates and late samples, one pump restarted
    from seq 0 (a new run), a pump whose sample repeats within one call (the batch path splits
    into waves), and a kiln — another layout — in the same calls."""
    fleet = fleet_scenarios(short(load_scenario("sudden_clog_and_drift"), 4800), 4, seed=21)
    rng = np.random.default_rng(5)
    history: list[Telemetry] = []
    restart: list[float] = [0, 0.0]

    def hostile() -> Iterable[list[Telemetry]]:
        for i, tick in enumerate(fleet_ticks(fleet, 1.0)):
            if i == 2400:
                p3 = next(t for t in tick if t.asset == "pump03")
                restart[:] = [p3.seq, p3.ts]
            calls = [t for t in tick if rng.random() > 0.03]
            if i >= 2400:  # pump03 starts over (seq and clock from 0, and they go on from
                # there: one stray sample is only a jump): a new run, everything learned dropped
                calls = [
                    t.model_copy(update={"seq": t.seq - restart[0], "ts": t.ts - restart[1]})
                    if t.asset == "pump03"
                    else t
                    for t in calls
                ]
            if history and rng.random() < 0.02:
                calls.append(history[int(rng.integers(len(history)))])  # an old one: late
            if calls and rng.random() < 0.02:
                calls.append(calls[int(rng.integers(len(calls)))])  # a duplicate, same call
            calls.append(_kiln(rng, i, step_at=3600))
            order = rng.permutation(len(calls))
            history[:] = (history + calls)[-40:]
            yield [calls[k] for k in order]

    alone, _, alerts = _both(hostile())
    for kind in ("duplicate", "late", "new_run"):
        assert alone.counters[kind] > 0, kind
    assert any(a.asset == "kiln" and a.status == "active" for a in alerts)
    assert {a.asset for a in alerts} - {"kiln"}
