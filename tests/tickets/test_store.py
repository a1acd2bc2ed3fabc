"""The ticket store on real SQLite: one ticket per episode, idempotency, lifecycle, audit."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from tickets_data import report, ticket

from engine.schemas import ExternalRef, Ticket, utc_now
from engine.tickets.database import SQLITE_CACHE_KIB
from engine.tickets.store import (
    IllegalTransition,
    InvalidRequest,
    StoreUnavailable,
    TicketNotFound,
    TicketStore,
    normalize_id,
)

V1_SCHEMA = """
CREATE TABLE tickets (num INTEGER PRIMARY KEY AUTOINCREMENT, ticket_id TEXT NOT NULL UNIQUE,
    asset TEXT NOT NULL, root_cause TEXT NOT NULL, state TEXT NOT NULL,
    human_edited TEXT NOT NULL DEFAULT '[]', doc TEXT NOT NULL);
CREATE UNIQUE INDEX one_open_ticket_per_cause ON tickets(asset, root_cause)
    WHERE state != 'closed';
CREATE TABLE diagnoses (diagnosis_id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL,
    alert_id TEXT NOT NULL, root_cause TEXT NOT NULL, outcome TEXT NOT NULL,
    stored_at REAL NOT NULL);
CREATE INDEX diagnoses_by_alert ON diagnoses(alert_id);
CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, ticket_id TEXT NOT NULL,
    at TEXT NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE mirror_queue (ticket_id TEXT PRIMARY KEY, revision INTEGER NOT NULL,
    due_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    create_attempted INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE bus_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, origin TEXT NOT NULL,
    topic TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
V1_TICKET = ticket(alert_ids=["A-old"], diagnosis_ids=["D-old"])


def test_one_ticket_per_episode_with_occurrences_and_escalation(store: TicketStore) -> None:
    first, created = store.record_diagnosis(report(severity="medium", ts=4000.0, alert_id="A-1"))
    assert created and first.ticket_id == "T-0001" and first.state == "open"
    second = store.record_diagnosis(report(severity="high", ts=4600.0, alert_id="A-2"))
    assert second.outcome == "updated" and not second.created
    third = store.record_diagnosis(report(severity="low", ts=4700.0, alert_id="A-3"))
    t = third.ticket
    assert t.ticket_id == first.ticket_id
    assert t.occurrences == 3
    assert t.last_seen_ts == 4700.0 and t.first_seen_ts == 3500.0
    assert t.severity == "high", "severity escalates and never drops on its own"
    assert t.alert_ids == ["A-1", "A-2", "A-3"]
    assert len(t.diagnosis_ids) == 3
    assert "priority:P2" in t.labels and "severity:high" in t.labels
    assert [h.action for h in t.history] == ["created", "occurrence", "occurrence"]
    assert "severity escalated medium -> high" in t.history[1].detail
    # A further (final) diagnosis of an alert the ticket holds refines it: no new occurrence.
    fourth = store.record_diagnosis(report(ts=4800.0, alert_id="A-3", confidence=0.95))
    assert fourth.outcome == "refined" and fourth.ticket.occurrences == 3
    assert fourth.ticket.confidence == 0.95 and fourth.ticket.last_seen_ts == 4800.0
    assert fourth.ticket.history[-1].action == "diagnosis"
    assert len(store.tickets()) == 1


def test_redelivered_diagnosis_changes_nothing(store: TicketStore) -> None:
    r = report()
    store.record_diagnosis(r)
    before = store.get("T-0001")
    again = store.record_diagnosis(r)
    assert again.outcome == "duplicate" and not again.created
    assert store.get("T-0001") == before
    # Also after the store is reopened (a restarted service replaying its queue).
    reopened = TicketStore(store.target)
    assert reopened.record_diagnosis(r).outcome == "duplicate"
    assert reopened.get("T-0001") == before
    reopened.close_db()


def test_separate_tickets_per_asset_and_root_cause(store: TicketStore) -> None:
    store.record_diagnosis(report())
    store.record_diagnosis(report(asset="pump02"))
    store.record_diagnosis(report(root_cause="clogging", category="process"))
    assert len(store.tickets()) == 3
    assert [t.asset for t in store.tickets(asset="pump02")] == ["pump02"]


def test_instrument_fault_goes_to_instrumentation(store: TicketStore) -> None:
    t, _ = store.record_diagnosis(
        report(root_cause="sensor_drift", category="unknown", signals=["flow"])
    )
    assert t.category == "instrumentation"
    assert "team:instrumentation" in t.labels
    assert "Instrumentation & control" in t.body
    assert "Mechanical" not in t.body


def test_body_is_a_work_order(store: TicketStore) -> None:
    t, _ = store.record_diagnosis(report(severity="critical"))
    for text in (
        "priority **P1**",
        "asset **pump01**",
        "bearing wear",
        "Mechanical maintenance",
        "Vibration and bearing temperature rising together",
        "vibration 3.9 mm/s vs baseline 1.8",
        "1. Check lubrication of the drive-end bearing",
        "clogging (strainer / line fouling): 20%",
        "| Occurrences | 1 |",
        "R01_bearing_vib_temp",
    ):
        assert text in t.body, text
    assert t.title == "pump01: suspected bearing wear — vibration, bearing_temp"


def test_closed_episode_is_not_reopened_but_a_new_episode_is_a_new_ticket(
    store: TicketStore,
) -> None:
    store.record_diagnosis(report(alert_id="A-7"))
    store.close("T-0001", "ana", "resolved")
    late = store.record_diagnosis(report(alert_id="A-7"))
    assert late.outcome == "attached" and late.ticket.state == "closed"
    assert late.ticket.history[-1].action == "diagnosis_after_close"
    fresh = store.record_diagnosis(report(alert_id="A-8"))
    assert fresh.created and fresh.ticket.ticket_id == "T-0002"


def test_lifecycle_and_audit(store: TicketStore) -> None:
    store.record_diagnosis(report())
    t = store.approve("1", "ana", "looks right")
    assert t.state == "approved" and t.revision == 2
    t = store.edit("T-0001", "ben", title="Replace DE bearing on pump01", severity="high")
    assert t.title == "Replace DE bearing on pump01" and t.severity == "high"
    assert "severity:high" in t.labels, "derived labels follow the severity"
    t = store.close("T-0001", "ana", "resolved", "bearing replaced")
    assert (t.state, t.close_reason, t.close_note) == ("closed", "resolved", "bearing replaced")
    actions = [(h.who, h.action) for h in t.history]
    assert actions == [
        ("agent-ticket", "created"),
        ("ana", "approved"),
        ("ben", "edited"),
        ("ana", "closed"),
    ]
    assert "title = 'Replace DE bearing on pump01'" in t.history[2].detail
    assert all(h.at.tzinfo is not None for h in t.history)


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (lambda s: s.approve("T-0001", "x"), IllegalTransition),
        (lambda s: s.close("T-0001", "x", "resolved"), IllegalTransition),
        (lambda s: s.edit("T-0001", "x", title="t"), IllegalTransition),
        (lambda s: s.approve("T-0099", "x"), TicketNotFound),
    ],
)
def test_illegal_actions_on_a_closed_ticket_change_nothing(store, action, error) -> None:
    store.record_diagnosis(report())
    store.close("T-0001", "ana", "false_positive")
    before = store.get("T-0001")
    with pytest.raises(error):
        action(store)
    assert store.get("T-0001") == before


