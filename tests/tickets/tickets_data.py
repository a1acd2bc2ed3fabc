"""Diagnosis reports as the diagnosis agent would publish them (test data for this area)."""

from __future__ import annotations

import itertools
import time
from typing import Any

from engine.schemas import AlertEvent, DiagnosisReport, Hypothesis, Ticket, utc_now
from engine.tickets.mirror import Mirror
from engine.tickets.store import TicketStore

_ids = itertools.count(1)


class Clock:
    """Wall clock the test can move forward, so waits are checked without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def report(**overrides: Any) -> DiagnosisReport:
    n = next(_ids)
    fields: dict[str, Any] = {
        "diagnosis_id": f"D-{n}",
        "alert_id": f"A-{n}",
        "asset": "pump01",
        "ts": 3600.0 + n,
        "onset_ts": 3500.0,
        "root_cause": "bearing_wear",
        "confidence": 0.82,
        "category": "mechanical",
        "severity": "medium",
        "summary": "Vibration and bearing temperature rising together: bearing wear.",
        "alternatives": [Hypothesis(root_cause="clogging", confidence=0.2, rules=["R04"])],
        "actions": ["Check lubrication of the drive-end bearing", "Plan bearing replacement"],
        "evidence": ["vibration 3.9 mm/s vs baseline 1.8 (z 7.1)", "bearing_temp +9 °C in 20 min"],
        "matched_rules": ["R01_bearing_vib_temp"],
        "signals": ["vibration", "bearing_temp"],
    }
    fields.update(overrides)
    return DiagnosisReport(**fields)


def mirrored(store: TicketStore, mirror: Mirror, **overrides: Any) -> Ticket:
    """Record a diagnosis (``report(**overrides)``), run one pass of ``mirror``, and return the
    diagnosis's ticket as the store has it after the pass."""
    ticket_id = store.record_diagnosis(report(**overrides)).ticket.ticket_id
    mirror.run_once()
    return store.get(ticket_id)


def stored_text(store: TicketStore) -> str:
    """Everything the store holds, as raw as we can read it: the SQLite file and its WAL, or
    every row of every table on PostgreSQL (a secret must appear in none of it)."""
    if store.path is not None:
        wal = store.path.with_name(store.path.name + "-wal")
        files = [store.path, *([wal] if wal.exists() else [])]
        return "\n".join(f.read_bytes().decode("latin-1") for f in files)
    tables = (
        "tickets",
        "diagnoses",
        "ticket_ids",
        "audit",
        "mirror_queue",
        "bus_outbox",
        "settings",
    )
    with store.transaction() as tx:
        return "\n".join(
            str(row) for name in tables for row in tx.conn.all(f"SELECT * FROM {name}")
        )


def leak_surfaces(store: TicketStore, events: object, log_text: str, *mirrors: Any) -> list[str]:
    """Everywhere a mirror's credential could leak to: its event log, the Python log, the
    store's raw bytes, the tickets as served, and each mirror's status and description."""
    return [
        str(events),
        log_text,
        stored_text(store),
        str([t.model_dump_json() for t in store.tickets()]),
        *(str(m.status()) for m in mirrors),
        *(str(m.connector.describe()) for m in mirrors),
    ]


def alert(**overrides: Any) -> AlertEvent:
    fields: dict[str, Any] = {
        "alert_id": "A-1",
        "asset": "pump01",
        "ts": 3500.0,
        "onset_ts": 3500.0,
        "severity": "medium",
        "score": 6.0,
        "signals": ["vibration"],
        "detector": "robust_z",
    }
    fields.update(overrides)
    return AlertEvent(**fields)


def ticket(**overrides: Any) -> Ticket:
    now = utc_now()
    fields: dict[str, Any] = {
        "ticket_id": "T-0001",
        "asset": "pump01",
        "title": "pump01: suspected bearing wear",
        "body": "body",
        "severity": "medium",
        "root_cause": "bearing_wear",
        "created_at": now,
        "updated_at": now,
    }
    fields.update(overrides)
    return Ticket(**fields)
