"""The alarm KPIs on a synthetic alarm log, each figure worked out by hand."""

from __future__ import annotations

import pytest

from engine.alarms.kpis import Sample, compute, render_markdown

HOUR = 3600.0


def log() -> list[Sample]:
    s = [Sample("pump01/flow", "low", t) for t in (10.0, 20.0, 50.0)]  # period 0: chatters
    s += [Sample("pump02/vibration", "low", 1200.0 + 40 * i, 1230.0 + 40 * i) for i in range(6)]
    s += [Sample("pump03/pressure", "medium", 1210.0 + 100 * i) for i in range(6)]  # period 2
    s += [Sample("pump04/bearing_temp", "high", 2000.0, 2100.0)]  # period 3
    s += [
        Sample("pump05/motor_current", "critical", 2500.0),
        Sample("pump05/flow", "medium", 2550.0),
    ]
    s += [
        Sample("pump06/flow", "low", -90_000.0),  # active for 25 h at the end: standing
        Sample("pump07/flow", "low", -1_000.0),  # active, but not for 24 h
        Sample("pump08/flow", "low", -100_000.0, -50_000.0),  # stood long, but cleared
    ]
    return s


def row(k, name: str):  # type: ignore[no-untyped-def]
    return next(r for r in k.rows if r.name.startswith(name))


def test_each_kpi_by_hand() -> None:
    k = compute(log(), 0.0, HOUR)
    # raised inside the hour: 3 + 6 + 6 + 1 + 2 = 18, in six 10-min periods: [3, 0, 12, 1, 2, 0]
    assert (k.alarms, k.periods, k.hours) == (18, 6, 1.0)
    assert row(k, "Alarms per 10 min").value == pytest.approx(3.0)  # 18 / 6 / 1
    assert row(k, "Alarms per 10 min").meets is False
    assert row(k, "10-min periods with > 1").value == pytest.approx(50.0)  # 3 of 6
    assert row(k, "10-min periods in flood").value == pytest.approx(16.67, abs=0.01)  # 1 of 6
    assert row(k, "Peak").value == 12 and row(k, "Peak").meets is False
    assert row(k, "Standing").value == 1  # pump06 only
    # pump01/flow: 3 raises in 40 s; pump02/vibration every 40 s: never 3 in a minute
    assert row(k, "Chattering").value == 1
    assert [(b.source, b.alarms) for b in k.bad_actors[:3]] == [
        ("pump02/vibration", 6),
        ("pump03/pressure", 6),
        ("pump01/flow", 3),
    ]
    assert k.bad_actors[0].share == pytest.approx(33.33)
    assert len(k.bad_actors) == 6 and row(k, "Top 10").value == pytest.approx(100.0)
    # low 9, medium 7, high 1, critical 1 of 18
    assert k.priority_split == pytest.approx(
        {"low": 50.0, "medium": 38.89, "high": 5.56, "critical": 5.56}
    )
    assert row(k, "Priority split").meets is False  # critical over 1 %


def test_per_operator_and_a_quiet_window_meet_the_targets() -> None:
    k = compute(log(), 0.0, HOUR, operators=3)
    assert row(k, "Alarms per 10 min").value == pytest.approx(1.0)
    assert row(k, "Alarms per 10 min").meets is True
    quiet = compute([Sample("pump01/flow", "low", 100.0)], 0.0, 8 * HOUR)
    assert quiet.periods == 48 and row(quiet, "Alarms per 10 min").value == pytest.approx(
        1 / 48, abs=1e-3
    )
    assert all(r.meets is not False for r in quiet.rows if not r.name.startswith("Top"))
    empty = compute([], 0.0, 0.0)
    assert (empty.alarms, empty.periods, row(empty, "Priority split").meets) == (0, 1, None)


def test_markdown_names_every_kpi_with_its_target() -> None:
    text = render_markdown(compute(log(), 0.0, HOUR))
    for needle in ("| Alarms per 10 min per operator | 3 |", "< 1 % (ISA-18.2)", "**not met**"):
        assert needle in text
    assert "| pump02/vibration | 6 | 33.3 % |" in text


def test_samples_from_a_runs_alert_publications() -> None:
    from alarm_data import alert

    from engine.alarms.kpis import samples_from_alerts

    pubs = [
        alert("pump01-A2", ts=2000.0, signals=("flow",)),  # never cleared
        alert("pump01-A1", status="cleared", severity="critical", ts=1500.0, revision=2),
        alert("pump01-A1", ts=1000.0),
        alert("pump01-A1", severity="high", ts=1100.0, revision=1),
        alert("pump01-A1", ts=1000.0),  # a repeat
        alert("pump02-A1", status="cleared", ts=900.0, revision=1, asset="pump02", onset_ts=800.0),
    ]
    assert samples_from_alerts(pubs, offset=10.0) == [
        Sample("pump02/vibration", "medium", 810.0, 910.0),
        Sample("pump01/vibration", "critical", 1010.0, 1510.0),
        Sample("pump01/flow", "medium", 2010.0, None),
    ]


def test_report_of_a_live_run_has_the_kpi_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two simulator runs in the logs: their alarms on one plant timeline, in the report."""
    from engine.agents.monitor import Monitor
    from engine.plant.scenario import load_scenario
    from engine.plant.simulator import Simulator
    from engine.services.jsonl_log import JsonlLog
    from engine.services.live_report import build_report

    logs = tmp_path / "logs"
    alert_ids = set()
    for _ in range(2):
        sim_log = JsonlLog(logs / "simulator.jsonl", "simulator")
        mon_log = JsonlLog(logs / "monitor.jsonl", "monitor")
        sim_log.event("scenario_loaded", scenarios=["sudden_clog_and_drift"])
        sim, mon = Simulator(load_scenario("sudden_clog_and_drift")), Monitor()
        for _ in range(3200):
            t = sim.step()
            sim_log.message("telemetry", t)
            for a in mon.feed(t):
                mon_log.message("alert", a)
                alert_ids.add(a.alert_id)
        sim_log.close()
        mon_log.close()
    text = build_report(logs)
    assert "## Alarm KPIs (EEMUA 191 / ISA-18.2)" in text
    assert f"{len(alert_ids)} alarm(s) over " in text and len(alert_ids) >= 2
    assert "| Peak alarms in one 10-min period |" in text and "| Chattering sources" in text
