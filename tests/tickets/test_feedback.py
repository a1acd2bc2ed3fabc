"""The feedback logic without I/O: review actions -> Feedback; false positives -> one bounded
tuning step; the false-positive log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tickets_data import report

from engine.agent_files import FalsePositiveLog
from engine.agents.feedback import adjust_tuning, feedback_for
from engine.agents.tuning import threshold_scale
from engine.schemas import FEEDBACK_ALERT_IDS, MAX_PAYLOAD_BYTES, Tuning, decode
from engine.tickets.store import TicketStore

AT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def closed_false_positive(store: TicketStore, **overrides):
    store.record_diagnosis(report(**overrides))
    ticket = store.close("T-0001", "ana", "false_positive", "valve stroking test")
    return feedback_for("close", ticket, "ana", at=AT, note="valve stroking test")


def test_feedback_describes_the_action(store: TicketStore) -> None:
    store.record_diagnosis(report())
    with store.transaction() as tx:
        t, changes = tx.edit("T-0001", "ben", body="x" * 900)
    fb = feedback_for("edit", t, "ben", at=AT, changes=changes)
    assert fb.feedback_id == f"F-T-0001-r{t.revision}"
    assert (fb.asset, fb.root_cause, fb.reason) == ("pump01", "bearing_wear", None)
    assert fb.changes == {"body": "(900 chars)"}, "long text is summarised, the ticket has it"
    assert fb.signals == ["vibration", "bearing_temp"]
    assert fb.matched_rules == ["R01_bearing_vib_temp"]


def test_the_feedback_of_a_ticket_that_chattered_for_weeks_still_fits_in_a_message(
    store: TicketStore,
) -> None:
    """A ticket holding 20,000 alerts (one episode that kept re-raising): its feedback carries
    the latest ``FEEDBACK_ALERT_IDS`` of them and is a valid message; all of them came to
    ~520 KB, past the bus's payload limit: the feedback could not be published."""
    store.record_diagnosis(report())
    ticket = store.get("T-0001")
    ids = [f"pump01-A{n:08d}-{n:06d}" for n in range(20_000)]
    ticket = ticket.model_copy(update={"alert_ids": ids})
    fb = feedback_for("close", ticket, "ana", at=AT)
    assert fb.alert_ids == ids[-FEEDBACK_ALERT_IDS:]
    wire = fb.to_json()
    assert len(wire) < MAX_PAYLOAD_BYTES
    assert decode("feedback/pump01", wire) == fb


def test_false_positive_makes_its_signals_and_rules_less_eager(store: TicketStore) -> None:
    fb = closed_false_positive(store)
    assert fb.reason == "false_positive" and fb.note == "valve stroking test"
    tuned, lines = adjust_tuning(Tuning(), fb)
    assert tuned.thresholds == {"pump01/vibration": 1.1, "pump01/bearing_temp": 1.1}
    assert tuned.rule_offsets == {"R01_bearing_vib_temp": -0.05}
    assert lines == [
        "threshold pump01/vibration x1 -> x1.1",
        "threshold pump01/bearing_temp x1 -> x1.1",
        "rule R01_bearing_vib_temp confidence +0 -> -0.05",
    ]
    # One note per close, not one per threshold it moved.
    assert tuned.notes == ["F-T-0001-r2: T-0001 (bearing_wear) closed as false positive by ana"]
    assert tuned.updated_at == fb.at == AT  # the feedback's time: the agent reads no clock
    # Other assets and signals are untouched.
    assert threshold_scale(tuned, "pump02", "vibration") == 1.0
    assert threshold_scale(tuned, "pump01", "flow") == 1.0


def test_steps_are_bounded(store: TicketStore) -> None:
    fb = closed_false_positive(store)
    tuning = Tuning()
    for _ in range(40):
        tuning, lines = adjust_tuning(tuning, fb)
    assert tuning.thresholds["pump01/vibration"] == 3.0
    assert tuning.rule_offsets["R01_bearing_vib_temp"] == -0.5
    assert lines[0] == "threshold pump01/vibration already at its bound x3"
    assert lines[-1] == "rule R01_bearing_vib_temp confidence already at its bound -0.5"


def test_only_false_positive_closes_tune(store: TicketStore) -> None:
    store.record_diagnosis(report())
    t = store.approve("T-0001", "ana")
    assert adjust_tuning(Tuning(), feedback_for("approve", t, "ana", at=AT)) == (Tuning(), [])
    t = store.close("T-0001", "ana", "resolved")
    assert adjust_tuning(Tuning(), feedback_for("close", t, "ana", at=AT)) == (Tuning(), [])


def test_false_positive_log_keeps_the_first_of_each_feedback(
    store: TicketStore, tmp_path: Path
) -> None:
    fb = closed_false_positive(store)
    log = FalsePositiveLog(tmp_path / "fp.jsonl")
    log.append(fb)
    log.append(fb)  # re-sent after a crash
    assert log.read() == [fb]
    assert len((tmp_path / "fp.jsonl").read_text().splitlines()) == 2