def test_bad_requests_change_nothing(store: TicketStore) -> None:
    store.record_diagnosis(report())
    before = store.get("T-0001")
    with pytest.raises(InvalidRequest, match="close reason 'fixed'"):
        store.close("T-0001", "x", "fixed")
    with pytest.raises(InvalidRequest, match="severity 'urgent'"):
        store.edit("T-0001", "x", severity="urgent")
    with pytest.raises(InvalidRequest, match="nothing to edit"):
        store.edit("T-0001", "x")
    with pytest.raises(InvalidRequest, match="invalid edit"):
        store.edit("T-0001", "x", title="x" * 600)
    store.approve("T-0001", "x")
    with pytest.raises(IllegalTransition, match="is approved"):
        store.approve("T-0001", "x")
    assert store.get("T-0001").history == [*before.history, store.get("1").history[-1]]


def test_reviewer_text_survives_later_diagnoses(store: TicketStore) -> None:
    store.record_diagnosis(report())
    store.edit("T-0001", "ana", body="Planner's own text", labels=["mech", "urgent"])
    t = store.record_diagnosis(report(severity="critical")).ticket
    assert t.body == "Planner's own text"
    assert t.labels == ["mech", "urgent"]
    assert t.severity == "critical"
    assert t.title.startswith("pump01: suspected bearing wear"), "title not edited: regenerated"


