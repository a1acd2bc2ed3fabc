"""Factory config invariants, scenario/intent validation, and ``controlroom factory``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pydantic
import pytest
from factory_data import job

from engine.cli import main
from engine.factory.config import FactoryConfigError, list_factories, load_factory
from engine.factory.models import FactoryConfig, factory_violations
from engine.factory.scenario import ScenarioSpec
from engine.factory.validation import (
    validate_scenario_intent,
    validate_scenario_spec,
    validate_scenarios,
)

GOOD = {
    "name": "Tiny",
    "time_horizon": 24,
    "machines": [{"id": "A", "name": "Saw"}, {"id": "B", "name": "Mill", "available_start": 2}],
    "jobs": [
        job("P1", "Part one", 12, ("A", 2), ("B", 3)),
        {
            "id": "P2",
            "name": "Part two",
            "due_time": 20,
            "steps": [{"id": "P2-a", "machine_id": "B", "duration_hours": 1, "precedence": []}],
        },
    ],
}


def test_shipped_factories_are_valid() -> None:
    names = list_factories()
    assert {"toy_day", "two_shift", "press_shop"} <= set(names)
    for name in names:
        load_factory(name)


def test_defaults_fill_job_ids_precedence_chain_and_windows() -> None:
    config = FactoryConfig.model_validate(GOOD)
    p1 = config.job("P1")
    assert [s.job_id for s in p1.steps] == ["P1", "P1"]
    assert p1.steps[0].precedence == () and p1.steps[1].precedence == ("P1-a",)
    assert config.machine("A").available_end == 24 and config.machine("B").available_start == 2
    assert config.job("P1").priority == 1 and config.job("P1").release_time == 0


def test_models_are_frozen() -> None:
    config = FactoryConfig.model_validate(GOOD)
    with pytest.raises(pydantic.ValidationError):
        config.time_horizon = 48  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        config.jobs[0].due_time = 1  # type: ignore[misc]


def broken() -> dict:
    data = copy.deepcopy(GOOD)
    data["machines"].append({"id": "A", "name": "Second saw"})  # duplicate machine id
    data["machines"][1]["available_end"] = 30  # past the horizon
    data["jobs"][0]["due_time"] = 30  # past the horizon
    data["jobs"][0]["steps"][1]["machine_id"] = "Z"  # unknown machine
    data["jobs"][0]["steps"][0]["duration_hours"] = 0  # not > 0
    data["jobs"][1]["steps"][0]["precedence"] = ["P1-a"]  # another job's step
    data["jobs"][1]["release_time"] = 20  # not before its due time (20)
    data["jobs"].append(
        {
            "id": "P3",
            "name": "Loop",
            "due_time": 10,
            "steps": [
                {"id": "P3-a", "machine_id": "A", "duration_hours": 1, "precedence": ["P3-b"]},
                {"id": "P3-b", "machine_id": "A", "duration_hours": 1, "precedence": ["P3-a"]},
            ],
        }
    )
    data["jobs"].append(job("P1", "Dup", 5, ("A", 1), colour="red"))
    return data


def test_every_violation_is_reported_with_its_path() -> None:
    found = {(v.path, v.message) for v in factory_violations(broken())}
    paths = {p for p, _ in found}
    for expected in [
        "machines[2].id",
        "machines[1].available_end",
        "jobs[0].due_time",
        "jobs[0].steps[1].machine_id",
        "jobs[0].steps[0].duration_hours",
        "jobs[1].steps[0].precedence",
        "jobs[1].due_time",
        "jobs[2].steps",
        "jobs[3].id",
        "jobs[3].steps[0].id",
        "jobs[3].colour",
    ]:
        assert expected in paths, (expected, sorted(paths))
    messages = " | ".join(m for _, m in found)
    assert "duplicate machine id 'A'" in messages
    assert "unknown machine 'Z'" in messages
    assert "precedence cycle" in messages
    assert "is not a step of job 'P2' (another job)" in messages
    assert "Extra inputs are not permitted" in messages


def test_horizon_bounds_and_long_plans() -> None:
    data = copy.deepcopy(GOOD)
    data["time_horizon"] = 10_000
    data["jobs"][1]["due_time"] = 9_000
    assert FactoryConfig.model_validate(data).time_horizon == 10_000
    data["time_horizon"] = 10_001
    assert any(v.path == "time_horizon" for v in factory_violations(data))


def test_load_factory_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(broken()))
    with pytest.raises(FactoryConfigError) as info:
        load_factory(path)
    assert str(path) in str(info.value) and "jobs[0].steps[1].machine_id" in str(info.value)
    yaml_path = tmp_path / "bad.yaml"
    yaml_path.write_text("name: x\nmachines: [\n")
    with pytest.raises(FactoryConfigError, match="not valid YAML at line"):
        load_factory(yaml_path)
    with pytest.raises(FactoryConfigError, match="cannot read"):
        load_factory(tmp_path / "missing.yaml")


def test_cli_validate_lists_violations_and_exits_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(broken()))
    assert main(["factory", "validate", str(path)]) == 2
    out = capsys.readouterr().out
    assert "INVALID" in out
    assert "  jobs[0].steps[1].machine_id: unknown machine 'Z'" in out
    assert "  machines[2].id: duplicate machine id 'A'" in out
    assert main(["factory", "validate", "toy_day"]) == 0
    assert "OK (Toy day: 3 machines, 3 jobs, 8 steps, horizon 24h)" in capsys.readouterr().out


def test_cli_validate_warns_about_work_that_can_never_fit(tmp_path: Path, capsys) -> None:
    data = copy.deepcopy(GOOD)
    data["machines"][0]["available_end"] = 1  # P1-a needs 2h on A
    path = tmp_path / "doomed.json"
    path.write_text(json.dumps(data))
    assert main(["factory", "validate", str(path)]) == 0
    assert "warning: jobs[0].steps[0]: 2h is longer than A's 1h window" in capsys.readouterr().out


def test_cli_list_and_show(capsys) -> None:
    assert main(["factory", "list"]) == 0
    assert "toy_day" in capsys.readouterr().out
    assert main(["factory", "show", "toy_day"]) == 0
    out = capsys.readouterr().out
    assert "J1 (Widget A, due 11h): M1 2h -> M2 5h -> M3 2h" in out and "Baseline |" in out


# -- scenarios and intent --------------------------------------------------------------------


def scenario(type_: str, label: str, **modifications: object) -> dict[str, object]:
    """A scenario in the wire shape the planner LLM writes (what validate_scenario_spec reads)."""
    return {"type": type_, "label": label, "modifications": modifications}


def test_scenario_spec_accepts_the_spec_name_and_checks_parameters(toy) -> None:
    spec = ScenarioSpec.model_validate(
        scenario(
            "M2_SLOWDOWN", "Slow M1", machine_id="M1", slowdown_factor=1.5, start_time=0, end_time=4
        )
    )
    assert spec.type.value == "MACHINE_SLOWDOWN" and spec.slowdown.machine_id == "M1"
    bad = [
        (scenario("FIRE", "x"), "type"),
        (scenario("BASELINE", "x", a=1), "modifications.a"),
        (
            scenario("RUSH_ARRIVES", "x", rush_job_id="J2", arrival_time=9, due_time=9),
            "arrival_time (9)",
        ),
        (
            scenario(
                "M2_SLOWDOWN", "x", machine_id="M2", slowdown_factor=1.0, start_time=1, end_time=4
            ),
            "slowdown_factor",
        ),
        (
            scenario(
                "M2_SLOWDOWN", "x", machine_id="M2", slowdown_factor=2, start_time=5, end_time=4
            ),
            "start_time (5)",
        ),
        (scenario("BASELINE", "a | b"), "label"),
        (
            scenario("RUSH_ARRIVES", "Rush J9", rush_job_id="J9", arrival_time=1, due_time=9),
            "not a job",
        ),
        (
            scenario("RUSH_ARRIVES", "Rush J2", rush_job_id="J2", arrival_time=1, due_time=30),
            "a rush never loosens a due date (30h is after J2's own 14h)",
        ),
        (
            scenario("RUSH_ARRIVES", "Rush J2", rush_job_id="J2", arrival_time=1, due_time=15),
            "never loosens",
        ),
        (
            scenario("MACHINE_DOWN", "M2 down", machine_id="M2", start_time=20, end_time=30),
            "past the time horizon",
        ),
        (
            scenario("MACHINE_DOWN", "M2 down", machine_id="M2", start_time=5, end_time=5),
            "start_time (5) must be before end_time (5)",
        ),
        (
            scenario(
                "MACHINE_DOWN",
                "M2 down",
                machine_id="M2",
                slowdown_factor=2,
                start_time=1,
                end_time=5,
            ),
            "modifications.slowdown_factor",
        ),
        (
            scenario(
                "M2_SLOWDOWN",
                "M9 slowdown",
                machine_id="M9",
                slowdown_factor=2,
                start_time=1,
                end_time=4,
            ),
            "not a machine",
        ),
        (scenario("BASELINE", "Baseline with M9"), "names M9"),
    ]
    for data, fragment in bad:
        spec, error = validate_scenario_spec(data, toy)
        assert spec is None and fragment in error, (data, error)


def test_validate_scenarios_shape(toy) -> None:
    base = scenario("BASELINE", "Baseline")
    rush = scenario("RUSH_ARRIVES", "Rush J2", rush_job_id="J2", arrival_time=2, due_time=10)
    specs, error = validate_scenarios({"scenarios": [rush, base]}, toy)
    assert error is None and [s.label for s in specs] == ["Baseline", "Rush J2"]  # baseline first
    for data, fragment in [
        ([base], "need 2-3"),
        ([rush, {**rush, "label": "Rush again"}], "no BASELINE"),
        ([base, {**rush, "label": "baseline"}], "unique"),
        ([base, rush, {**rush, "label": "Rush J2 copy"}], "same future"),
        ("not a list", "JSON array"),
    ]:
        specs, error = validate_scenarios(data, toy)
        assert specs is None and fragment in error, (data, error)


def test_validate_intent(toy) -> None:
    intent, error = validate_scenario_intent(
        {"objective": "PROTECT_JOB", "protected_job_id": None, "risk_tolerance": "LOW"}, toy
    )
    assert error is None and intent.objective.value == "BALANCED"  # "unclear" -> BALANCED
    for data, fragment in [
        ({"objective": "PROTECT_JOB", "protected_job_id": "J9"}, "'J9' is not a job"),
        ({"objective": "WIN"}, "objective"),
        ({"risk_tolerance": "EXTREME"}, "risk_tolerance"),
        ({"flexible_job_ids": ["J1", "J7"]}, "'J7' is not a job"),
        ({"watch_machine_id": "M9"}, "'M9' is not a machine"),
        ({"protected_job_id": "J1", "flexible_job_ids": ["J1"]}, "both protected"),
        ({"objective": "BALANCED", "extra": 1}, "extra"),
        (["BALANCED"], "JSON object"),
    ]:
        intent, error = validate_scenario_intent(data, toy)
        assert intent is None and fragment in error, (data, error)


def _laughs(levels: int) -> str:
    """A factory whose one job has 10**levels steps, written in about a kilobyte of aliases."""
    lines = [
        "name: Laughs",
        "time_horizon: 24",
        "machines: [{id: M1, name: A, available_start: 0, available_end: 24}]",
        "x0: &l0 {id: J1-s1, machine_id: M1, duration_hours: 1, precedence: []}",
    ]
    for n in range(1, levels + 1):
        lines.append(f"x{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]")
    lines.append(f"jobs: [{{id: J1, name: W, due_time: 11, steps: *l{levels}}}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text", [_laughs(7), "jobs: &j [*j]\n"], ids=["laughs", "cycle"])
def test_yaml_aliases_cannot_blow_a_small_file_up(tmp_path: Path, text: str) -> None:
    """1 KB of nested aliases stood for 10**7 steps: validation ran for minutes and took
    gigabytes (10**8 never finished); a self-referencing alias never ends. Refused at once."""
    import time

    path = tmp_path / "laughs.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(FactoryConfigError) as err:
        load_factory(path)
    assert time.monotonic() - started < 5.0
    assert "once YAML aliases expand" in str(err.value) and str(path) in str(err.value)
