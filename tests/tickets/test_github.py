"""The GitHub connector and the mirror against a real local HTTP server that behaves like
GitHub's issues endpoints: happy path, 401, 403 secondary/primary rate limits, 422, 410, 5xx, a
create that times out after it took effect, and the token never leaking."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_github import FakeGitHub
from tickets_data import leak_surfaces, report

from engine.tickets.github import GitHubIssuesConnector, marker
from engine.tickets.mirror import Mirror
from engine.tickets.store import PARKED

TOKEN = "ghp_SuperSecretToken1234567890"


BACKENDS = ["sqlite"]  # the mirror logic does not depend on the database (conftest)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    gh = FakeGitHub(TOKEN).start()
    yield gh
    gh.stop()


def connector(github: FakeGitHub, *, token: str = TOKEN, timeout_s: float = 5.0) -> Any:
    return GitHubIssuesConnector(
        token, github.repo, api_url=github.url, timeout_s=timeout_s, min_interval_s=0.0
    )


@pytest.fixture
def mirror(mirror_of: Any, github: FakeGitHub) -> Mirror:
    """The mirror most tests drive: default connector, the test's movable clock."""
    return mirror_of(connector(github))


def test_tickets_are_mirrored_as_issues(store, github, events, mirror) -> None:
    store.record_diagnosis(report(severity="high"))
    assert mirror.run_once() == 1
    t = store.get("T-0001")
    assert t.external is not None and t.external.system == "github"
    assert (t.external.id, t.external.url) == ("1", f"https://github.com/{github.repo}/issues/1")
    assert t.external.error is None
    assert t.history[-1].action == "external" and "#1 created" in t.history[-1].detail
    issue = github.issues[1]
    assert issue["title"] == "[T-0001] " + t.title
    assert marker("T-0001") in issue["body"] and t.body in issue["body"]
    assert {"controlroom", "priority:P2", "team:mechanical"} <= {x["name"] for x in issue["labels"]}
    _, _, headers = github.requests[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert headers["Accept"] == "application/vnd.github+json"
    assert store.due_mirror_jobs() == [], "in sync: the queue is empty"
    outbox = store.pending_outbox("ticket")
    assert len(outbox) == 1 and '"id":"1"' in outbox[0][2], "the new link is announced"

    store.approve("T-0001", "ana")
    store.edit("T-0001", "ana", title="Replace DE bearing")
    assert mirror.run_once() == 1, "two changes, one coalesced update"
    assert issue["title"] == "[T-0001] Replace DE bearing"
    assert "approved" in {x["name"] for x in issue["labels"]}

    store.close("T-0001", "ana", "false_positive", "valve was being stroked")
    mirror.run_once()
    assert (issue["state"], issue["state_reason"]) == ("closed", "not_planned")
    assert "closed:false_positive" in {x["name"] for x in issue["labels"]}
    assert "valve was being stroked" in issue["body"]
    assert github.count("POST") == 1 and github.count("PATCH") == 2
    assert [e["event"] for e in events] == ["mirror_create", "mirror_update", "mirror_close"]


def test_a_ticket_closed_before_it_was_mirrored_makes_no_issue(
    store, github, events, mirror
) -> None:
    store.record_diagnosis(report())
    store.close("T-0001", "ana", "duplicate")
    mirror.run_once()
    assert github.issues == {} and store.due_mirror_jobs() == []


def test_401_is_recorded_on_the_ticket_and_local_work_goes_on(
    store, github, events, mirror_of, clock
) -> None:
    mirror = mirror_of(connector(github, token="ghp_wrong_token_value"))
    store.record_diagnosis(report())
    mirror.run_once()
    t = store.get("T-0001")
    assert t.external is not None and t.external.id is None
    assert "401 Bad credentials" in t.external.error
    assert "GITHUB_TOKEN was rejected" in t.external.error
    assert mirror.paused_until >= clock() + 250, "a person must fix the token: long pause"
    # Local tickets are never held back: more diagnoses are stored while the mirror waits.
    store.record_diagnosis(report(asset="pump02"))
    store.record_diagnosis(report(asset="pump03"))
    assert mirror.run_once() == 0, "paused: nothing is sent"
    assert len(store.tickets()) == 3
    # The token is fixed (service restarted with the right one): the backlog catches up.
    fixed = mirror_of(connector(github))
    clock.offset += 301
    assert fixed.run_once() == 3
    assert sorted(int(t.external.id) for t in store.tickets()) == [1, 2, 3]
    assert all(t.external.error is None for t in store.tickets())


def test_secondary_rate_limit_honours_retry_after(store, github, events, mirror, clock) -> None:
    github.fail(
        "POST",
        403,
        {"retry-after": "120"},
        {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."},
    )
    store.record_diagnosis(report())
    store.record_diagnosis(report(asset="pump02"))
    assert mirror.run_once() == 1, "the whole mirror stops at the first rate-limit answer"
    assert 115 <= mirror.paused_until - clock() <= 121
    assert "retry after 120 s" in store.get("T-0001").external.error
    clock.offset += 60
    assert mirror.run_once() == 0 and github.count("POST") == 1, "nothing sent before the time"
    clock.offset += 61
    assert mirror.run_once() == 2
    assert len(github.issues) == 2
    assert store.get("T-0001").external.error is None


def test_primary_rate_limit_waits_for_reset(store, github, events, mirror, clock) -> None:
    reset = int(time.time()) + 500
    github.fail(
        "POST",
        403,
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        {"message": "API rate limit exceeded for user ID 1."},
    )
    store.record_diagnosis(report())
    mirror.run_once()
    assert reset - 2 <= mirror.paused_until <= reset + 3
    assert "primary rate limit" in store.get("T-0001").external.error


def test_secondary_rate_limit_without_headers_waits_a_minute_then_longer(
    store, github, events, mirror, clock
) -> None:
    body = {"message": "You have exceeded a secondary rate limit."}
    github.fail("POST", 429, {}, body)
    github.fail("POST", 429, {}, body)
    store.record_diagnosis(report())
    mirror.run_once()
    assert 59 <= mirror.paused_until - clock() <= 61
    clock.offset += 61
    mirror.run_once()
    assert 119 <= mirror.paused_until - clock() <= 121, "exponential on repeated limits"


def test_422_is_kept_until_the_ticket_changes(store, github, events, mirror, clock) -> None:
    github.fail(
        "POST",
        422,
        {},
        {
            "message": "Validation Failed",
            "errors": [{"resource": "Label", "code": "invalid", "field": "name"}],
        },
    )
    store.record_diagnosis(report())
    mirror.run_once()
    t = store.get("T-0001")
    assert "422 Validation Failed [Label name invalid]" in t.external.error
    assert "retried after the next edit" in t.external.error
    assert mirror.paused_until <= clock(), "only this ticket is affected"
    clock.offset += 86_400
    assert mirror.run_once() == 0 and github.count("POST") == 1, "not retried as is"
    assert store.next_mirror_due() == PARKED
    store.edit("T-0001", "ana", labels=["controlroom", "mechanical"])
    assert mirror.run_once() == 1
    assert store.get("T-0001").external.id == "1"


def test_410_on_update_keeps_the_local_ticket(store, github, events, mirror) -> None:
    store.record_diagnosis(report())
    mirror.run_once()
    github.fail("PATCH", 410, {}, {"message": "This issue was deleted"})
    store.approve("T-0001", "ana")
    mirror.run_once()
    t = store.get("T-0001")
    assert t.state == "approved" and t.external.id == "1"
    assert "410 This issue was deleted" in t.external.error


def test_404_names_the_repository(store, github, events, mirror) -> None:
    github.fail("POST", 404, {}, {"message": "Not Found"})
    store.record_diagnosis(report())
    mirror.run_once()
    assert "repository acme/plant not found" in store.get("T-0001").external.error


def test_a_timed_out_create_never_makes_a_second_issue(
    store, github, events, mirror_of, clock
) -> None:
    mirror = mirror_of(connector(github, timeout_s=0.5))
    github.hang_next_create()
    store.record_diagnosis(report())
    mirror.run_once()
    t = store.get("T-0001")
    assert "timed out" in t.external.error and t.external.id is None
    assert len(github.issues) == 1, "the server made the issue; the answer never came"
    github.release.set()
    clock.offset += 3600
    mirror.run_once()
    t = store.get("T-0001")
    assert t.external.id == "1" and t.external.error is None
    assert len(github.issues) == 1 and github.count("POST") == 1, "found by marker, not re-sent"
    assert github.count("GET") == 1


def test_a_5xx_create_is_retried_after_a_lookup(store, github, events, mirror, clock) -> None:
    github.fail("POST", 502, {}, {"message": "Server Error"})
    store.record_diagnosis(report())
    mirror.run_once()
    assert "502" in store.get("T-0001").external.error
    clock.offset += 120
    mirror.run_once()
    assert github.count("GET") == 1 and github.count("POST") == 2
    assert len(github.issues) == 1 and store.get("T-0001").external.id == "1"


def test_unreachable_github_is_retried_with_backoff(store, events, mirror_of, clock) -> None:
    gh = FakeGitHub(TOKEN)  # bound but never serving: connections are refused or time out
    gh.server.server_close()
    mirror = mirror_of(connector(gh, timeout_s=1.0))
    store.record_diagnosis(report())
    mirror.run_once()
    job = store.due_mirror_jobs(clock() + 31)[0]
    assert job.attempts == 1 and not job.create_attempted, "refused: nothing reached GitHub"
    assert "failed: ConnectError" in store.get("T-0001").external.error


def test_the_token_never_appears_in_errors_logs_or_the_store(
    store, github, events, caplog, mirror_of, clock
) -> None:
    caplog.set_level(logging.DEBUG)
    mirror = mirror_of(connector(github))
    # A hostile or buggy server echoing the credential back must not get it stored or logged.
    github.fail("POST", 422, {}, {"message": f"Validation Failed for Bearer {TOKEN}"})
    github.fail("PATCH", 500, {}, {"message": TOKEN})
    store.record_diagnosis(report())
    mirror.run_once()
    store.edit("T-0001", "ana", title="new title")
    mirror.run_once()
    store.approve("T-0001", "ana")
    clock.offset += 3600
    mirror.run_once()
    bad = mirror_of(connector(github, token=TOKEN + "x"))
    store.record_diagnosis(report(asset="pump09"))
    bad.run_once()
    texts = leak_surfaces(store, events, caplog.text, mirror, bad)
    assert any("***" in t for t in texts), "the echoed token was scrubbed"
    for text in texts:
        assert TOKEN not in text


def test_from_env() -> None:
    assert GitHubIssuesConnector.from_env({}) is None
    with pytest.raises(ValueError, match="GITHUB_TOKEN is not"):
        GitHubIssuesConnector.from_env({"GITHUB_REPO": "a/b"})
    with pytest.raises(ValueError, match="GITHUB_REPO is not") as info:
        GitHubIssuesConnector.from_env({"GITHUB_TOKEN": TOKEN})
    assert TOKEN not in str(info.value)
    with pytest.raises(ValueError, match="owner/name"):
        GitHubIssuesConnector.from_env({"GITHUB_TOKEN": TOKEN, "GITHUB_REPO": "nope"})
    c = GitHubIssuesConnector.from_env(
        {"GITHUB_TOKEN": TOKEN, "GITHUB_REPO": "a/b", "GITHUB_API_URL": "http://h:1/api/v3/"}
    )
    assert c is not None and c.describe() == {
        "system": "github",
        "repo": "a/b",
        "api": "http://h:1/api/v3",
    }
