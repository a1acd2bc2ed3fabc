"""A long-lived ticket's stored document stays bounded (issue 12): its ``diagnosis_ids`` and
``alert_ids`` keep a tail there and live whole in ``ticket_ids`` rows; the full view returns
them all, and the lifecycle decides on the tail as it did on the whole lists. Both databases."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tickets_data import report

from engine.tickets.id_lists import DOC_LIST_LIMIT
from engine.tickets.store import TicketStore

LONG = DOC_LIST_LIMIT * 2 + 50
"""Diagnoses on one ticket: well past the tail the document keeps."""


def _raw(target: str | Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows read with the database's own driver, past the store's code."""
    if isinstance(target, Path):
        with sqlite3.connect(target) as c:
            return c.execute(sql, params).fetchall()
    import psycopg

    with psycopg.connect(target) as c:
        return c.execute(sql.replace("?", "%s"), params).fetchall()


def _doc(target: str | Path, ticket_id: str) -> str:
    return str(_raw(target, "SELECT doc FROM tickets WHERE ticket_id = ?", (ticket_id,))[0][0])


def test_a_long_lived_tickets_document_stays_bounded_and_the_full_view_has_every_id(
    store: TicketStore, db_target: str | Path
) -> None:
    """Fails on the old code: the document held every id, so it grew by two ids a diagnosis."""
    first = store.record_diagnosis(report()).ticket
    assert first is not None
    tid = first.ticket_id
    sizes = {}
    for n in range(2, LONG + 1):
        rec = store.record_diagnosis(report())
        assert rec.outcome == "updated" and rec.ticket is not None and rec.ticket.ticket_id == tid
        if n in (DOC_LIST_LIMIT + 10, LONG):
            sizes[n] = len(_doc(db_target, tid))
    doc = json.loads(_doc(db_target, tid))
    full = store.get(tid)
    assert len(full.diagnosis_ids) == len(full.alert_ids) == full.occurrences == LONG
    assert len(set(full.alert_ids)) == LONG and full.diagnosis_ids[0] == first.diagnosis_ids[0]
    assert doc["diagnosis_ids"] == full.diagnosis_ids[-DOC_LIST_LIMIT:]
    assert doc["alert_ids"] == full.alert_ids[-DOC_LIST_LIMIT:]
    # Same size after 250 diagnoses and after 450 (give or take a digit more in each id).
    assert sizes[LONG] <= sizes[DOC_LIST_LIMIT + 10] + 2 * DOC_LIST_LIMIT, sizes
    assert [t.diagnosis_ids for t in store.tickets()] == [full.diagnosis_ids]
    rows = _raw(db_target, "SELECT COUNT(*) FROM ticket_ids WHERE ticket_id = ?", (tid,))
    assert rows == [(2 * LONG,)]


def test_the_lifecycle_decides_on_alerts_beyond_the_tail_as_on_the_whole_list(
    store: TicketStore,
) -> None:
    """The episode's alert no longer in the document's tail: its final report refines the ticket
    without adding the alert a second time, and a final naming another cause does not find the
    ticket "solo" (it holds other episodes): the same outcomes and lists as when the document
    held every id (the existing lifecycle tests cover the short tickets)."""
    one = store.record_diagnosis(report(stage="provisional"))
    two = store.record_diagnosis(report(stage="provisional"))
    assert one.ticket is not None and two.ticket is not None
    tid, a1, a2 = one.ticket.ticket_id, one.ticket.alert_ids[0], two.ticket.alert_ids[-1]
    for _ in range(DOC_LIST_LIMIT + 20):
        store.record_diagnosis(report())
    before = store.get(tid)
    assert a1 not in before.alert_ids[-DOC_LIST_LIMIT:]

    refined = store.record_diagnosis(report(alert_id=a2))
    assert refined.outcome == "refined" and refined.ticket is not None
    after = store.get(tid)
    assert after.alert_ids == before.alert_ids, "an alert the ticket holds is not added again"
    assert after.occurrences == before.occurrences
    assert len(after.diagnosis_ids) == len(before.diagnosis_ids) + 1
    assert refined.ticket.alert_ids == before.alert_ids[-DOC_LIST_LIMIT:]

    elsewhere = store.record_diagnosis(report(alert_id=a1, root_cause="clogging"))
    assert elsewhere.outcome == "created" and elsewhere.ticket is not None
    assert elsewhere.ticket.ticket_id != tid and elsewhere.ticket.alert_ids == [a1]
    kept = store.get(tid)
    assert kept.root_cause == "bearing_wear" and kept.alert_ids == before.alert_ids
    assert kept.history[-1].action == "diagnosis_elsewhere"


def test_a_version_2_store_moves_its_lists_to_rows(
    store: TicketStore, db_target: str | Path
) -> None:
    """A store written by the previous release (schema v2: the whole lists in each document) is
    migrated on opening: every id becomes a row, in order, and the document keeps the tail.
    Fails on the old code (no ``ticket_ids``, the document keeps everything)."""
    for _ in range(DOC_LIST_LIMIT + 30):
        store.record_diagnosis(report())
    store.record_diagnosis(report(asset="pump02"))
    full = {t.ticket_id: t for t in store.tickets()}
    with store.transaction() as tx:  # what v2 wrote: no rows, the whole lists in the document
        for tid, t in full.items():
            doc = t.model_copy(update={"history": []}).to_json()
            tx.conn.execute("UPDATE tickets SET doc = ? WHERE ticket_id = ?", (doc, tid))
        tx.conn.script("DROP TABLE ticket_ids")
        store.db.set_version(tx.conn, 2)
    store.close_db()
    assert len(json.loads(_doc(db_target, "T-0001"))["alert_ids"]) == DOC_LIST_LIMIT + 30

    migrated = TicketStore(db_target)
    try:
        with migrated.transaction() as tx:
            assert migrated.db.version(tx.conn) == 3
        for tid, t in full.items():
            again = migrated.get(tid)
            assert (again.diagnosis_ids, again.alert_ids) == (t.diagnosis_ids, t.alert_ids)
            doc = json.loads(_doc(db_target, tid))
            assert doc["alert_ids"] == t.alert_ids[-DOC_LIST_LIMIT:]
            assert doc["diagnosis_ids"] == t.diagnosis_ids[-DOC_LIST_LIMIT:]
        old_alert = full["T-0001"].alert_ids[0]
        assert migrated.record_diagnosis(report(alert_id=old_alert)).outcome == "refined"
        assert migrated.get("T-0001").alert_ids == full["T-0001"].alert_ids
    finally:
        migrated.close_db()
