"""The review service when its store fails (issue 12 item 7), against real parts: the real
service on loopback, a real SQLite file held by another process or with its pages overwritten.
Reads answer 503 with the reason instead of a 500, and ``/health`` turns ``degraded`` (503)
naming the fault until the store can write again."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from db_faults import lock_held
from probes import http

from engine.review_client import ApiError


def health(url: str) -> tuple[int, dict[str, Any]]:
    r = http.get(url + "/health", timeout=5.0)
    return r.status_code, r.json()


def test_health_degraded_while_another_process_holds_the_store(
    make_review: Any, var: Path, wait_for: Any
) -> None:
    review = make_review(CONTROLROOM_DB_BUSY_TIMEOUT_S="0.2")
    assert health(review.url)[0] == 200

    def degraded() -> str | None:
        status, body = health(review.url)
        found = [r for r in body["reasons"] if "cannot write (busy)" in r]
        return found[0] if status == 503 and body["status"] == "degraded" and found else None

    with lock_held(var / "controlroom.db"):
        reason = wait_for(
            degraded, timeout=20, what="/health degraded while the store is held", interval=0.1
        )
        assert "ticket store" in reason
    wait_for(
        lambda: health(review.url)[0] == 200,
        timeout=20,
        what="/health ok once the lock is released",
        interval=0.1,
    )


async def test_reads_of_a_corrupt_store_are_503_not_500(
    make_review: Any, var: Path, wait_for: Any
) -> None:
    review = make_review(CONTROLROOM_DB_BUSY_TIMEOUT_S="0.2")
    db = var / "controlroom.db"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    with db.open("r+b") as f:  # every page but the header overwritten, as a failing disk would
        f.seek(4096)
        f.write(bytes((i * 131 + 7) % 256 for i in range(size - 4096)))
    async with review.client() as api:
        for call in (api.tickets, lambda: api.ticket("T-0001")):
            with pytest.raises(ApiError) as err:
                await call()
            assert err.value.status == 503 and "unavailable" in err.value.detail

    def degraded() -> dict[str, Any] | None:
        status, body = health(review.url)
        return body if status == 503 else None

    body = wait_for(degraded, timeout=20, what="/health degraded on a corrupt store", interval=0.1)
    assert any("cannot write (corrupt)" in r for r in body["reasons"]), body["reasons"]
