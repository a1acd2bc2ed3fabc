"""Another process holding a store's database: the write lock taken by a real second process
(SQLite ``BEGIN EXCLUSIVE``, PostgreSQL ``LOCK TABLE``) until the test's block ends. Shared by
the ticket service's and the review service's store-fault tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

HOLD_SQLITE = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
c.execute("ROLLBACK")
"""

HOLD_POSTGRES = """
import psycopg, sys
c = psycopg.connect(sys.argv[1], autocommit=True)
c.execute("BEGIN")
c.execute("LOCK TABLE diagnoses IN EXCLUSIVE MODE")
print("locked", flush=True)
sys.stdin.readline()
c.execute("ROLLBACK")
"""


@contextlib.contextmanager
def lock_held(db_target: str | Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the store's write lock until the block ends."""
    script = HOLD_SQLITE if isinstance(db_target, Path) else HOLD_POSTGRES
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(db_target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        assert holder.stdin is not None
        holder.stdin.write("release\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
