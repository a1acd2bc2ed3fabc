"""A ticket's ``diagnosis_ids`` and ``alert_ids``: a bounded tail in its stored document, the
whole lists in append-only rows (``ticket_ids``).

Why: the document is loaded, validated and rewritten by every diagnosis of its ticket; with the
whole lists in it a long-lived ticket (a chattering pump, a plant that runs for months) made
every write bigger, and the ticket service's memory and time per diagnosis grew with the
ticket's age (issue 12). Now a write costs the same on the ticket's first day and its thousandth:
the document keeps the last DOC_LIST_LIMIT of each list, each new id is one row, and only the
full view (``Tx.get`` with the whole history: the review API) reads the rows.

The lifecycle decides on the tail as it did on the whole lists:

- ``alert_ids == [alert]`` (is the ticket this alert's alone?): a tail is cut only from a list
  longer than DOC_LIST_LIMIT >= 2, so a one-entry tail is a one-entry list;
- ``alert not in alert_ids`` (fold a new alert only once): asked of the rows
  (:func:`holds_alert`) when the tail is full and does not hold it;
- the body's alert line shows the last five.
"""

from __future__ import annotations

import json
from typing import Any

from engine.tickets.database import Conn

DOC_LIST_LIMIT = 200
"""How many (most recent) diagnosis and alert ids a ticket's stored document keeps. Equal to the
bus's BUS_LIST_LIMIT, so a snapshot built from the document carries what it did when the
document held everything; at least 5 (the body's alert line) and 2 (see the module's notes)."""
LISTS = {"diagnosis_ids": "diagnosis", "alert_ids": "alert"}
"""Ticket field -> ``kind`` of its rows."""


def tail(ids: list[str]) -> list[str]:
    return ids[-DOC_LIST_LIMIT:]


def append(conn: Conn, ticket_id: str, field: str, ids: list[str]) -> None:
    """Add ids (in their order) to the end of a ticket's list."""
    if ids:
        conn.executemany(
            "INSERT INTO ticket_ids(ticket_id, kind, value) VALUES (?, ?, ?)",
            [(ticket_id, LISTS[field], value) for value in ids],
        )


def whole(conn: Conn, ticket_id: str) -> dict[str, list[str]]:
    """Every list of the ticket, from its rows, in the order the ids were added."""
    out: dict[str, list[str]] = {field: [] for field in LISTS}
    field_of = {kind: field for field, kind in LISTS.items()}
    for kind, value in conn.all(
        "SELECT kind, value FROM ticket_ids WHERE ticket_id = ? ORDER BY seq", (ticket_id,)
    ):
        out[field_of[kind]].append(value)
    return out


def holds_alert(conn: Conn, ticket_id: str, stored_tail: list[str], alert_id: str) -> bool:
    """Whether the ticket's whole ``alert_ids`` holds ``alert_id``; the rows are read only when
    the stored tail cannot tell (it is full and lacks it)."""
    if alert_id in stored_tail:
        return True
    if len(stored_tail) < DOC_LIST_LIMIT:
        return False
    row = conn.one(
        "SELECT 1 FROM ticket_ids WHERE ticket_id = ? AND kind = 'alert' AND value = ? LIMIT 1",
        (ticket_id, alert_id),
    )
    return row is not None


def move_to_rows(conn: Conn) -> None:
    """The v2 -> v3 migration: every document's whole lists become rows (tickets in the order
    they were created, ids in list order), and the document keeps their tail. Plain JSON, not
    the Ticket model: a migration must not depend on what the model accepts today."""
    for ticket_id, raw in conn.all("SELECT ticket_id, doc FROM tickets ORDER BY num"):
        doc: dict[str, Any] = json.loads(raw)
        for field in LISTS:
            ids = [str(i) for i in doc.get(field) or []]
            append(conn, ticket_id, field, ids)
            if field in doc:
                doc[field] = tail(ids)
        conn.execute(
            "UPDATE tickets SET doc = ? WHERE ticket_id = ?",
            (json.dumps(doc, separators=(",", ":")), ticket_id),
        )
