"""Agent A on the pump: quiet through manoeuvres, one alert per episode that ends, severity that
follows the fault, causal, blind to truth, tunable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.agents.monitor import Monitor, MonitorConfig
from engine.agents.monitor_intake import CONFIRM
from engine.agents.tuning import with_threshold_scale
from engine.plant.scenario import Datasheet, FaultSpec, Manoeuvre, Scenario, load_scenario
from engine.plant.simulator import Simulator
from engine.plant.suite import generate_suite
from engine.schemas import AlertEvent, Telemetry, Tuning


def _alerts(messages, monitor: Monitor | None = None) -> list[AlertEvent]:
    monitor = monitor or Monitor(id_prefix="t")
    return [a for m in messages for a in monitor.feed(m)]


def _raised(alerts: list[AlertEvent]) -> list[AlertEvent]:
    return [a for a in alerts if a.status == "active" and a.revision == 0]


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
    assert clog.evidence[0].direction == "up"  # the clogged strainer needs more pressure
    assert clog.evidence[0].windows[0].seconds == 60
    assert drift.ts > 6600 and drift.signals == ["res.bearing_temp"]
    assert drift.alert_id != clog.alert_id


def test_gradual_wear_is_caught_early_escalates_and_stays_one_alert(demo_run) -> None:
    run = demo_run("chronic_wear")
    assert len(run.active) == 1  # vibration, temperature and power join one episode
    first = run.active[0]
    tick = next(t for t in run.telemetry if t.ts == first.ts)
    assert tick.truth is not None and 0 < tick.truth.severity < 0.15
    assert first.severity == "low"
    # Each escalation is a new revision of the same alert, severity only rising, ending
    # CRITICAL: the bearing is past the work order's ISO 10816-3 zone C/D limit by then.
    revs = [a for a in run.alerts if a.alert_id == first.alert_id]
    assert [a.revision for a in revs] == list(range(len(revs)))
    order = ["low", "medium", "high", "critical"]
    levels = [order.index(a.severity) for a in revs]
    assert levels == sorted(levels) and levels[-1] == 3 and len(set(levels)) == 4
    critical = next(a for a in revs if a.severity == "critical")
    at = next(t for t in run.telemetry if t.ts == critical.ts)
    vib = [t.signals["vibration"] for t in run.telemetry if critical.ts - 60 < t.ts <= at.ts]
    assert max(vib) > 3.5  # well into zone C when it went critical


def test_critical_past_an_engineering_limit_whatever_the_score() -> None:
    """A bearing past the work order's limits (85 °C, 4.5 mm/s): CRITICAL with the limit named,
    even when the score alone would not make it critical."""
    s = Scenario(
        name="hot",
        duration_s=9000,
        seed=4,
        ambient_c=32.0,
        faults=[FaultSpec(type="bearing_wear", onset_s=2400, ramp_s=1800, severity=0.9)],
    )
    msgs = list(Simulator(s).run())
    cfg = MonitorConfig(severity_bands=(2.0, 4.0, 1e9))
    alerts = _alerts(msgs, Monitor(cfg, id_prefix="t"))
    raised = _raised(alerts)
    assert len(raised) == 1
    revs = [a for a in alerts if a.alert_id == raised[0].alert_id]
    critical = [a for a in revs if a.severity == "critical"]
    assert critical, [a.severity for a in revs]
    last = revs[-1]
    assert any(e.detector == "limit" for e in last.evidence)
    hot = [e for e in last.evidence if e.detector == "limit"]
    assert any(e.signal == "bearing_temp" and e.value > 85.0 for e in hot) or any(
        e.signal == "vibration" and e.value > 4.5 for e in hot
    )


def test_two_faults_in_one_replay_give_two_alarms_each_cleared() -> None:
    s = Scenario(
        name="two",
        duration_s=3 * 3600,
        seed=5,
        manoeuvres=[Manoeuvre(at_s=3600, kind="valve", target_pct=65, ramp_s=30)],
        faults=[
            FaultSpec(
                type="noise_burst", onset_s=1500, severity=0.8, sensor="power", duration_s=300
            ),
            FaultSpec(
                type="sensor_stuck", onset_s=6000, severity=1.0, sensor="flow", duration_s=900
            ),
        ],
    )
    alerts = _alerts(Simulator(s).run())
    raised = _raised(alerts)
    assert len(raised) == 2, [(a.ts, a.signals) for a in alerts]
    for a, (lo, hi) in zip(raised, [(1500, 1530), (6000, 6060)], strict=True):
        assert lo < a.ts < hi
        cleared = [c for c in alerts if c.alert_id == a.alert_id and c.status == "cleared"]
        assert len(cleared) == 1 and cleared[0].clear_reason == "normal"
        assert cleared[0].revision == max(x.revision for x in alerts if x.alert_id == a.alert_id)
    assert raised[0].evidence[0].direction == "noisy" and raised[0].signals[0] == "power"
    assert raised[1].evidence[0].direction == "flat" and "flow" in raised[1].signals


def test_a_new_run_on_the_same_asset_is_watched_from_scratch() -> None:
    """Scenario A (a bearing wearing, alarm open) then scenario B on the same asset, the clock
    back at 0: A's episode clears as "new_run", B is learned afresh and B's clog alarms."""
    a = load_scenario("chronic_wear").model_copy(update={"duration_s": 4 * 3600.0})
    b = load_scenario("sudden_clog_and_drift").model_copy(update={"duration_s": 3600.0 + 600})
    monitor = Monitor(id_prefix="runs")
    first = _alerts(Simulator(a).run(), monitor)
    assert _raised(first) and monitor.active_alerts("pump01")
    second = _alerts(Simulator(b).run(), monitor)
    ended = [x for x in second if x.clear_reason == "new_run"]
    assert [x.alert_id for x in ended] == [_raised(first)[0].alert_id]
    clog = _raised(second)
    assert len(clog) == 1 and 3000 <= clog[0].ts <= 3030 and "res.flow" in clog[0].signals
    assert clog[0].alert_id not in {x.alert_id for x in first}
    assert monitor.counters["new_run"] == 1
    kinds = [r.kind for r in monitor.take_rejections()]
    assert kinds == ["jump"] * (CONFIRM - 1) + ["new_run"]  # believed once confirmed


def test_stale_and_far_future_samples_neither_restart_nor_blind_the_asset() -> None:
    """Issue 12 items 1-2: eight lone samples — replays from half an hour ago and samples
    10**6 steps ahead — used to start the asset over each time (its alerts cleared as
    "new_run", a fresh warm-up): the clog at 3000 s went unalarmed. A jump is believed only
    once CONFIRM samples in a row continue it, so each is rejected as "jump", counted."""
    msgs = list(Simulator(load_scenario("sudden_clog_and_drift")).run())
    fed: list[Telemetry] = []
    for t in msgs:
        fed.append(t)
        if t.ts > 2000 and t.seq % 1500 == 0:
            ahead = t.seq % 3000 == 0
            k = 10**6 if ahead else -1800
            fed.append(t.model_copy(update={"msg_id": f"x{t.seq}", "seq": t.seq + k,
                                            "ts": t.ts + k}))  # fmt: skip
    monitor = Monitor(id_prefix="t")
    alerts = _alerts(fed, monitor)
    assert _alerts(msgs) == alerts, "the same alerts as without the stray samples"
    raised = _raised(alerts)
    assert 3000 <= raised[0].ts <= 3030 and "res.flow" in raised[0].signals
    assert monitor.counters["jump"] == len(fed) - len(msgs) and not monitor.counters["new_run"]
    rejected = monitor.take_rejections()
    assert {r.kind for r in rejected} == {"jump"} and "x3000" in {r.msg_id for r in rejected}


def test_an_outage_gap_is_believed_after_confirm_samples() -> None:
    msgs = list(Simulator(load_scenario("normal").model_copy(update={"duration_s": 5000.0})).run())
    gap = msgs[:1200] + msgs[3000:]  # 30 minutes lost (more than JUMP steps)
    monitor = Monitor(id_prefix="t")
    assert _alerts(gap, monitor) == []
    assert monitor.counters["jump"] == CONFIRM - 1 and monitor.counters["new_run"] == 0
    assert monitor.counters["samples"] == len(gap) - (CONFIRM - 1) - 1  # the first fixes the names


def test_duplicates_and_late_samples_are_dropped_and_counted(demo_run) -> None:
    """Issue 12 item 2: pairwise swaps and repeats on `normal` make no alert; counted."""
    run = demo_run("normal")
    msgs = list(run.telemetry[:7200])
    shuffled: list[Telemetry] = []
    for i in range(0, len(msgs) - 1, 2):
        pair = [msgs[i + 1], msgs[i]] if (i // 2) % 50 == 7 else [msgs[i], msgs[i + 1]]
        shuffled += pair
        if (i // 2) % 97 == 3:
            shuffled.append(msgs[i + 1])  # delivered twice
    monitor = Monitor(id_prefix="t")
    assert _alerts(shuffled, monitor) == []
    assert monitor.counters["late"] >= 60 and monitor.counters["duplicate"] >= 30
    assert monitor.counters["new_run"] == 0


def test_a_value_past_anything_learned_never_poisons_the_monitor() -> None:
    """Issue 12 item 1: one absurd-but-schema-valid value (a generic stream; a pump's own
    signals are already bounded by the schema) is treated as missing, reported, and the
    monitor still detects the next fault."""
    rng = np.random.default_rng(7)
    n = 3000
    temp = 60 + rng.normal(0, 0.3, n)
    temp[2200:] += 4.0
    msgs = []
    for i in range(n):
        value = 9.9e11 if i == 1500 else float(temp[i])
        msgs.append(
            Telemetry(
                msg_id=str(i),
                asset="kiln",
                seq=i,
                ts=float(i),
                signals={"TI-1": value, "FI-2": float(10 + rng.normal(0, 0.1))},
            )
        )
    monitor = Monitor(MonitorConfig(warmup_n=600), id_prefix="t")
    alerts = _alerts(msgs, monitor)
    raised = _raised(alerts)
    assert len(raised) == 1 and 2200 <= raised[0].ts < 2240 and raised[0].signals[0] == "TI-1"
    rejected = monitor.take_rejections()
    assert [(r.kind, r.seq) for r in rejected] == [("value", 1500)]
    assert "TI-1" in rejected[0].reason


@pytest.mark.parametrize("at,value", [(5, 9.9e11), (300, 1e6), (300, -9.9e11)])
def test_an_absurd_value_in_the_warm_up_is_screened_out_not_learned(at: int, value: float) -> None:
    """Issue 12 item 1, during the warm-up: one absurd value (schema-valid) used to stretch
    the learned range and baselines so far that the later fault never alarmed. It is dropped
    from the warm-up, rejected by name, and the fault is detected as without it."""
    rng = np.random.default_rng(7)
    temp = 60 + rng.normal(0, 0.3, 3000)
    temp[2200:] += 4.0
    msgs = [
        Telemetry(
            msg_id=f"m{i}",
            asset="kiln",
            seq=i,
            ts=float(i),
            signals={
                "TI-1": value if i == at else float(temp[i]),
                "FI-2": float(10 + rng.normal(0, 0.1)),
            },
        )
        for i in range(3000)
    ]
    monitor = Monitor(MonitorConfig(warmup_n=600), id_prefix="t")
    raised = _raised(_alerts(msgs, monitor))
    assert len(raised) == 1 and 2200 <= raised[0].ts < 2240 and raised[0].signals[0] == "TI-1"
    (rejected,) = monitor.take_rejections()
    assert (rejected.kind, rejected.msg_id, rejected.seq) == ("value", f"m{at}", at)
    assert "TI-1" in rejected.reason and "warm-up" in rejected.reason
    assert monitor.counters["value"] == 1


def test_perturbed_pumps_are_learned_not_read_from_a_datasheet() -> None:
    """Pump models 15 % off the nominal datasheet: manoeuvres stay quiet, faults alarm."""
    sheet = Datasheet(head=0.86, flow=1.14, efficiency=0.88, thermal_tau=1.15, bearing_rise=0.85)
    quiet = load_scenario("normal").model_copy(update={"datasheet": sheet})
    assert _alerts(Simulator(quiet).run()) == []
    clog = load_scenario("sudden_clog_and_drift").model_copy(
        update={"datasheet": sheet.model_copy(update={"head": 1.14, "flow": 0.87})}
    )
    raised = _raised(_alerts(Simulator(clog).run()))
    assert len(raised) == 2 and 3000 <= raised[0].ts <= 3030


def test_reduced_perturbed_suite() -> None:
    suite = generate_suite(4, 11, perturbed=True)
    assert all(s.datasheet is not None for s in suite)
    for s in suite:
        alerts = _raised(_alerts(Simulator(s).run()))
        windows = [(f.onset_s, f.end_s + 300) for f in s.faults]
        assert all(any(lo <= a.ts <= hi for lo, hi in windows) for a in alerts), s.name
        for lo, _hi in windows:
            assert any(a.ts >= lo for a in alerts), s.name


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
    seed = run.telemetry[0].msg_id.split("-s")[1].split("-")[0]
    monitor, agent = Monitor(id_prefix=f"r{seed}"), DiagnosisAgent(load_rules())
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


def test_alert_ids_name_the_asset_and_cannot_be_guessed() -> None:
    s = Scenario(
        name="c", duration_s=2400, faults=[FaultSpec(type="clogging", onset_s=1500, severity=0.3)]
    )
    msgs = list(Simulator(s, seed=3).run())
    same1 = _raised(_alerts(msgs, Monitor(id_prefix="replay-3")))
    same2 = _raised(_alerts(msgs, Monitor(id_prefix="replay-3")))
    live1 = _raised(_alerts(msgs, Monitor()))
    live2 = _raised(_alerts(msgs, Monitor()))
    assert [a.alert_id for a in same1] == [a.alert_id for a in same2]  # reproducible replay
    assert live1[0].alert_id != live2[0].alert_id  # a random key per live monitor
    aid = live1[0].alert_id
    assert aid.startswith("pump01-A0001-") and len(aid.rsplit("-", 1)[1]) == 12


def test_tuning_raises_thresholds_per_asset_and_signal() -> None:
    s = Scenario(
        name="c", duration_s=2400, faults=[FaultSpec(type="clogging", onset_s=1500, severity=0.12)]
    )
    msgs = list(Simulator(s, seed=3).run())
    assert _raised(_alerts(msgs))
    tuning = with_threshold_scale(Tuning(), "pump01", "res.flow", 3.0, note="test")
    tuned = Monitor(id_prefix="t")
    tuned.apply_tuning(tuning)
    assert _alerts(msgs, tuned) == []
    other = with_threshold_scale(Tuning(), "pump02", "res.flow", 3.0)
    assert _raised(_alerts(msgs, Monitor(id_prefix="t", tuning=other)))  # another asset


def test_thresholds_live_in_monitor_config() -> None:
    s = Scenario(
        name="c", duration_s=2400, faults=[FaultSpec(type="clogging", onset_s=1500, severity=0.12)]
    )
    msgs = list(Simulator(s, seed=3).run())
    cfg = MonitorConfig()
    strict = cfg.with_(pump_floors={**cfg.pump_floors, "res.flow": 40.0})
    assert _alerts(msgs, Monitor(strict, id_prefix="t")) == []


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # "engine.x.SomeName": a name imported from a module
        return False


def test_the_monitor_never_imports_the_simulators_datasheet() -> None:
    """Issue 9: the pump path learns its pump. Every module the monitor imports (transitively,
    within ``engine``) is read; none is the simulator's pump model or reads ``DESIGN``."""
    import ast
    import importlib.util

    seen: set[str] = set()
    todo = ["engine.agents.monitor"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                assert "DESIGN" not in {a.name for a in node.names}, (name, node.module)
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            todo += [m for m in mods if m.startswith("engine.") and _is_module(m)]
    assert "engine.agents.monitor_pump" in seen  # the walk did follow the imports
    datasheet = {"engine.plant.pump", "engine.plant.simulator", "engine.agents.monitor_physics"}
    assert not datasheet & seen
