"""The alarm tables on both databases the store supports (SQLite and a private PostgreSQL),
and the C6 check the ticket path calls inside its own transaction. (Review's tables; they live
here to share this area's database fixtures.)"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "alarms"))
from alarm_data import alert

from engine.alarms import lifecycle as lc
from engine.alarms.store import AlarmStore, create_alarm_tables, suppression_in
from engine.tickets.store import TicketStore

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_lifecycle_persists_and_reads_back(db_target: str | Path) -> None:
    store = AlarmStore(db_target)
    try:
        rec = store.record_alert(alert("pump01-A1", severity="high", ts=1000.0), NOW)
        assert rec.created and rec.alarm is not None and rec.alarm.state == "unacknowledged"
        assert store.record_alert(alert("pump01-A1", severity="high", ts=1000.0), NOW).alarm is None
        store.acknowledge("pump01-A1", "ana", NOW, "on it")
        store.shelve("pump01-A1", "ana", NOW, minutes=10, until_clear=False, note=None)
        with pytest.raises(lc.IllegalTransition):
            store.shelve("pump01-A1", "ben", NOW, minutes=5, until_clear=False, note=None)
        with pytest.raises(lc.AlarmNotFound):
            store.acknowledge("nope", "ana", NOW, None)
        assert store.expire_shelves(NOW + timedelta(minutes=9)) == []
        [expired] = store.expire_shelves(NOW + timedelta(minutes=10))
        assert expired.state == "acknowledged"
        # a second connection (another process) sees the same state and the full history
        again = AlarmStore(db_target)
        a = again.get("pump01-A1")
        assert [e.action for e in a.history] == [
            "raised",
            "acknowledged",
            "shelved",
            "shelve_expired",
        ]
        assert [e.who for e in a.history] == ["agent-monitor", "ana", "ana", "system"]
        assert again.find("unacked") == [] and len(again.find("all")) == 1
        status = again.set_out_of_service("pump01", True, "ana", NOW, "seal leak")
        assert status.out_of_service and status.open_alarms == 1
        assert again.find("out_of_service")[0].alarm_id == "pump01-A1"
        assert [s.asset for s in again.assets()] == ["pump01"]
        # a new run of the simulator (plant time back to 0) is stitched after the previous one
        store.record_alert(alert("pump01-A2", ts=5.0, signals=("flow",)), NOW)
        assert store.get("pump01-A2").plant_raised == 1005.0
        assert store.plant_now() == 1005.0
        # from 1001 on: the second run's alarm, and the first still active (standing)
        assert [x.alarm_id for x in store.timeline(1001.0)] == ["pump01-A1", "pump01-A2"]
        assert store.version() > 0
        again.close_db()
    finally:
        store.close_db()


def test_alarms_read_back_keep_none_of_their_strings(db_target: str | Path) -> None:
    """Every read builds an alarm's strings afresh: none stays in pydantic-core's process-wide
    cache of decoded strings (16,384 slots; by default every short value decoded is kept: with
    a new alarm id, timestamps and history per alert, the review and ticket services filled it
    over their first hour, ~1.3 MiB read as steady growth by the soak)."""
    store = AlarmStore(db_target)
    try:
        store.record_alert(alert("pump04-A1", asset="pump04"), NOW)
        store.acknowledge("pump04-A1", "ana", NOW, "on it")
        store.set_out_of_service("pump04", True, "ana", NOW, "seal leak")
        one, two = store.get("pump04-A1"), store.get("pump04-A1")
        assert one == two
        assert one.alarm_id is not two.alarm_id and one.source is not two.source
        assert one.history[-1].detail is not two.history[-1].detail
        [first], [second] = store.assets(), store.assets()
        assert first.reason == "seal leak" and first.reason is not second.reason
    finally:
        store.close_db()


def test_the_ticket_path_check_inside_a_ticket_transaction(db_target: str | Path) -> None:
    tickets = TicketStore(db_target)
    alarms = AlarmStore(db_target)
    try:
        with tickets.transaction() as tx:
            create_alarm_tables(tx.conn)  # idempotent: what the ticket service runs at start
            assert suppression_in(tx.conn, "pump02", "pump02-A1", signal="flow", now=NOW) is None
        alarms.record_alert(alert("pump02-A1", asset="pump02", signals=("flow",)), NOW)
        alarms.shelve("pump02-A1", "ana", NOW, minutes=30, until_clear=False, note=None)
        with tickets.transaction() as tx:
            why = suppression_in(tx.conn, "pump02", "pump02-A1", now=NOW)
            assert why is not None and why.reason == "shelved"
            assert why.detail.startswith("shelved until 2026-12-01 08:30")
            # the next episode of the same source, not recorded yet: still covered
            later = NOW + timedelta(minutes=5)
            assert suppression_in(tx.conn, "pump02", "pump02-A2", signal="flow", now=later)
            assert (
                suppression_in(tx.conn, "pump02", "pump02-A2", signal="vibration", now=later)
                is None
            )
            # the shelve runs out: tickets may open again
            assert (
                suppression_in(tx.conn, "pump02", "pump02-A1", now=NOW + timedelta(minutes=30))
                is None
            )
            # an alert id recorded on another asset is not this alarm
            assert suppression_in(tx.conn, "pump09", "pump02-A1", now=NOW) is None
        alarms.set_out_of_service("pump03", True, "ana", NOW, "pump removed")
        with tickets.transaction() as tx:
            why = suppression_in(tx.conn, "pump03", "anything")
            assert why == lc.Suppression("out_of_service", "asset out of service: pump removed")
    finally:
        alarms.close_db()
        tickets.close_db()
