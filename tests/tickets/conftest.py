"""Fixtures of the tickets area: a real store on each database the store supports.

- ``db_target``: where a store lives, parametrised: ``sqlite`` (a file under the test's tmp
  dir) and ``postgresql`` (a fresh schema on a private server this session starts with
  ``initdb`` + ``pg_ctl`` on a free port; skipped, with the reason, when the PostgreSQL binaries
  are not installed). Tests that use it run on both.
- ``store``: a ``TicketStore`` on ``db_target``.
  A module whose logic does not depend on the database narrows it with
  its own ``BACKENDS = ["sqlite"]``.
- ``pg_server``: the private PostgreSQL server itself (for tests that stop or lock it).
- ``clock``: a wall clock the test moves forward (mirror back-off without sleeping).
- ``events``: a list a mirror or service logs its event dicts into.
- ``mirror_of(connector, clock=None)``: a ``Mirror`` of ``store`` through ``connector``, logging
  into ``events``, on the test's ``clock`` unless another is given.
- ``github``, ``salesforce``: the fake server of that system (remotes.py), serving for the test.
- ``mirror``: ``mirror_of`` the default connector to the fake server the test uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_github import FakeGitHub
from fake_salesforce import FakeSalesforce
from pg_server import PostgresServer, pg_bin_dir
from remotes import REMOTES
from service_procs import LAUNCHED
from tickets_data import Clock, report

from engine.schemas import DiagnosisReport
from engine.tickets.connectors import TicketConnector
from engine.tickets.mirror import Mirror
from engine.tickets.store import TicketStore

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def _no_service_outlives_its_test() -> Iterator[None]:
    yield
    while LAUNCHED:
        LAUNCHED.pop().stop()


@pytest.fixture
def make_report() -> Callable[..., DiagnosisReport]:
    return report


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) not found: install postgresql "
            "(.ci/run does) or set CONTROLROOM_PG_BIN"
        )
    server = PostgresServer(bin_dir).start()
    yield server
    server.cleanup()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_target" in metafunc.fixturenames:
        backends = getattr(metafunc.module, "BACKENDS", BACKENDS)
        metafunc.parametrize("db_target", backends, indirect=True)


@pytest.fixture
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    if request.param == "sqlite":
        return tmp_path / "tickets.db"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.new_schema()


@pytest.fixture
def store(db_target: str | Path) -> Iterator[TicketStore]:
    s = TicketStore(db_target)
    yield s
    s.close_db()


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mirror_of(
    store: TicketStore, events: list[dict[str, Any]], clock: Clock
) -> Callable[..., Mirror]:
    def make(connector: TicketConnector, movable: Clock | None = None) -> Mirror:
        return Mirror(store, connector, origin="ticket", log=events.append, clock=movable or clock)

    return make


def _serving(name: str) -> Iterator[Any]:
    server = REMOTES[name].server().start()
    yield server
    server.stop()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    yield from _serving("github")


@pytest.fixture
def salesforce() -> Iterator[FakeSalesforce]:
    yield from _serving("salesforce")


@pytest.fixture
def mirror(request: pytest.FixtureRequest, mirror_of: Callable[..., Mirror]) -> Mirror:
    """The mirror most tests drive: the default connector to the fake server the test uses (its
    ``github`` or ``salesforce`` fixture), on the test's movable clock."""
    (name,) = [name for name in REMOTES if name in request.fixturenames]
    return mirror_of(REMOTES[name].connector(request.getfixturevalue(name)))