def test_changes_queue_bus_messages_and_mirror_jobs(store: TicketStore) -> None:
    store.enable_mirror("github")
    rec = store.record_diagnosis(report(), origin="ticket")
    store.record_diagnosis(report(diagnosis_id=rec.ticket.diagnosis_ids[0]), origin="ticket")
    rows = store.pending_outbox("ticket")
    assert len(rows) == 1, "a duplicate queues nothing"
    seq, topic, payload = rows[0]
    assert topic == "tickets/pump01"
    assert Ticket.model_validate_json(payload).ticket_id == "T-0001"
    assert store.pending_outbox("review") == []
    store.ack_outbox([seq])
    assert store.pending_outbox("ticket") == []
    assert [j.ticket_id for j in store.due_mirror_jobs()] == ["T-0001"]
    assert store.counts()["open"] == 1


def test_normalize_id() -> None:
    assert normalize_id("7") == "T-0007"
    assert normalize_id("t-0007") == "T-0007"
    assert normalize_id("T-0007") == "T-0007"


def test_two_processes_recording_the_same_stream_make_no_duplicates(db_target) -> None:
    """Two writers (e.g. a restarted service overlapping its predecessor) on one store."""
    db = db_target
    TicketStore(db).close_db()
    script = textwrap.dedent(
        f"""
        import sys
        from engine.schemas import DiagnosisReport
        from engine.tickets.store import TicketStore
        s = TicketStore({str(db)!r})
        order = range(60) if sys.argv[1] == "a" else reversed(range(60))
        for i in order:
            s.record_diagnosis(DiagnosisReport(
                diagnosis_id=f"D{{i}}", alert_id=f"A{{i}}", asset=f"p{{i % 3}}",
                ts=float(i), onset_ts=0.0, root_cause=["bearing_wear", "clogging"][i % 2],
                confidence=0.9, severity="medium", summary="s"))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, who], cwd=Path(__file__).parents[2])
        for who in ("a", "b")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    s = TicketStore(db)
    tickets = s.tickets()
    assert len(tickets) == 6, [(t.asset, t.root_cause) for t in tickets]
    assert sum(t.occurrences for t in tickets) == 60
    ids = [d for t in tickets for d in t.diagnosis_ids]
    assert sorted(ids) == sorted(f"D{i}" for i in range(60))
    assert s.counts()["diagnoses"] == 60
    assert json.loads(json.dumps(s.counts()))["open"] == 6
    s.close_db()


def test_bus_snapshots_stay_bounded_for_long_lived_tickets(store: TicketStore) -> None:
    for _ in range(230):
        store.record_diagnosis(report(), origin="ticket")
    *_, (_, _, payload) = store.pending_outbox("ticket", limit=1000)
    snap = Ticket.model_validate_json(payload)
    assert snap.occurrences == 230
    assert len(snap.history) == len(snap.diagnosis_ids) == 200
    full = store.get("T-0001")
    assert len(full.history) == len(full.diagnosis_ids) == 230
    assert snap.diagnosis_ids == full.diagnosis_ids[-200:]


def test_an_unusable_store_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(StoreUnavailable, match=r"cannot open the ticket store .*a_file/x\.db"):
        TicketStore(tmp_path / "a_file" / "x.db")


def test_final_diagnosis_naming_another_cause_revises_the_provisional_ticket(
    store: TicketStore,
) -> None:
    """The ticket opened from the provisional diagnosis follows the final one: same ticket,
    new cause, category, title and labels; an approval given to the old cause is withdrawn."""
    prov = report(alert_id="A-9", stage="provisional", root_cause="sensor_drift")
    opened = store.record_diagnosis(prov).ticket
    assert opened.root_cause == "sensor_drift" and "Provisional diagnosis" in opened.body
    store.approve(opened.ticket_id, "ana")
    final = store.record_diagnosis(report(alert_id="A-9", root_cause="bearing_wear"))
    t = final.ticket
    assert final.outcome == "revised" and t.ticket_id == opened.ticket_id
    assert t.root_cause == "bearing_wear" and t.category == "mechanical"
    assert "cause:bearing_wear" in t.labels and "bearing wear" in t.title
    assert t.state == "open" and t.occurrences == 1
    assert "Provisional diagnosis" not in t.body
    assert t.history[-1].action == "cause_revised"
    assert "sensor_drift -> bearing_wear" in t.history[-1].detail
    assert "approval withdrawn" in t.history[-1].detail
    # The unique index follows the new cause: a later bearing alert folds into this ticket.
    later = store.record_diagnosis(report(alert_id="A-10", root_cause="bearing_wear"))
    assert later.outcome == "updated" and later.ticket.ticket_id == opened.ticket_id


def test_final_diagnosis_naming_an_already_tracked_cause_merges(store: TicketStore) -> None:
    """If the revised cause already has an open ticket, the episode folds into it and the
    provisional ticket closes as its duplicate; both changes are announced."""
    tracked = store.record_diagnosis(report(alert_id="A-1", root_cause="clogging")).ticket
    prov = store.record_diagnosis(
        report(alert_id="A-2", stage="provisional", root_cause="unknown")
    ).ticket
    assert prov.ticket_id != tracked.ticket_id
    rec = store.record_diagnosis(report(alert_id="A-2", root_cause="clogging"), origin="ticket")
    assert rec.outcome == "merged" and rec.ticket.ticket_id == tracked.ticket_id
    assert rec.ticket.occurrences == 2 and rec.ticket.alert_ids == ["A-1", "A-2"]
    closed = store.get(prov.ticket_id)
    assert closed.state == "closed" and closed.close_reason == "duplicate"
    assert tracked.ticket_id in (closed.close_note or "")
    announced = [Ticket.model_validate_json(p) for _, _, p in store.pending_outbox("ticket")]
    assert {t.ticket_id for t in announced} == {tracked.ticket_id, prov.ticket_id}


def test_an_escalation_update_changes_severity_and_priority_only(store: TicketStore) -> None:
    """Contract C2: a ``stage="update"`` report of the same alert raises the severity and the
    priority (labels, body), never the cause; one ticket, one more revision, one history line."""
    prov = store.record_diagnosis(report(alert_id="A-1", stage="provisional", severity="low"))
    final = store.record_diagnosis(report(alert_id="A-1", severity="low"))
    before = final.ticket
    assert "priority **P4**" in before.body
    up = store.record_diagnosis(
        report(alert_id="A-1", stage="update", severity="critical", root_cause="clogging"),
        origin="ticket",
    )
    t = up.ticket
    assert up.outcome == "escalated" and t.ticket_id == prov.ticket.ticket_id
    assert t.root_cause == "bearing_wear", "an update never changes the cause"
    assert (t.severity, t.revision) == ("critical", before.revision + 1)
    assert "priority:P1" in t.labels and "severity:critical" in t.labels
    assert "priority **P1** (critical:" in t.body and "| Severity | critical |" in t.body
    assert t.history[-1].action == "severity_escalated"
    assert "low -> critical" in t.history[-1].detail
    assert t.occurrences == 1 and len(store.tickets()) == 1
    # An update that raises nothing is recorded and changes nothing.
    same = store.record_diagnosis(report(alert_id="A-1", stage="update", severity="high"))
    assert same.outcome == "noted"
    assert store.get(t.ticket_id).revision == t.revision


def test_the_body_priority_follows_a_reviewer_severity_edit(store: TicketStore) -> None:
    """Issue 13: after editing the severity to high the body said "priority P3 (medium ...)"."""
    store.record_diagnosis(report(severity="medium"))
    t = store.edit("T-0001", "ana", severity="high")
    assert "priority **P2** (high: within the shift)" in t.body
    assert "P3" not in t.body and "| Severity | high |" in t.body
    # Unless the reviewer wrote the body: then it stays theirs.
    store.edit("T-0001", "ana", body="Planner's own text")
    assert store.edit("T-0001", "ana", severity="low").body == "Planner's own text"


def test_idempotency_keys_include_the_asset(store: TicketStore) -> None:
    """Issue 12 item 5: a diagnosis (and alert) id pre-published on another asset must not
    swallow the real one."""
    store.record_diagnosis(report(diagnosis_id="D-7", alert_id="A-7", asset="pump09"))
    real = store.record_diagnosis(report(diagnosis_id="D-7", alert_id="A-7", asset="pump01"))
    assert real.outcome == "created" and real.ticket.asset == "pump01"
    assert sorted(t.asset for t in store.tickets()) == ["pump01", "pump09"]
    assert store.record_diagnosis(report(diagnosis_id="D-7", asset="pump01")).outcome == (
        "duplicate"
    )


def test_a_settled_cause_is_not_revised_by_later_reports(store: TicketStore) -> None:
    """The first final report settles the episode's cause: a late provisional or a second
    final naming another cause (a forgery, a replay) is recorded but changes no cause and
    withdraws no approval."""
    store.record_diagnosis(report(alert_id="A-1", stage="provisional", root_cause="clogging"))
    final = store.record_diagnosis(report(alert_id="A-1", root_cause="bearing_wear")).ticket
    assert final.root_cause == "bearing_wear"
    store.approve(final.ticket_id, "ana")
    late = store.record_diagnosis(
        report(alert_id="A-1", stage="provisional", root_cause="noise_burst")
    )
    assert late.outcome == "noted"
    forged = store.record_diagnosis(report(alert_id="A-1", root_cause="sensor_drift"))
    t = forged.ticket
    assert forged.outcome == "kept"
    assert (t.root_cause, t.state) == ("bearing_wear", "approved")
    assert t.history[-1].action == "cause_kept" and "sensor_drift" in t.history[-1].detail
    assert len(store.tickets()) == 1


def test_every_stored_change_bumps_the_revision(store: TicketStore) -> None:
    """Mirror results and history-only lines included (issue 11)."""
    store.enable_mirror("github")
    store.record_diagnosis(report(alert_id="A-1"))
    revisions = [store.get("T-0001").revision]
    (job,) = store.due_mirror_jobs()
    ref = ExternalRef(system="github", id="1", url="https://example.invalid/1", synced_at=utc_now())
    store.mirror_succeeded(job, ref, "created", None)
    revisions.append(store.get("T-0001").revision)
    store.edit("T-0001", "ana", title="Replace the DE bearing")
    (job,) = store.due_mirror_jobs()
    assert store.mirror_failed(job, "502 bad gateway", None, system="github") is not None
    assert store.mirror_failed(job, "502 bad gateway", None, system="github") is None
    assert store.due_mirror_jobs() == [], "parked until the next change"
    t = store.get("T-0001")
    assert t.external is not None and t.external.error == "502 bad gateway"
    revisions.append(t.revision)
    store.close("T-0001", "ana", "resolved")
    revisions.append(store.get("T-0001").revision)
    store.record_diagnosis(report(alert_id="A-1"))  # after close: attached, a history line
    revisions.append(store.get("T-0001").revision)
    assert revisions == [1, 2, 4, 5, 6], "edit: 3, its mirror error: 4"


def test_mirror_jobs_exist_only_while_a_mirror_is_configured(store: TicketStore) -> None:
    """Issue 15: ``mirror_pending`` grew forever with no mirror configured."""
    for _ in range(3):
        store.record_diagnosis(report(alert_id=f"A-{_}", asset=f"pump0{_}"))
    assert store.counts()["mirror_pending"] == 0
    store.close("T-0003", "ana", "resolved")
    assert store.enable_mirror("github") == 2, "the open tickets are queued when one appears"
    assert store.counts()["mirror_pending"] == 2
    assert store.enable_mirror("github") == 0
    store.disable_mirror()
    store.record_diagnosis(report(asset="pump01"))
    assert store.counts()["mirror_pending"] == 0


def test_a_version_1_sqlite_store_is_migrated(tmp_path: Path) -> None:
    """A store written by the previous release keeps its tickets and idempotency keys."""
    db = tmp_path / "v1.db"
    with sqlite3.connect(db) as c:
        c.executescript(V1_SCHEMA)
        c.execute(
            "INSERT INTO tickets(ticket_id, asset, root_cause, state, doc) VALUES (?,?,?,?,?)",
            ("T-0001", "pump01", "bearing_wear", "open", V1_TICKET.to_json()),
        )
        c.execute(
            "INSERT INTO diagnoses VALUES ('D-old', 'T-0001', 'A-old', 'bearing_wear', "
            "'created', 0)"
        )
        c.execute("PRAGMA user_version = 1")
    s = TicketStore(db)
    assert s.record_diagnosis(report(diagnosis_id="D-old", alert_id="A-old")).outcome == (
        "duplicate"
    )
    again = s.record_diagnosis(report(alert_id="A-old"))
    assert again.outcome == "refined" and again.ticket.ticket_id == "T-0001"
    assert s.record_diagnosis(report(alert_id="A-new")).outcome == "updated"
    s.close_db()


def test_a_suppressed_alarm_opens_no_ticket(store: TicketStore) -> None:
    """Contract C6: the gate (the alarm tables' check, run in the ticket transaction) says the
    alarm is shelved: the diagnosis is recorded (a repeat stays a duplicate), no ticket. An
    alert that already has its ticket goes on updating it."""
    shelved = {("pump01", "A-2")}

    def gate(conn, r):  # the shape of the ticket service's ``_alarm_gate`` (C6)
        assert conn.scalar("SELECT COUNT(*) FROM tickets") is not None  # same transaction
        return "shelved until 10:00 (by ana)" if (r.asset, r.alert_id) in shelved else None

    opened = store.record_diagnosis(report(alert_id="A-1"), gate=gate)
    assert opened.outcome == "created"
    quiet = report(alert_id="A-2", root_cause="clogging")
    rec = store.record_diagnosis(quiet, gate=gate, origin="ticket")
    assert (rec.outcome, rec.ticket, rec.reason) == (
        "suppressed",
        None,
        "shelved until 10:00 (by ana)",
    )
    assert store.record_diagnosis(quiet, gate=gate).outcome == "duplicate"
    assert [t.ticket_id for t in store.tickets()] == ["T-0001"]
    assert store.counts()["diagnoses"] == 2
    assert len(store.pending_outbox("ticket")) == 0
    shelved.add(("pump01", "A-1"))  # shelved after its ticket opened: the ticket follows it
    later = store.record_diagnosis(
        report(alert_id="A-1", stage="update", severity="high"), gate=gate
    )
    assert later.outcome == "escalated"


def test_an_unreachable_postgresql_store_is_one_clear_line_without_the_password() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        TicketStore("postgresql://ops:s3cret@127.0.0.1:1/plant", busy_timeout_s=2)
    text = str(caught.value)
    assert "cannot open the ticket store postgresql://ops:***@127.0.0.1:1/plant" in text
    assert "s3cret" not in text and "\n" not in text


def _sqlite_memory_used() -> Callable[[], int] | None:
    """``sqlite3_memory_used`` of the SQLite library Python's ``sqlite3`` runs on, or None when
    that library is not a shared one ctypes can reach (a statically linked build)."""
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return None
    fn = ctypes.CDLL(name).sqlite3_memory_used
    fn.restype = ctypes.c_int64
    before = fn()
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE t (x)")
        if fn() == before:
            return None
    return cast(Callable[[], int], fn)


def test_reading_a_large_store_keeps_little_of_it_in_memory(tmp_path: Path) -> None:
    """Each connection's page cache is bounded (SQLITE_CACHE_KIB): reading 8 MiB of rows leaves
    at most that much in SQLite's heap, not SQLite's default 2,000 KiB per connection."""
    memory_used = _sqlite_memory_used()
    if memory_used is None:
        pytest.skip("Python's sqlite3 is not linked to a shared libsqlite3 (no memory counter)")
    store = TicketStore(tmp_path / "t.db")
    try:
        base = memory_used()
        rows = [(f"k{i}", "v" * 2000) for i in range(4000)]
        with store.transaction() as tx:
            tx.conn.executemany("INSERT INTO settings(key, value) VALUES (?, ?)", rows)
        with store.transaction() as tx:
            assert tx.conn.scalar("SELECT SUM(LENGTH(value)) FROM settings") == 8_000_000
        grown_kib = (memory_used() - base) / 1024
        assert grown_kib < SQLITE_CACHE_KIB + 256, grown_kib
    finally:
        store.close_db()


def test_opening_waits_for_a_writer_holding_a_new_store(tmp_path: Path) -> None:
    """The switch to WAL fails at once with "database is locked" while another connection holds
    a write lock on a file still in rollback mode — SQLite's busy handler is not called for it
    (fresh-ci: the ticket and review services opening a new store together). The open must wait
    for the lock like any other, not give up."""
    import threading

    from engine.tickets.database import Database

    path = tmp_path / "new.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, writer.execute, ("COMMIT",))
    release.start()
    try:
        db = Database(path, busy_timeout_s=10.0)
    finally:
        release.join()
        writer.close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    db.close()
