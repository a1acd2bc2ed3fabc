"""The ticket store's tables, in the portable SQL of ``engine/tickets/database.py``, and the
migrations of older stores (v1: SQLite only; v2: SQLite or PostgreSQL).

- ``tickets``: one row per work order (the ticket as JSON in ``doc``, without its history and
  with only the tail of its diagnosis and alert ids: ``engine/tickets/id_lists.py``);
  ``human_edited`` lists the fields a reviewer wrote by hand; ``report`` is the latest report
  naming the ticket's cause (what the body is rendered from). One open ticket per asset and
  root cause is enforced by a partial unique index, not only by code.
- ``diagnoses``: every diagnosis recorded, keyed by asset *and* diagnosis id (an id published
  on another asset can never stand for this one); the episode of a report is found by asset
  and alert id.
- ``ticket_ids``: every diagnosis and alert id of every ticket, one row each, in list order.
- ``audit``: the history lines.
- ``mirror_queue``: tickets whose external copy is behind (only while a mirror is configured).
- ``bus_outbox``: messages to publish after commit, tagged with the service that owns them.
- ``settings``: small JSON documents (the feedback loop's tuning, the configured mirror).
"""

from __future__ import annotations

from engine.tickets import id_lists
from engine.tickets.database import Conn, Database
from engine.tickets.errors import StoreUnavailable

SCHEMA_VERSION = 3

TABLES = """
CREATE TABLE IF NOT EXISTS tickets (
    num          {pk},
    ticket_id    TEXT NOT NULL UNIQUE,
    asset        TEXT NOT NULL,
    root_cause   TEXT NOT NULL,
    state        TEXT NOT NULL,
    human_edited TEXT NOT NULL DEFAULT '[]',
    report       TEXT,
    doc          TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_ticket_per_cause
    ON tickets(asset, root_cause) WHERE state <> 'closed';
CREATE TABLE IF NOT EXISTS diagnoses (
    seq          {pk},
    asset        TEXT NOT NULL,
    diagnosis_id TEXT NOT NULL,
    ticket_id    TEXT NOT NULL,
    alert_id     TEXT NOT NULL,
    stage        TEXT NOT NULL,
    root_cause   TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    stored_at    {real} NOT NULL,
    UNIQUE (asset, diagnosis_id)
);
CREATE INDEX IF NOT EXISTS diagnoses_by_alert ON diagnoses(asset, alert_id, seq);
CREATE TABLE IF NOT EXISTS audit (
    id        {pk},
    ticket_id TEXT NOT NULL,
    at        TEXT NOT NULL,
    who       TEXT NOT NULL,
    action    TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_ticket ON audit(ticket_id, id);
CREATE TABLE IF NOT EXISTS ticket_ids (
    seq       {pk},
    ticket_id TEXT NOT NULL,
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_ids_in_order ON ticket_ids(ticket_id, seq);
CREATE INDEX IF NOT EXISTS ticket_ids_by_value ON ticket_ids(ticket_id, value);
CREATE TABLE IF NOT EXISTS mirror_queue (
    ticket_id        TEXT PRIMARY KEY,
    revision         INTEGER NOT NULL,
    due_at           {real} NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    create_attempted INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT
);
CREATE TABLE IF NOT EXISTS bus_outbox (
    seq     {pk},
    origin  TEXT NOT NULL,
    topic   TEXT NOT NULL,
    payload TEXT NOT NULL,
    created {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""

_V1_TO_V2 = """
ALTER TABLE tickets ADD COLUMN report TEXT;
ALTER TABLE diagnoses RENAME TO diagnoses_v1;
DROP INDEX IF EXISTS diagnoses_by_alert
"""


def create_or_migrate(db: Database, conn: Conn) -> None:
    """Bring the store to SCHEMA_VERSION inside the caller's write transaction."""
    version = db.version(conn)
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"{db.where}: store schema v{version} is newer than this program "
            f"(v{SCHEMA_VERSION}); upgrade controlroom"
        )
    if version == 1:
        conn.script(_V1_TO_V2)
    conn.script(TABLES)
    if version == 1:
        # v1 keyed diagnoses by id alone and did not record the stage: the asset comes from the
        # ticket, and no old episode counts as settled.
        conn.execute(
            "INSERT INTO diagnoses(asset, diagnosis_id, ticket_id, alert_id, stage, root_cause, "
            "outcome, stored_at) SELECT t.asset, d.diagnosis_id, d.ticket_id, d.alert_id, "
            "'legacy', d.root_cause, d.outcome, d.stored_at "
            "FROM diagnoses_v1 d JOIN tickets t ON t.ticket_id = d.ticket_id ORDER BY d.rowid"
        )
        conn.script("DROP TABLE diagnoses_v1")
    if 0 < version < 3:
        # v1 and v2 kept a ticket's whole lists in its document.
        id_lists.move_to_rows(conn)
    if version != SCHEMA_VERSION:
        db.set_version(conn, SCHEMA_VERSION)
