"""Agent A: quiet through manoeuvres, one alert per episode, causal, generic, blind to truth."""

from __future__ import annotations

import numpy as np

from engine.agents.monitor import Monitor, MonitorConfig
from engine.agents.monitor_physics import ALIGNED, PumpObserver, ThermalModel, loop_flow, residuals
from engine.agents.tuning import with_threshold_scale
from engine.plant.pump import DESIGN
from engine.plant.scenario import FaultSpec, Scenario, load_scenario
from engine.plant.simulator import Simulator
from engine.schemas import AlertEvent, Telemetry, Tuning


def _alerts(messages, monitor: Monitor | None = None) -> list[AlertEvent]:
    monitor = monitor or Monitor(id_prefix="t")
    return [a for m in messages for a in monitor.feed(m)]


def test_normal_shift_with_manoeuvres_raises_nothing(demo_run) -> None:
    run = demo_run("normal")
    kinds = {m.kind for m in load_scenario("normal").manoeuvres}
    assert {"valve", "speed", "demand", "stop", "start"} <= kinds
    assert run.alerts == []


def test_sudden_clog_alerts_within_30_s_and_the_drift_opens_its_own_episode(demo_run) -> None:
    run = demo_run("sudden_clog_and_drift")
    assert len(run.active) == 2
    clog, drift = run.active
    assert 3000 <= clog.ts <= 3030 and "res.flow" in clog.signals
    assert clog.evidence[0].direction == "down" and clog.evidence[0].windows[0].seconds == 60
    assert drift.ts > 6600 and drift.signals == ["res.bearing_temp"]
    assert drift.alert_id != clog.alert_id


def test_gradual_wear_is_caught_early_and_stays_one_alert(demo_run) -> None:
    run = demo_run("chronic_wear")
    assert len(run.active) == 1  # vibration, temperature and power join one episode
    tick = next(t for t in run.telemetry if t.ts == run.active[0].ts)
    assert tick.truth is not None and 0 < tick.truth.severity < 0.15


def test_episode_is_active_then_cleared_once() -> None:
    s = Scenario(
        name="nb",
        duration_s=3600,
        faults=[
            FaultSpec(
                type="noise_burst", onset_s=1500, severity=0.8, sensor="power", duration_s=300
            )
        ],
    )
    alerts = _alerts(Simulator(s, seed=2).run())
    assert [a.status for a in alerts] == ["active", "cleared"]
    assert alerts[0].alert_id == alerts[1].alert_id
    assert alerts[0].evidence[0].direction == "noisy" and alerts[0].signals == ["power"]
    assert 1500 < alerts[0].ts < 1530 and 1800 < alerts[1].ts < 2100


def test_agents_never_read_truth(demo_run) -> None:
    """Replace truth with garbage: identical alerts and diagnoses."""
    from engine.agent_files import load_rules
    from engine.agents.diagnosis import DiagnosisAgent
    from engine.schemas import ActiveFault, Truth

    run = demo_run("sudden_clog_and_drift")
    rng = np.random.default_rng(0)
    garbage = []
    for t in run.telemetry:
        fake = Truth(
            fault="valve_stuck",
            severity=float(rng.random()),
            active=[ActiveFault(fault="noise_burst", severity=1.0, sensor="speed")],
        )
        garbage.append(t.model_copy(update={"truth": fake}))
    monitor, agent = Monitor(id_prefix="r3"), DiagnosisAgent(load_rules())
    alerts, diags = [], []
    for t in garbage:
        new = monitor.feed(t)
        diags += agent.feed(t)
        for a in new:
            alerts.append(a)
            diags += agent.feed(a)
    diags += agent.flush()
    assert [a.to_json() for a in alerts] == [a.to_json() for a in run.alerts]
    assert [d.to_json() for d in diags] == [d.to_json() for d in run.all_diagnoses]


def test_generic_stream_with_foreign_names_is_causal() -> None:
    """A historian export with other names: robust-z level, stuck and noise detectors; the
    decision at sample t does not change when later samples are added."""
    rng = np.random.default_rng(1)
    n = 2400
    temp = 60 + rng.normal(0, 0.3, n)
    temp[1500:] += 5  # a level shift
    press = 3 + rng.normal(0, 0.02, n)
    press[1000:1100] = press[999]  # a frozen transmitter
    msgs = [
        Telemetry(
            msg_id=str(i),
            asset="kiln",
            seq=i,
            ts=float(i),
            signals={"TI-204.PV": float(temp[i]), "PI_17": float(press[i])},
        )
        for i in range(n)
    ]
    full = _alerts(msgs)
    raised = [(a.ts, a.signals, a.evidence[0].detector) for a in full if a.status == "active"]
    assert raised[0][1] == ["PI_17"] and raised[0][2] == "stuck" and 1015 <= raised[0][0] < 1040
    assert any(s == ["TI-204.PV"] and d == "robust-z" and 1500 <= t < 1540 for t, s, d in raised)
    cut = 1520
    prefix = _alerts(msgs[:cut])
    assert [a.to_json() for a in prefix] == [a.to_json() for a in full if a.ts < cut]


def test_tuning_raises_thresholds_per_asset_and_signal() -> None:
    s = Scenario(
        name="c", duration_s=2400, faults=[FaultSpec(type="clogging", onset_s=1500, severity=0.08)]
    )
    msgs = list(Simulator(s, seed=3).run())
    assert any(a.status == "active" for a in _alerts(msgs))
    tuning = with_threshold_scale(Tuning(), "pump01", "res.flow", 3.0, note="test")
    tuned = Monitor(id_prefix="t")
    tuned.apply_tuning(tuning)
    assert _alerts(msgs, tuned) == []
    other = with_threshold_scale(Tuning(), "pump02", "res.flow", 3.0)
    assert _alerts(msgs, Monitor(id_prefix="t", tuning=other))  # another asset: unchanged


def test_thresholds_live_in_monitor_config() -> None:
    s = Scenario(
        name="c", duration_s=2400, faults=[FaultSpec(type="clogging", onset_s=1500, severity=0.08)]
    )
    msgs = list(Simulator(s, seed=3).run())
    cfg = MonitorConfig()
    strict = cfg.with_(floors={**cfg.floors, "res.flow": 20.0})
    assert _alerts(msgs, Monitor(strict, id_prefix="t")) == []


def test_fast_observer_matches_the_generic_relations() -> None:
    """The monitor's inline residuals equal the documented (vectorisable) functions."""
    msgs = list(Simulator(load_scenario("normal").model_copy(update={"duration_s": 3000})).run())
    fast, thermal = PumpObserver(), ThermalModel()
    al: dict[str, float] = {}
    q_fluid = q_pred = 0.0
    a_m, a_f = 0.5, 1.0 / (DESIGN.fluid_tau_s + 1.0)
    worst = 0.0
    for m in msgs:
        s = m.signals
        q_ss = loop_flow(s["suction_pressure"], s["flow"], s["speed"] / 2950.0, s["valve_cmd"])
        if not al:
            al = {k: s[k] for k in ALIGNED}
            q_fluid = q_pred = q_ss
        else:
            for k in ALIGNED:
                al[k] += (s[k] - al[k]) * a_m
            q_fluid += (q_ss - q_fluid) * a_f
            q_pred += (q_fluid - q_pred) * a_m
        slow = residuals(
            {**al, "flow": s["flow"], "bearing_temp": s["bearing_temp"]},
            q_pred,
            thermal.update(s["ambient_temp"], s["speed"]),
        )
        worst = max(worst, float(np.max(np.abs(np.array(fast.update(s)) - np.array(slow)))))
    assert worst < 1e-9
