"""One small layer over the two SQL databases the stores run on: SQLite (embedded, the default)
and PostgreSQL (shared by services on several hosts), so the SQL above it is written once.

A store writes portable SQL with ``?`` placeholders and these tokens in its DDL: ``{pk}`` (an
auto-numbered integer primary key) and ``{real}`` (a double). Everything that differs lives
here and nowhere else:

- placeholders (``?`` for sqlite3, ``%s`` for psycopg) and the two DDL tokens;
- write transactions are serialised across processes: SQLite ``BEGIN IMMEDIATE`` (WAL + busy
  timeout), PostgreSQL ``BEGIN`` + a transaction-scoped advisory lock waited for up to the same
  timeout. Writers queue instead of failing with serialisation errors, on both;
- memory: each SQLite connection keeps at most ``SQLITE_CACHE_KIB`` of pages and
  ``SQLITE_STATEMENTS`` prepared statements (below), so a process's share of SQLite is small and
  reached at once, not filled over tens of minutes as the tables grow;
- durability: SQLite runs ``synchronous = FULL`` (a commit is on disk before it returns; the
  ticket service acknowledges a bus message only after that), PostgreSQL its default
  ``synchronous_commit = on``;
- the schema version (``PRAGMA user_version`` / a ``controlroom_meta`` row);
- driver exceptions become :class:`~engine.tickets.errors.StoreError` with a
  :class:`~engine.tickets.errors.Fault` kind (busy, full, I/O, corrupt, read-only,
  unavailable), so no caller imports ``sqlite3`` or ``psycopg``.

``CONTROLROOM_DB`` chooses: a file path (or ``sqlite:///path``) for SQLite, a
``postgresql://user@host:port/db`` URL for PostgreSQL. Literal ``?`` and ``%`` never appear in
the SQL text itself (values always travel as parameters).
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from engine.tickets.errors import Fault, StoreError, StoreUnavailable

Row = tuple[Any, ...]
Params = Sequence[Any]

SQLITE_CACHE_KIB = 512
"""Page cache per SQLite connection (SQLite's default is 2,000 KiB; a store has two connections
and the review service two stores). In WAL mode a connection drops its whole cache whenever
another connection has committed (the ticket and review services write every few seconds, the
store probe every 2 s), so a cache only ever serves the few transactions in between: one
transaction's pages (B-tree paths of a dozen tables and indexes, a ticket's overflow pages) fit
in 128 pages, and a scan (``counts``) reads through it from the OS's file cache either way. The
default let every scan of a growing table leave up to 2 MiB per connection in the heap."""
SQLITE_STATEMENTS = 64
"""Prepared statements cached per connection (Python's default: 128). Most of the stores' SQL is
a fixed set of texts (limits are parameters); the texts that vary (``IN`` lists of a chunk's
length) would otherwise fill a larger cache slowly, one rare length at a time."""

PG_WRITE_LOCK = 0x636F6E74726F6C
"""Key of the advisory lock every PostgreSQL write transaction takes (one writer at a time, as
SQLite's ``BEGIN IMMEDIATE``): cheap, deadlock-free, and no serialisation failures to retry."""


def is_postgres(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def redact(target: str | Path) -> str:
    """The target without a password, fit for logs and ``/health``."""
    if not is_postgres(target):
        return str(target)
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


Condition = tuple[str, tuple[Any, ...]]
"""An SQL condition with its ``?`` placeholders, and their values."""


def where(*conditions: Condition | None) -> tuple[str, list[Any]]:
    """`` WHERE a AND b`` from the conditions given (None: that filter is not asked for) and
    the values of their placeholders, in order; ``("", [])`` when none applies."""
    given = [c for c in conditions if c is not None]
    if not given:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in given), [v for _, vs in given for v in vs]


class _Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> Any: ...


class Conn:
    """The database inside one transaction: run SQL, get plain tuples back."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self._raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: Params = ()) -> _Cursor:
        cursor: _Cursor = self._raw.execute(self.dialect.sql(sql), tuple(params))
        return cursor

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if not rows:
            return
        if self.dialect.name == "sqlite":
            self._raw.executemany(self.dialect.sql(sql), rows)
        else:
            with self._raw.cursor() as cur:
                cur.executemany(self.dialect.sql(sql), rows)

    def one(self, sql: str, params: Params = ()) -> Row | None:
        row = self.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        return [tuple(r) for r in self.execute(sql, params).fetchall()]

    def scalar(self, sql: str, params: Params = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    def script(self, ddl: str) -> None:
        """Run ``;``-separated DDL with the dialect's types filled in."""
        for statement in self.dialect.ddl(ddl).split(";"):
            if statement.strip():
                self._raw.execute(statement)


@dataclass(frozen=True)
class Dialect:
    name: str
    pk: str
    real: str

    def sql(self, text: str) -> str:
        return _pg_sql(text) if self.name == "postgresql" else text

    def ddl(self, text: str) -> str:
        return text.replace("{pk}", self.pk).replace("{real}", self.real)


SQLITE = Dialect("sqlite", pk="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL")
POSTGRESQL = Dialect(
    "postgresql", pk="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", real="DOUBLE PRECISION"
)


@lru_cache(maxsize=512)
def _pg_sql(text: str) -> str:
    return text.replace("%", "%%").replace("?", "%s")


class Database:
    """One connection per database, used by one thread at a time (a lock); safe across
    processes through the database's own locking. ``transaction()`` writes, ``snapshot()``
    reads a consistent state; both turn driver errors into ``StoreError``."""

    def __init__(self, target: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.target = target
        self.postgres = is_postgres(target)
        self.dialect = POSTGRESQL if self.postgres else SQLITE
        self.busy_timeout_s = busy_timeout_s
        self.where = redact(target)
        self._lock = threading.RLock()
        self._raw: Any = None
        self._connect()

    # ---- connections -------------------------------------------------------------------------

    def _connect(self) -> None:
        self._raw = self._open_postgres() if self.postgres else self._open_sqlite()

    def _switch_to_wal(self, conn: sqlite3.Connection) -> str:
        """``PRAGMA journal_mode = WAL``, retried while the file is locked. When several processes
        open a new store at once (the ticket and review services at start-up), the switch can
        fail at once with "database is locked" without SQLite's busy handler being called (1 in
        200 three-process opens of a fresh file, measured; at once whenever another connection
        holds a write lock on a file still in rollback mode: ``tests/tickets/test_store.py``): it
        is retried here for up to the busy timeout, as any other lock would be waited for."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.005
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _open_sqlite(self) -> sqlite3.Connection:
        path = Path(str(self.target).removeprefix("sqlite:///").removeprefix("sqlite://"))
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=SQLITE_STATEMENTS,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            conn.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
            mode = self._switch_to_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the ticket store {path}: {exc}") from None
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreUnavailable(
                f"{path}: SQLite cannot use WAL mode here ({mode}); the ticket and review "
                "services share the store and need it (a network file system?)"
            )
        return conn

    def _open_postgres(self) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(
                str(self.target), autocommit=True, connect_timeout=max(2, int(self.busy_timeout_s))
            )
            conn.execute(f"SET lock_timeout = {int(self.busy_timeout_s * 1000)}")
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailable(f"cannot open the ticket store {self.where}: {first}") from None
        return conn

    def reopen(self) -> None:
        """Drop the connection and open a new one (after a server restart, or once an
        operator has moved a corrupt file aside)."""
        with self._lock:
            self._close_raw()
            self._connect()

    def close(self) -> None:
        with self._lock:
            self._close_raw()

    def _close_raw(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):  # a broken connection: nothing more to do
                raw.close()

    # ---- transactions ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """One write transaction, serialised with every other writer of this database (other
        processes included); commits when the block ends, rolls back on any exception."""
        with self._lock, self._translated():
            raw = self._ready()
            if self.postgres:
                raw.execute("BEGIN")
                raw.execute("SELECT pg_advisory_xact_lock(%s)", (PG_WRITE_LOCK,))
            else:
                raw.execute("BEGIN IMMEDIATE")
            try:
                yield Conn(raw, self.dialect)
            except BaseException:
                self._rollback(raw)
                raise
            try:
                raw.execute("COMMIT")
            except BaseException:
                self._rollback(raw)
                raise

    @contextmanager
    def snapshot(self) -> Iterator[Conn]:
        """A read transaction: several queries see one consistent state."""
        with self._lock, self._translated():
            raw = self._ready()
            raw.execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if self.postgres else "BEGIN"
            )
            try:
                yield Conn(raw, self.dialect)
            finally:
                self._rollback(raw)

    def _ready(self) -> Any:
        if self._raw is None or (self.postgres and self._raw.closed):
            self._close_raw()
            self._connect()
        return self._raw

    def _rollback(self, raw: Any) -> None:
        try:
            raw.execute("ROLLBACK")
        except Exception:  # the connection is gone or the transaction already ended
            if self.postgres and getattr(raw, "broken", False):
                self._close_raw()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            fault = classify(exc)
            if fault is None:
                raise
            if fault in (Fault.UNAVAILABLE, Fault.CORRUPT) and self.postgres:
                self._close_raw()  # a fresh connection next time (server restarted)
            raise StoreError(fault, f"ticket store {self.where}: {describe(exc)}") from exc

    # ---- schema version ----------------------------------------------------------------------

    def version(self, conn: Conn) -> int:
        if not self.postgres:
            return int(conn.scalar("PRAGMA user_version"))
        conn.script(
            "CREATE TABLE IF NOT EXISTS controlroom_meta (key TEXT PRIMARY KEY, value TEXT)"
        )
        value = conn.scalar("SELECT value FROM controlroom_meta WHERE key = 'schema'")
        return int(value) if value is not None else 0

    def set_version(self, conn: Conn, version: int) -> None:
        if not self.postgres:
            conn.execute(f"PRAGMA user_version = {int(version)}")
            return
        conn.execute(
            "INSERT INTO controlroom_meta(key, value) VALUES ('schema', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(version),),
        )


class TwoConnections:
    """A store's two connections to one database: ``db`` for writes (writers queue on the
    database's own lock) and one for reads, so a read (``/health``, the review API) never waits
    behind a writer stuck on a busy database. ``_create`` makes or migrates the store's tables,
    in the first write transaction (before the reader connects) and again after ``reopen``."""

    def __init__(self, target: str | Path, *, busy_timeout_s: float) -> None:
        self.db = Database(target, busy_timeout_s=busy_timeout_s)
        with self.db.transaction() as conn:
            self._create(conn)
        self._reader = Database(target, busy_timeout_s=busy_timeout_s)

    def _create(self, conn: Conn) -> None:
        raise NotImplementedError

    @property
    def location(self) -> str:
        """Where the store is, without a password (for logs and ``/health``)."""
        return self.db.where

    def close_db(self) -> None:
        self.db.close()
        self._reader.close()

    def reopen(self) -> None:
        """Fresh connections (after a server restart, or a corrupt file moved aside)."""
        self.db.reopen()
        self._reader.reopen()
        with self.db.transaction() as conn:
            self._create(conn)


# ---- errors ------------------------------------------------------------------------------------

_SQLITE_FAULTS = {
    5: Fault.BUSY,  # SQLITE_BUSY
    6: Fault.BUSY,  # SQLITE_LOCKED
    13: Fault.FULL,  # SQLITE_FULL
    10: Fault.IO,  # SQLITE_IOERR
    11: Fault.CORRUPT,  # SQLITE_CORRUPT
    26: Fault.CORRUPT,  # SQLITE_NOTADB
    8: Fault.READ_ONLY,  # SQLITE_READONLY
    3: Fault.READ_ONLY,  # SQLITE_PERM
    14: Fault.UNAVAILABLE,  # SQLITE_CANTOPEN
}


def classify(exc: BaseException) -> Fault | None:
    """The fault behind a driver or OS exception; None for anything else (a bug, a constraint
    the caller should have respected: not something to retry)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return _SQLITE_FAULTS.get(code & 0xFF)
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return Fault.BUSY
        return None
    if isinstance(exc, OSError):
        return Fault.FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else Fault.IO
    return _pg_fault(exc)


def _pg_fault(exc: BaseException) -> Fault | None:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if not isinstance(exc, psycopg.Error):
        return None
    state = exc.sqlstate or ""
    if state in ("55P03", "40001", "40P01", "57014"):
        return Fault.BUSY
    if state.startswith("53"):
        return Fault.FULL
    if state in ("XX001", "XX002"):
        return Fault.CORRUPT
    if state == "58030":
        return Fault.IO
    if state == "25006":
        return Fault.READ_ONLY
    if state.startswith(("08", "57P")) or (not state and isinstance(exc, psycopg.OperationalError)):
        return Fault.UNAVAILABLE
    return None


def describe(exc: BaseException) -> str:
    """One line: the driver's message without its multi-line context."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
