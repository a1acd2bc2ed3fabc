"""A service's durable outbox: messages to publish and the state that produced them, committed
in one SQLite transaction, so a crash can neither lose a message the service already
acknowledged the input of, nor publish one whose state change was lost.

State is kept as keyed rows (the diagnosis service: one row per asset) and a commit writes only
the rows that changed: saving after an alert costs the same for 1 pump as for 1,000 (the whole
state per commit made a fleet's diagnosis quadratic and minutes behind). The one-blob ``state``
table of earlier versions is still read (``load_legacy``) and dropped by the first full save.

The diagnosis service commits each report here (with its asset's pending-alert state) before
its alert is acknowledged; ``engine.tickets.outbox.OutboxPublisher`` publishes the rows and
deletes each one only when the broker acknowledged it (QoS 1 PUBACK). A crash at any point
re-sends after restart what was not acknowledged: a repeat at worst (consumers key on the
message id), never a loss.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from engine.schemas import WireModel, topic_for

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state_rows (
    origin TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (origin, key)
);
"""


class OutboxStore:
    """``commit(messages, rows)`` atomically; ``pending_outbox``/``ack_outbox`` for the
    publisher (the same interface as the ticket store's outbox)."""

    def __init__(self, path: Path, origin: str) -> None:
        self.path = path
        self.origin = origin
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # a committed report survives power loss
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA)

    def commit(
        self,
        messages: Sequence[WireModel],
        rows: Mapping[str, str | None] | None = None,
        *,
        drop_legacy: bool = False,
    ) -> None:
        """Queue ``messages`` and write the state ``rows`` (a None value deletes its row), in
        one transaction; ``drop_legacy`` deletes the earlier versions' whole-state blob too."""
        msgs = [(self.origin, topic_for(m), m.to_json()) for m in messages]
        rows = rows or {}
        put = [(self.origin, k, v) for k, v in rows.items() if v is not None]
        drop = [(self.origin, k) for k, v in rows.items() if v is None]
        with self._transaction() as conn:
            conn.executemany("INSERT INTO outbox (origin, topic, payload) VALUES (?, ?, ?)", msgs)
            conn.executemany(
                "INSERT OR REPLACE INTO state_rows (origin, key, value) VALUES (?, ?, ?)", put
            )
            conn.executemany("DELETE FROM state_rows WHERE origin = ? AND key = ?", drop)
            if drop_legacy:
                conn.execute("DELETE FROM state WHERE key = ?", (self.origin,))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. On a full disk SQLite has already rolled back when COMMIT
        fails; a second ROLLBACK would raise "no transaction is active" and hide the real
        error, so roll back only what is still open."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def row_keys(self) -> list[str]:
        with self._lock:
            got = self._conn.execute(
                "SELECT key FROM state_rows WHERE origin = ?", (self.origin,)
            ).fetchall()
        return [str(k) for (k,) in got]

    def load_rows(self) -> dict[str, str]:
        with self._lock:
            got = self._conn.execute(
                "SELECT key, value FROM state_rows WHERE origin = ? ORDER BY key", (self.origin,)
            ).fetchall()
        return {str(k): str(v) for k, v in got}

    def load_legacy(self) -> str | None:
        """The whole-state blob an earlier version saved (None once a full save replaced it)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM state WHERE key = ?", (self.origin,)
            ).fetchone()
        return str(row[0]) if row else None

    def pending_outbox(self, origin: str, limit: int = 100) -> list[tuple[int, str, str]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, topic, payload FROM outbox WHERE origin = ? ORDER BY seq LIMIT ?",
                (origin, limit),
            ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def ack_outbox(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._transaction() as conn:
            conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def queued(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
