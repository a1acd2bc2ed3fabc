"""What the mirror does whatever the remote system, against the fake GitHub and the fake
Salesforce alike (remotes.py says what differs): a create whose answer is lost never makes a
second record, bad credentials pause the mirror while local work goes on, an unreachable system
is retried with back-off. Each system's own round trip and answers are in test_github.py and
test_salesforce.py."""

from __future__ import annotations

from typing import Any

import pytest
from remotes import REMOTES, Remote
from tickets_data import mirrored, report

BACKENDS = ["sqlite"]  # the mirror logic does not depend on the database (conftest)


@pytest.fixture(params=sorted(REMOTES))
def remote(request: pytest.FixtureRequest) -> Remote:
    return REMOTES[request.param]


@pytest.fixture
def server(remote: Remote, request: pytest.FixtureRequest) -> Any:
    """The remote's fake server (its ``github`` or ``salesforce`` fixture), serving for the test."""
    return request.getfixturevalue(remote.name)


def test_a_timed_out_create_never_makes_a_second_record(
    remote, server, store, mirror_of, clock
) -> None:
    mirror = mirror_of(remote.connector(server, timeout_s=0.5))
    server.hang_next_create()
    t = mirrored(store, mirror)
    assert "timed out" in t.external.error and t.external.id is None
    assert len(remote.records(server)) == 1, "the server made it; the answer never came"
    (job,) = store.due_mirror_jobs(clock() + 3600)
    assert job.create_attempted, "recorded as possibly done"
    server.release.set()
    clock.offset += 3600
    mirror.run_once()
    t = store.get("T-0001")
    (record_id,) = remote.records(server)
    assert t.external.id == str(record_id) and t.external.error is None
    creates, lookups = remote.after_a_lost_answer
    assert (remote.creates(server), remote.lookups(server)) == (creates, lookups)


def test_bad_credentials_pause_the_mirror_and_local_work_goes_on(
    remote, server, store, mirror_of, clock
) -> None:
    mirror = mirror_of(remote.connector(server, **remote.bad_credentials))
    t = mirrored(store, mirror)
    assert t.external is not None and t.external.id is None
    for text in remote.bad_credentials_say:
        assert text in t.external.error
    assert mirror.paused_until >= clock() + 250, "a person must fix the credentials: long pause"
    assert remote.creates(server) == remote.sent_with_bad_credentials
    # Local tickets are never held back: more diagnoses are stored while the mirror waits.
    store.record_diagnosis(report(asset="pump02"))
    store.record_diagnosis(report(asset="pump03"))
    assert mirror.run_once() == 0, "paused: nothing is sent"
    assert len(store.tickets()) == 3
    # The credentials are fixed (service restarted with the right ones): the backlog catches up.
    fixed = mirror_of(remote.connector(server))
    clock.offset += 301
    assert fixed.run_once() == 3
    assert sorted(t.external.id for t in store.tickets()) == sorted(
        str(i) for i in remote.records(server)
    )
    assert all(t.external.error is None for t in store.tickets())


def test_an_unreachable_remote_is_retried_with_backoff(remote, store, mirror_of, clock) -> None:
    server = remote.server()  # bound but never serving: connections are refused or time out
    server.server.server_close()
    mirror = mirror_of(remote.connector(server, timeout_s=1.0))
    mirrored(store, mirror)
    (job,) = store.due_mirror_jobs(clock() + 31)
    assert job.attempts == 1 and not job.create_attempted, "refused: nothing reached it"
    assert remote.unreachable_says in store.get("T-0001").external.error
