"""The GitHub connector and the mirror against a real local HTTP server that behaves like
GitHub's issues endpoints: happy path, 403 secondary/primary rate limits, 422, 410, 404, 5xx,
and the token never leaking. A bad token, a create that times out after it took effect and an
unreachable GitHub are in test_mirror_remotes.py (the same cases for Salesforce)."""

from __future__ import annotations

import logging
import time

import pytest
from remotes import TOKEN, github_connector
from tickets_data import leak_surfaces, mirrored, report

from engine.tickets.github import GitHubIssuesConnector, marker
from engine.tickets.store import PARKED

BACKENDS = ["sqlite"]  # the mirror logic does not depend on the database (conftest)


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
    assert issue["body"].endswith(marker("T-0001", github_connector(github)._tag("T-0001")))
    assert t.body in issue["body"]
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
    mirrored(store, mirror)
    assert reset - 2 <= mirror.paused_until <= reset + 3
    assert "primary rate limit" in store.get("T-0001").external.error


def test_secondary_rate_limit_without_headers_waits_a_minute_then_longer(
    store, github, events, mirror, clock
) -> None:
    body = {"message": "You have exceeded a secondary rate limit."}
    github.fail("POST", 429, {}, body)
    github.fail("POST", 429, {}, body)
    mirrored(store, mirror)
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
    t = mirrored(store, mirror)
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
    mirrored(store, mirror)
    github.fail("PATCH", 410, {}, {"message": "This issue was deleted"})
    store.approve("T-0001", "ana")
    mirror.run_once()
    t = store.get("T-0001")
    assert t.state == "approved" and t.external.id == "1"
    assert "410 This issue was deleted" in t.external.error


def test_404_names_the_repository(store, github, events, mirror) -> None:
    github.fail("POST", 404, {}, {"message": "Not Found"})
    mirrored(store, mirror)
    assert "repository acme/plant not found" in store.get("T-0001").external.error


def test_a_5xx_create_is_retried_after_a_lookup(store, github, events, mirror, clock) -> None:
    github.fail("POST", 502, {}, {"message": "Server Error"})
    mirrored(store, mirror)
    assert "502" in store.get("T-0001").external.error
    clock.offset += 120
    mirror.run_once()
    assert github.count("GET") == 1 and github.count("POST") == 2
    assert len(github.issues) == 1 and store.get("T-0001").external.id == "1"


def test_the_token_never_appears_in_errors_logs_or_the_store(
    store, github, events, caplog, mirror_of, clock
) -> None:
    caplog.set_level(logging.DEBUG)
    mirror = mirror_of(github_connector(github))
    # A hostile or buggy server echoing the credential back must not get it stored or logged.
    github.fail("POST", 422, {}, {"message": f"Validation Failed for Bearer {TOKEN}"})
    github.fail("PATCH", 500, {}, {"message": TOKEN})
    mirrored(store, mirror)
    store.edit("T-0001", "ana", title="new title")
    mirror.run_once()
    store.approve("T-0001", "ana")
    clock.offset += 3600
    mirror.run_once()
    bad = mirror_of(github_connector(github, token=TOKEN + "x"))
    mirrored(store, bad, asset="pump09")
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


def test_a_retried_create_adopts_only_its_own_issue(store, github) -> None:
    """A create whose answer was lost looks for the issue it may have made. Anyone who may open
    issues on the repository (a public one: anyone) could plant one ending with the marker of a
    ticket to come (ids are sequential), and another ticket's body may quote a marker: the
    retry adopted the newest issue holding the marker anywhere, so the ticket was mirrored to
    (and its updates written over) an issue not its own. Only the issue ending with the
    ticket's tagged marker is adopted, the oldest if someone copied it after seeing it."""
    conn = github_connector(github)
    t = store.record_diagnosis(report()).ticket
    tagged = marker("T-0001", conn._tag("T-0001"))
    planted = {
        "untagged, as before": f"Pump down!\n\n{marker('T-0001')}",
        "quoted in another ticket's body": f"see {tagged}\n---\n{marker('T-0002')}",
    }
    for n, body in enumerate(planted.values(), 1):
        github.issues[n] = {"number": n, "title": "x", "body": body, "labels": [],
                            "state": "open", "state_reason": None}  # fmt: skip
    ref = conn.create_case(t, may_exist=True)
    assert ref.id == "3" and github.count("POST") == 1, "nothing planted was adopted"
    github.issues[4] = {**github.issues[3], "number": 4}  # a copy, made after seeing ours
    assert conn.create_case(t, may_exist=True).id == "3"
    assert github.count("POST") == 1
