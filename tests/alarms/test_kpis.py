"""The alarm KPIs on a synthetic alarm log, each figure worked out by hand: the rates on the
alarms annunciated, the alarm system's health on every alarm raised."""

from __future__ import annotations

import pytest

from engine.alarms.kpis import UNKNOWN, Sample, compute, render_markdown

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
    # raised but not annunciated (the lifecycle's raised_as): the operator never saw these
    s += [
        Sample("pump09/flow", "high", 2050.0, raised_as="shelved"),  # period 3
        Sample("pump10/flow", "critical", 1300.0, raised_as="out_of_service"),  # period 2
        Sample("pump11/flow", "low", 3000.0),  # period 5: chatters, its third raise
        Sample("pump11/flow", "low", 3010.0),  # suppressed
        Sample("pump11/flow", "low", 3020.0, raised_as="suppressed"),
        Sample("pump12/flow", "low", -90_000.0, raised_as="shelved"),  # standing, shelved
    ]
    return s


def row(k, name: str):  # type: ignore[no-untyped-def]
    return next(r for r in k.rows if r.name.startswith(name))


def test_each_kpi_by_hand() -> None:
    """Before, every raise counted toward the operator's rate: 23 alarms, 3.83 per 10 min,
    5 periods over 1 (period 3 with the shelved one), a peak of 13 (with the one out of service),
    2 of 23 critical."""
    k = compute(log(), 0.0, HOUR)
    # raised inside the hour: 3 + 6 + 6 + 1 + 2 + 5 = 23; of them 1 shelved, 1 out of service
    # and 1 suppressed: 20 annunciated, in six 10-min periods [3, 0, 12, 1, 2, 2]
    assert (k.alarms, k.annunciated, k.periods, k.hours) == (23, 20, 6, 1.0)
    assert k.withheld == {"out_of_service": 1, "shelved": 1, "suppressed": 1}
    assert k.not_known == 0
    assert k.summary == (
        "20 annunciated of 23 raised; 3 not: 1 out of service, 1 shelved, 1 suppressed"
    )
    assert row(k, "Alarms per 10 min").value == pytest.approx(3.333, abs=1e-3)  # 20 / 6 / 1
    assert row(k, "Alarms per 10 min").meets is False
    assert row(k, "10-min periods with > 1").value == pytest.approx(66.67, abs=0.01)  # 4 of 6
    assert row(k, "10-min periods in flood").value == pytest.approx(16.67, abs=0.01)  # 1 of 6
    assert row(k, "Peak").value == 12 and row(k, "Peak").meets is False
    # raised: pump06 and the shelved pump12, active for 25 h (a shelve does not end standing)
    assert row(k, "Standing").value == 2
    # raised: pump01/flow 3 raises in 40 s, pump11/flow 3 in 20 s (the third suppressed);
    # pump02/vibration every 40 s: never 3 in a minute
    assert row(k, "Chattering").value == 2
    assert [(b.source, b.alarms) for b in k.bad_actors[:5]] == [
        ("pump02/vibration", 6),
        ("pump03/pressure", 6),
        ("pump01/flow", 3),
        ("pump11/flow", 3),
        ("pump04/bearing_temp", 1),
    ]
    assert k.bad_actors[0].share == pytest.approx(26.09)  # 6 of 23 raised
    assert len(k.bad_actors) == 9 and row(k, "Top 10").value == pytest.approx(100.0)
    # annunciated: low 9 + 2, medium 7, high 1, critical 1 of 20 (the shelved high and the
    # critical out of service were not shown)
    assert k.priority_split == pytest.approx(
        {"low": 55.0, "medium": 35.0, "high": 5.0, "critical": 5.0}
    )
    assert row(k, "Priority split").meets is False  # critical over 1 %


def test_presentation_not_known_is_counted_as_raised_but_chattering_is_decided() -> None:
    """From the logs alone (no store record): a shelved raise cannot be told, so it counts as
    annunciated and is said to be not known; a chattering raise is suppressed by the lifecycle's
    own rule on the raise times."""
    samples = [Sample("pump01/flow", "low", t, raised_as=UNKNOWN) for t in (10.0, 20.0, 50.0)]
    samples += [Sample("pump02/flow", "high", 700.0, raised_as=UNKNOWN)]  # shelved, say
    k = compute(samples, 0.0, HOUR)
    assert (k.alarms, k.annunciated, k.not_known) == (4, 3, 3)
    assert k.withheld == {"out_of_service": 0, "shelved": 0, "suppressed": 1}
    assert row(k, "Alarms per 10 min").value == pytest.approx(0.5)  # 3 / 6
    assert k.summary == (
        "3 annunciated of 4 raised; 1 not: 1 suppressed; "
        "shelving not known for 3: counted as raised"
    )
    assert "shelving not known for 3: counted as raised" in render_markdown(k)


def test_per_operator_and_a_quiet_window_meet_the_targets() -> None:
    k = compute(log(), 0.0, HOUR, operators=4)
    assert row(k, "Alarms per 10 min").value == pytest.approx(0.833, abs=1e-3)  # 20 / 6 / 4
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
    for needle in (
        "| Alarms per 10 min per operator | 3.33 |",
        "< 1 % (ISA-18.2)",
        "**not met**",
        "20 annunciated of 23 raised; 3 not: 1 out of service, 1 shelved, 1 suppressed; over 1 h",
    ):
        assert needle in text
    assert "| pump02/vibration | 6 | 26.1 % |" in text


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
        Sample("pump02/vibration", "medium", 810.0, 910.0, UNKNOWN),
        Sample("pump01/vibration", "critical", 1010.0, 1510.0, UNKNOWN),
        Sample("pump01/flow", "medium", 2010.0, None, UNKNOWN),
    ]
    # with the review store's record (None: kept before raised_as was)
    store = {"pump01-A1": "shelved", "pump02-A1": "annunciated", "pump01-A2": None}
    assert [s.raised_as for s in samples_from_alerts(pubs, 10.0, store)] == [
        "annunciated",
        "shelved",
        UNKNOWN,
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
    assert "**Shelving not known: counted as raised.** No review store beside the logs" in text
    n = len(alert_ids)
    assert n >= 2 and f"{n} annunciated of {n} raised" in text
    assert f"shelving not known for {n}: counted as raised" in text
    assert "| Peak alarms in one 10-min period |" in text and "| Chattering sources" in text


def test_a_review_store_beside_the_logs_that_cannot_be_read_leaves_the_report_to_them(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """``controlroom report`` opens the ``controlroom.db`` it finds beside the logs; one it
    cannot open (a colleague who may read the run but not write its store: SQLite's "attempt
    to write a readonly database"; or not a database) failed the whole report, though the logs
    make it. Now the report says shelving is not known, and why; a store named with --store
    is still an error."""
    import pytest

    from engine.services.live_report import LogError, read_presentation

    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "controlroom.db").write_bytes(b"not a database\n" * 100)
    found, said = read_presentation(logs, None)
    assert found == {} and "**Shelving not known: counted as raised.**" in said
    assert "cannot be read" in said and "--store" in said
    with pytest.raises(LogError, match="cannot read the review store"):
        read_presentation(logs, tmp_path / "controlroom.db")
