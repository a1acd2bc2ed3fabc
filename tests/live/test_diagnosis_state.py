"""The diagnosis service's saved state is per pump (issue 14): a commit writes the rows of the
pumps its alert and reports concern, not the fleet's; a restart restores every pump's row.

The real service (its real SQLite outbox under a temporary var/) is fed the messages of a real
three-pump replay through its bus handlers (no broker: the bus is not what is tested here; the
crash under a real broker is ``test_attacks.test_pending_finals_survive_a_diagnosis_crash``).
"""

from __future__ import annotations

import sqlite3

import pytest

from engine.agents.diagnosis_state import DiagnosisState
from engine.evaluation.replay import replay_fleet
from engine.plant.fleet import fleet_scenarios
from engine.plant.scenario import load_scenario
from engine.schemas import AlertEvent, DiagnosisReport, PlantMessage, Telemetry
from engine.services import diagnosis as diagnosis_service
from engine.services.diagnosis import DiagnosisService
from engine.services.registry import build_service
from engine.services.settings import Settings

SECONDS = 4200.0


@pytest.fixture(scope="module")
def fleet_run() -> list[PlantMessage]:
    """Three pumps (pump01 clogs at 3,000 s; pumps 2 and 3 get their own faults), the monitor's
    alerts in bus order; no diagnosis (the service makes it)."""
    base = load_scenario("sudden_clog_and_drift")
    base = base.model_copy(
        update={
            "duration_s": SECONDS,
            "faults": [f for f in base.faults if f.onset_s < SECONDS - 600],
            "manoeuvres": [m for m in base.manoeuvres if m.at_s < SECONDS],
        }
    )
    return list(replay_fleet(fleet_scenarios(base, 3, seed=3), diagnose=False))


def _service(var) -> DiagnosisService:
    svc = build_service(Settings.from_env("diagnosis", {"CONTROLROOM_VAR": str(var)}))
    assert isinstance(svc, DiagnosisService)
    return svc


def _feed(svc: DiagnosisService, msg: PlantMessage) -> None:
    if isinstance(msg, Telemetry):
        svc.on_telemetry([msg])
    elif isinstance(msg, AlertEvent):
        svc.on_input(msg)


def _rows(var) -> dict[str, str]:
    with sqlite3.connect(var / "diagnosis" / "diagnosis.db") as conn:
        return dict(conn.execute("SELECT key, value FROM state_rows").fetchall())


def _outbox(var) -> list[DiagnosisReport]:
    with sqlite3.connect(var / "diagnosis" / "diagnosis.db") as conn:
        rows = conn.execute("SELECT payload FROM outbox ORDER BY seq").fetchall()
    return [DiagnosisReport.model_validate_json(p) for (p,) in rows]


def test_a_commit_writes_only_its_pumps_row_and_a_crash_restores_every_pump(
    fleet_run, tmp_path, monkeypatch
) -> None:
    var = tmp_path / "var"
    svc = _service(var)
    msgs = iter(fleet_run)
    alerted: set[str] = set()
    before: dict[str, str] = {}
    for msg in msgs:
        if isinstance(msg, AlertEvent) and msg.status == "active":
            before = _rows(var)
            _feed(svc, msg)
            alerted.add(msg.asset)
            after = _rows(var)
            # the alert's own pump row is written; every other pump's row is left as it was
            assert msg.asset in after
            assert {k: v for k, v in after.items() if k != msg.asset} == {
                k: v for k, v in before.items() if k != msg.asset
            }
            if len(alerted) >= 2 and svc.pending_finals:
                break
        else:
            _feed(svc, msg)
    else:
        pytest.fail("fewer than two pumps alerted with a final pending")
    rows = _rows(var)
    assert set(rows) == alerted, "one row per pump that had an alert; none for quiet pumps"
    for asset, value in rows.items():
        assert [a.asset for a in DiagnosisState.model_validate_json(value).assets] == [asset]
    pending = svc.pending_finals
    waiting = {
        a.alert.alert_id
        for v in rows.values()
        for a in DiagnosisState.model_validate_json(v).assets[0].alerts
        if a.pending is not None
    }
    assert len(waiting) == pending >= 1

    svc.store.close()  # a crash: no save at stop, only what the commits wrote
    restarted = _service(var)
    assert restarted.pending_finals == pending
    assert set(restarted.diagnoser.asset_names()) == alerted
    for msg in msgs:
        _feed(restarted, msg)
    finals = {d.alert_id: d for d in _outbox(var) if d.stage == "final"}
    assert waiting <= set(finals), "every pending final is decided after the restart"
    clog = [finals[a] for a in waiting if finals[a].asset == "pump01"]
    assert all(d.root_cause == "clogging" for d in clog), clog

    restarted.store.commit([], {"pump99": _rows(var)["pump01"]})  # a pump no longer held
    monkeypatch.setattr(diagnosis_service, "SAVE_CHUNK", 1)  # one transaction per pump
    restarted.on_stop()  # a clean stop saves every pump, quiet ones included, with its tail
    assert set(_rows(var)) == {"pump01", "pump02", "pump03"}
    saved = [DiagnosisState.model_validate_json(v).assets[0] for v in _rows(var).values()]
    assert sum(al.pending is not None for a in saved for al in a.alerts) == (
        restarted.pending_finals
    )


def test_an_earlier_versions_whole_state_is_restored_then_kept_as_rows(
    fleet_run, tmp_path, monkeypatch
) -> None:
    var = tmp_path / "var"
    svc = _service(var)
    for msg in fleet_run[: len(fleet_run) // 2]:
        _feed(svc, msg)
    blob = svc.diagnoser.export_state(tail_s=900).model_dump_json()
    svc.store.close()
    with sqlite3.connect(var / "diagnosis" / "diagnosis.db") as conn:
        conn.execute("DELETE FROM state_rows")
        conn.execute("INSERT INTO state (key, value) VALUES ('diagnosis', ?)", (blob,))
    restarted = _service(var)
    assert set(restarted.diagnoser.asset_names()) == {"pump01", "pump02", "pump03"}
    assert set(_rows(var)) == {"pump01", "pump02", "pump03"}
    with sqlite3.connect(var / "diagnosis" / "diagnosis.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM state").fetchone() == (0,)


def test_a_damaged_row_costs_its_pump_only(fleet_run, tmp_path, monkeypatch) -> None:
    var = tmp_path / "var"
    svc = _service(var)
    for msg in fleet_run[: len(fleet_run) // 2]:
        _feed(svc, msg)
    svc.on_stop()
    svc.store.close()
    with sqlite3.connect(var / "diagnosis" / "diagnosis.db") as conn:
        conn.execute("UPDATE state_rows SET value = '{\"version\": 9}' WHERE key = 'pump02'")
    restarted = _service(var)
    assert set(restarted.diagnoser.asset_names()) == {"pump01", "pump03"}


def test_a_full_disk_names_itself_and_the_store_keeps_working(tmp_path):
    """SQLite rolls back by itself when COMMIT finds the disk full; the error a service logs
    must be that one, not "no transaction is active", and later commits still go through."""
    import sqlite3

    from engine.services.outbox_store import OutboxStore

    store = OutboxStore(tmp_path / "out.db", "diagnosis")
    store.commit([], {"pump000": "small"})
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count={pages + 2}")  # a disk with two pages left
    with pytest.raises(sqlite3.OperationalError, match="full"):
        store.commit([], {"pump001": "x" * 100_000})
    assert store.load_rows() == {"pump000": "small"}
    store.commit([], {"pump000": None, "pump002": "fits"})
    assert store.load_rows() == {"pump002": "fits"}
    store.close()
