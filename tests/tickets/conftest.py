"""Fixtures of the tickets area: a real SQLite store under the test's tmp dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tickets_data import report

from engine.schemas import DiagnosisReport
from engine.tickets.store import TicketStore


@pytest.fixture
def make_report() -> Callable[..., DiagnosisReport]:
    return report


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TicketStore]:
    s = TicketStore(tmp_path / "tickets.db")
    yield s
    s.close_db()
