"""Agent B: YAML rules, validated; right causes on the demo scenarios; one report per alert."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.agent_files import RuleError, load_rule_file, load_rules
from engine.agents.diagnosis import DiagnosisAgent
from engine.agents.tuning import with_rule_offset
from engine.schemas import FAULTS, Tuning


def test_rules_cover_every_fault() -> None:
    rules = load_rules()
    assert len(rules) >= 10
    assert {r.cause for r in rules} == set(FAULTS)
    assert len({r.id for r in rules}) == len(rules)
    assert all(r.actions for r in rules)


RULE = """rules:
  - id: XX-01
    cause: {cause}
    confidence: 0.9
    title: test
    when:
      - {when}
"""


@pytest.mark.parametrize(
    ("cause", "when", "expected"),
    [
        ("clogging", "res.flw.z <= -1", "rule XX-01: when[0]: unknown feature 'res.flw.z'"),
        ("clogging", "res.flow.z <=", "rule XX-01: when[0]: syntax error"),
        ("clogging", "__import__('os')", "rule XX-01: when[0]: only abs(), min(), max()"),
        ("clogging", "drift.sensor > 1", "is text"),
        ("cavitation", "res.flow.z <= -1", "rule XX-01: cause: unknown cause 'cavitation'"),
    ],
)
def test_bad_rule_names_file_rule_and_field(
    cause: str, when: str, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(RULE.format(cause=cause, when=when))
    with pytest.raises(RuleError) as err:
        load_rule_file(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_bad_rule_file_shapes(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text("rules: [oops")
    with pytest.raises(RuleError, match="not valid YAML"):
        load_rule_file(p)
    p.write_text(RULE.format(cause="clogging", when="res.flow.z < -1").replace("0.9", "1.7"))
    with pytest.raises(RuleError, match=r"rule XX-01: confidence: Input should be less"):
        load_rule_file(p)
    q = tmp_path / "q.yaml"
    q.write_text(RULE.format(cause="clogging", when="res.flow.z < -1"))
    with pytest.raises(RuleError, match="XX-01: id: duplicate"):
        load_rules(files=[q, q])


def test_demo_diagnoses(demo_run) -> None:
    clog_drift = demo_run("sudden_clog_and_drift")
    causes = [(d.root_cause, d.category) for d in clog_drift.diagnoses]
    assert causes == [("clogging", "process"), ("sensor_drift", "instrumentation")]
    clog, drift = clog_drift.diagnoses
    assert clog.ts - clog_drift.active[0].ts <= 120  # decided within two minutes
    assert "CL-01" in clog.matched_rules and clog.actions and clog.evidence
    assert "bearing_temp" in drift.summary and drift.signals[0] == "bearing_temp"
    wear = demo_run("chronic_wear").diagnoses
    assert [d.root_cause for d in wear] == ["bearing_wear"]
    assert wear[0].diagnosis_id.startswith(wear[0].alert_id)


def test_provisional_diagnosis_comes_with_the_alert(demo_run) -> None:
    """Each alert gets a provisional report at its own simulated time (so a ticket can open at
    once) and later one final report; the final one may correct the provisional cause."""
    for name in ("sudden_clog_and_drift", "chronic_wear"):
        run = demo_run(name)
        assert [p.alert_id for p in run.provisional] == [a.alert_id for a in run.active]
        for alert, prov, final in zip(run.active, run.provisional, run.diagnoses, strict=True):
            assert prov.ts == alert.ts and prov.diagnosis_id != final.diagnosis_id
            assert final.alert_id == alert.alert_id and final.ts > prov.ts
            i, j = run.messages.index(alert), run.messages.index(prov)
            assert j == i + 1  # right behind its alert, before any later telemetry


def test_one_report_per_alert_even_when_redelivered(demo_run) -> None:
    run = demo_run("sudden_clog_and_drift")
    agent = DiagnosisAgent(load_rules())
    out = []
    for m in run.messages:
        if m in run.all_diagnoses:
            continue
        out += agent.feed(m)
        if m in run.active:
            out += agent.feed(m)  # QoS 1 redelivery
    out += agent.flush()
    finals = [d for d in out if d.stage == "final"]
    provisional = [d for d in out if d.stage == "provisional"]
    assert [d.alert_id for d in finals] == [a.alert_id for a in run.active]
    assert [d.alert_id for d in provisional] == [a.alert_id for a in run.active]


def test_rule_offsets_from_tuning_change_confidence(demo_run) -> None:
    run = demo_run("sudden_clog_and_drift")
    tuning = with_rule_offset(Tuning(), "CL-01", -0.3)
    tuning = with_rule_offset(tuning, "CL-03", -0.3)
    tuning = with_rule_offset(tuning, "CL-02", -0.3)
    agent = DiagnosisAgent(load_rules(), tuning=tuning)
    out = [
        d
        for m in run.messages
        if m not in run.all_diagnoses
        for d in agent.feed(m)
        if d.stage == "final"
    ]
    assert out[0].root_cause == "clogging"
    assert out[0].confidence < run.diagnoses[0].confidence


def test_rules_validate_cli(tmp_path: Path, capsys) -> None:
    from engine.cli import main

    assert main(["rules", "validate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok  ") and "sensor_drift" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULE.format(cause="clogging", when="res.flow.zz < 1"))
    assert main(["rules", "validate", str(bad)]) == 2
    assert f"{bad}: rule XX-01: when[0]: unknown feature 'res.flow.zz'" in capsys.readouterr().err


def test_thermal_model_is_the_datasheet_lag_exactly() -> None:
    """The inline healthy-bearing model equals ``bearing_equilibrium_c`` through the lag, bit
    for bit (the diagnosis' hot path must not drift from the documented relation)."""
    import numpy as np

    from engine.agents.monitor_physics import ThermalModel
    from engine.plant.pump import DESIGN

    rng = np.random.default_rng(4)
    model, value = ThermalModel(), None
    alpha = 1.0 / (DESIGN.thermal_tau_s + 1.0)
    for ambient, speed in zip(rng.uniform(-5, 45, 3000), rng.uniform(-50, 3300, 3000), strict=True):
        eq = DESIGN.bearing_equilibrium_c(float(ambient), float(speed) / DESIGN.rated_speed_rpm)
        value = eq if value is None else value + (eq - value) * alpha
        assert model.update(float(ambient), float(speed)) == value
