"""Scenario files: the demo three load, bad ones fail with file and field, suites are sound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.plant.scenario import ScenarioError, list_scenarios, load_scenario
from engine.plant.signals import SENSORS, SIGNALS
from engine.plant.suite import generate_suite
from engine.schemas import FAULTS


def test_demo_scenarios_load_by_name_and_path() -> None:
    assert {"normal", "chronic_wear", "sudden_clog_and_drift"} <= set(list_scenarios())
    s = load_scenario("chronic_wear")
    assert s.faults[0].type == "bearing_wear" and s.asset == "pump01"
    assert load_scenario(Path("scenarios/normal.json")).name == "normal"
    assert not load_scenario("normal").faults
    assert len(load_scenario("normal").manoeuvres) >= 5  # normal operation is not flat


BAD = {
    "type": ({"type": "bearing_whine", "onset_s": 10, "severity": 0.5}, "faults[0].type"),
    "severity": ({"type": "clogging", "onset_s": 10, "severity": 1.5}, "faults[0].severity"),
    "onset": ({"type": "clogging", "onset_s": 9000, "severity": 0.5}, "faults[0].onset_s"),
    "sensor": (
        {"type": "sensor_drift", "onset_s": 10, "severity": 0.5, "sensor": "flw"},
        "faults[0].sensor: unknown sensor 'flw'",
    ),
    "missing sensor": (
        {"type": "noise_burst", "onset_s": 10, "severity": 0.5},
        "sensor: required",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_scenario_names_file_and_field(case: str, tmp_path: Path, capsys) -> None:
    fault, expected = BAD[case]
    path = tmp_path / f"bad_{case.replace(' ', '_')}.json"
    path.write_text(json.dumps({"duration_s": 3600, "faults": [fault]}))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(path) in str(err.value) and expected in str(err.value)
    # The CLI: exit code 2, the same message on stderr, good files still reported.
    assert main(["scenario", "validate", "normal", str(path)]) == 2
    out = capsys.readouterr()
    assert expected in out.err and "ok  normal" in out.out


def test_unreadable_scenarios(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"duration_s": 36')
    with pytest.raises(ScenarioError, match="not valid JSON"):
        load_scenario(tmp_path / "x.json")
    with pytest.raises(ScenarioError, match=r"known names: .*chronic_wear"):
        load_scenario("no_such_scenario")


def test_signals_table_is_complete() -> None:
    assert len(SIGNALS) >= 8
    for spec in SIGNALS.values():
        assert spec.unit and spec.lo < spec.hi and spec.label
    assert "valve_cmd" not in SENSORS and "flow" in SENSORS


def test_suite_is_deterministic_and_covers_every_fault() -> None:
    a = generate_suite(30, 5)
    assert [s.model_dump() for s in a] == [s.model_dump() for s in generate_suite(30, 5)]
    assert [s.model_dump() for s in a] != [s.model_dump() for s in generate_suite(30, 6)]
    kinds = {f.type for s in a for f in s.faults}
    assert kinds == set(FAULTS), "every fault the schema names"
    assert any(not s.faults for s in a)
    assert all(len({m.kind for m in s.manoeuvres}) >= 1 for s in a)


def test_suite_makes_every_stuck_valve_observable() -> None:
    """A stuck valve only shows when commanded: each gets a >= 20-point move soon after onset."""
    suite = generate_suite(60, 11)
    stuck = [(s, f) for s in suite for f in s.faults if f.type == "valve_stuck"]
    assert stuck
    for s, f in stuck:
        moves = [m for m in s.manoeuvres if m.note.startswith("scheduled so the stuck valve")]
        assert any(f.onset_s < m.at_s <= f.onset_s + 120 for m in moves), s.name


def test_suite_export(tmp_path: Path) -> None:
    assert main(["scenario", "suite", "4", "--seed", "3", "--out", str(tmp_path)]) == 0
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 4
    assert main(["scenario", "validate", *map(str, files)]) == 0
