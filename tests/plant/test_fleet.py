"""Fleets (C7): scenarios spread over N pumps, replayed in lock-step, evaluated N at a time."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from engine.cli import main
from engine.evaluation.replay import replay, replay_fleet
from engine.evaluation.runner import evaluate
from engine.plant.fleet import FAULT_FREE_EVERY, asset_ids, fault_kind, fleet_scenarios
from engine.plant.scenario import Scenario, load_scenario, save_scenario
from engine.schemas import FAULTS, AlertEvent, DiagnosisReport, PlantMessage

from .conftest import short


def test_fleet_scenarios_spread_the_faults_deterministically() -> None:
    base = load_scenario("chronic_wear")
    fleet = fleet_scenarios(base, 12, seed=5)
    assert fleet == fleet_scenarios(base, 12, seed=5)
    assert fleet != fleet_scenarios(base, 12, seed=6)
    assert [s.asset for s in fleet] == asset_ids(12) == [f"pump{i:02d}" for i in range(1, 13)]
    assert fleet[0] == base.model_copy(update={"seed": 5})  # pump 1 plays the scenario itself
    kinds = [[f.type for f in s.faults] for s in fleet[1:]]
    for k, faults in enumerate(kinds, start=2):
        assert faults == ([] if k % FAULT_FREE_EVERY == 0 else [fault_kind(k)])
    assert {k for ks in kinds for k in ks} == set(FAULTS)
    assert len({s.seed for s in fleet}) == 12  # twelve different units
    for s in fleet:
        assert s.duration_s == base.duration_s and s.ambient_c == base.ambient_c
        assert Scenario.model_validate_json(s.model_dump_json()) == s
        for f in s.faults:
            assert 0 < f.onset_s < s.duration_s
        if any(f.type == "valve_stuck" for f in s.faults):  # observable: the command moves
            onset = s.faults[0].onset_s
            assert any(onset < m.at_s <= onset + 120 and m.kind == "valve" for m in s.manoeuvres)


def test_a_pump_is_the_same_pump_in_any_fleet_size() -> None:
    base = load_scenario("normal")
    small, big = fleet_scenarios(base, 10, seed=1), fleet_scenarios(base, 1000, seed=1)
    assert big[0].asset == "pump0001" and big[-1].asset == "pump1000"
    for a, b in zip(small, big[:10], strict=True):
        assert a.model_copy(update={"asset": "x"}) == b.model_copy(update={"asset": "x"})
    assert fleet_scenarios(base, 1) == [base]
    with pytest.raises(ValueError):
        fleet_scenarios(base, 0)


def _events(msgs: list[PlantMessage]) -> dict[str, list[tuple]]:
    """Per asset, what the agents said (ids left out: their prefix names the run)."""
    out: dict[str, list[tuple]] = defaultdict(list)
    for m in msgs:
        if isinstance(m, AlertEvent):
            out[m.asset].append((m.status, m.ts, m.onset_ts, m.severity, tuple(m.signals)))
        elif isinstance(m, DiagnosisReport):
            out[m.asset].append((m.stage, m.ts, m.root_cause, m.severity, m.confidence))
    return dict(out)


FLEET_S = 4800
"""80 minutes: the fleet generator puts pumps 2-4's faults 24-56 min in at this length, pump 1
plays its clog at 50 min; with seed 25 pump 4's stuck valve frees itself at 65 min, so the fleet
replay holds a clear as well as alerts, escalations and diagnoses (two hours, the length
before, cost 1.5x the CPU)."""


def test_a_fleet_replay_says_what_each_pump_alone_would() -> None:
    """One monitor and one diagnosis agent for four pumps in lock-step: every pump gets exactly
    the alerts and diagnoses it gets alone (per-asset state never leaks)."""
    fleet = fleet_scenarios(short(load_scenario("sudden_clog_and_drift"), FLEET_S), 4, seed=25)
    together = _events(list(replay_fleet(fleet)))
    alone: dict[str, list[tuple]] = {}
    for s in fleet:
        alone |= _events(list(replay(s)))
    assert together == alone
    assert sum(len(v) for v in together.values()) >= 9
    assert len(together) == 4
    for asset, said in together.items():  # every pump alerted, escalated and was diagnosed
        kinds = [e[0] for e in said]
        assert {"active", "provisional", "update", "final"} <= set(kinds), (asset, kinds)
    assert any(e[0] == "cleared" for said in together.values() for e in said)


def test_eval_n_at_a_time_gives_the_same_figures() -> None:
    """The figures of four pumps as one fleet are those of each pump alone — here played in
    the worker pool (``jobs=2``), which must not change them either."""
    fleet = fleet_scenarios(short(load_scenario("sudden_clog_and_drift"), FLEET_S), 4, seed=8)
    one = evaluate(fleet, jobs=2).model_dump()
    four = evaluate(fleet, jobs=1, assets=4).model_dump()
    assert one == four
    assert one["events"] >= 3 and one["recall"] is not None


def test_replay_and_eval_cli_take_assets(tmp_path: Path, capsys) -> None:
    path = tmp_path / "short.json"
    save_scenario(short(load_scenario("sudden_clog_and_drift"), 4200), path)
    out = tmp_path / "run.jsonl"
    assert main(["replay", str(path), "--assets", "3", "--no-telemetry", "--out", str(out)]) == 0
    assert "3 pumps" in capsys.readouterr().err
    topics = {json.loads(x)["topic"] for x in out.read_text().splitlines()}
    assert "alerts/pump01" in topics and "diagnosis/pump01" in topics
    assert all(t.split("/")[1] in {"pump01", "pump02", "pump03"} for t in topics)
    js = tmp_path / "m.json"
    assert main(["eval", str(path), "--assets", "3", "--jobs", "1", "--json", str(js)]) == 0
    figures = json.loads(js.read_text())
    assert figures["scenarios"] == 3 and "3 pumps at a time" in figures["label"]
    assert main(["replay", str(path), "--assets", "0", "--out", str(out)]) == 2
    assert main(["eval", str(path), "--assets", "0"]) == 2
    assert "--assets N needs N >= 1" in capsys.readouterr().err
