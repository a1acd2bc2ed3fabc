"""The Salesforce connector and the mirror against a real local HTTP server that behaves like
Salesforce's token and Case endpoints: the round trip, session expiry, the API request limit,
validation errors, a Case deleted in Salesforce, the secret and tokens never leaking, and the
choice of one mirror at start. Bad credentials, a create that times out after it took effect
and an unreachable Salesforce are in test_mirror_remotes.py (the same cases for GitHub)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from remotes import CLIENT_ID, FIELD, SECRET, UPSERT, salesforce_connector
from service_procs import ROOT, service_env
from tickets_data import leak_surfaces, mirrored, report

from engine.bus.broker import free_port
from engine.services.ticket import mirror_connector
from engine.tickets.connectors import ConnectorError
from engine.tickets.github import GitHubIssuesConnector
from engine.tickets.salesforce import SalesforceCaseConnector, case_fields
from engine.tickets.store import PARKED

BACKENDS = ["sqlite"]  # the mirror logic does not depend on the database (conftest)


def test_tickets_are_mirrored_as_cases(store, salesforce, events, mirror) -> None:
    store.record_diagnosis(report(severity="high"))
    assert mirror.run_once() == 1
    t = store.get("T-0001")
    ext = t.external
    assert ext is not None and ext.system == "salesforce" and ext.error is None
    assert ext.url == f"{salesforce.url}/lightning/r/Case/{ext.id}/view"
    case = salesforce.cases[ext.id]
    assert case[FIELD] == "T-0001"
    assert case["Subject"] == "[T-0001] " + t.title
    assert t.body in case["Description"] and "Control Room ticket T-0001" in case["Description"]
    assert (case["Priority"], case["Status"], case["Origin"]) == ("High", "New", "Control Room")
    assert t.history[-1].action == "external"
    assert f"salesforce case #{ext.id} created" in t.history[-1].detail
    token_call, upsert = salesforce.requests[:2]
    assert token_call[:2] == ("POST", "/services/oauth2/token")
    assert upsert[:2] == ("PATCH", f"/services/data/v67.0{UPSERT}T-0001")
    assert upsert[2]["Authorization"] == f"Bearer {salesforce.tokens[0]}"
    assert FIELD not in salesforce.bodies[0], "the external id travels in the URL only"
    assert store.due_mirror_jobs() == [], "in sync: the queue is empty"
    outbox = store.pending_outbox("ticket")
    assert len(outbox) == 1 and ext.id in outbox[0][2], "the new link is announced"

    store.approve("T-0001", "ana")
    store.edit("T-0001", "ana", title="Replace DE bearing", severity="critical")
    assert mirror.run_once() == 1, "two changes, one coalesced update"
    assert case["Subject"] == "[T-0001] Replace DE bearing"
    assert (case["Priority"], case["Status"]) == ("High", "Working")
    assert "severity: critical" in case["Description"]

    store.close("T-0001", "ana", "false_positive", "valve was being stroked")
    mirror.run_once()
    assert case["Status"] == "Closed"
    assert "closed (false_positive): valve was being stroked" in case["Description"]
    assert len(salesforce.cases) == 1
    assert salesforce.count("PATCH", UPSERT) == 1
    assert salesforce.count("PATCH", f"/sobjects/Case/{ext.id}") == 2
    assert salesforce.count("POST", "/oauth2/token") == 1, "one token for the whole session"
    assert [e["event"] for e in events] == ["mirror_create", "mirror_update", "mirror_close"]


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("low", "Low"), ("medium", "Medium"), ("high", "High"), ("critical", "High")],
)
def test_priority_follows_severity(store, severity, priority) -> None:
    t = store.record_diagnosis(report(severity=severity)).ticket
    fields = case_fields(t)
    assert fields["Priority"] == priority and fields["Status"] == "New"
    assert len(fields["Subject"]) <= 255 and len(fields["Description"]) <= 32_000


def test_an_upsert_answered_without_a_body_is_looked_up(store, salesforce) -> None:
    salesforce.legacy_upsert = True  # 204 on an update through the upsert, as older versions do
    conn = salesforce_connector(salesforce)
    t = store.record_diagnosis(report()).ticket
    first = conn.create_case(t)
    again = conn.create_case(t, may_exist=True)
    assert again.id == first.id and len(salesforce.cases) == 1
    assert salesforce.count("GET", f"{UPSERT}T-0001") == 1


def test_an_expired_session_is_renewed_once(store, salesforce, events, mirror) -> None:
    case_id = mirrored(store, mirror).external.id
    salesforce.expire_tokens()
    store.approve("T-0001", "ana")
    assert mirror.run_once() == 1
    t = store.get("T-0001")
    assert t.external.error is None and salesforce.cases[case_id]["Status"] == "Working"
    assert len(salesforce.tokens) == 2
    assert salesforce.count("PATCH", f"/sobjects/Case/{case_id}") == 2, "401, then done"
    assert salesforce.requests[-1][2]["Authorization"] == f"Bearer {salesforce.tokens[1]}"
    assert mirror.paused_until == 0.0


def test_a_fresh_token_rejected_too_pauses_the_mirror(
    store, salesforce, events, mirror, clock
) -> None:
    salesforce.accept_sessions = False
    error = mirrored(store, mirror).external.error
    assert "401 [INVALID_SESSION_ID: Session expired or invalid]" in error
    assert "Run As user" in error
    assert len(salesforce.tokens) == 2, "re-authenticated once, not in a loop"
    assert mirror.paused_until >= clock() + 250


def test_request_limit_pauses_the_whole_mirror(store, salesforce, events, mirror, clock) -> None:
    limit = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    salesforce.fail("PATCH", 403, {}, limit)
    store.record_diagnosis(report())
    store.record_diagnosis(report(asset="pump02"))
    assert mirror.run_once() == 1, "the whole mirror stops at the first limit answer"
    assert 895 <= mirror.paused_until - clock() <= 901
    error = store.get("T-0001").external.error
    assert "REQUEST_LIMIT_EXCEEDED" in error and "api-usage=18/15000" in error
    clock.offset += 600
    assert mirror.run_once() == 0 and salesforce.count("PATCH") == 1, "nothing sent before"
    clock.offset += 301
    assert mirror.run_once() == 2
    assert len(salesforce.cases) == 2 and store.get("T-0001").external.error is None


def test_request_limit_honours_retry_after(store, salesforce, events, mirror, clock) -> None:
    limit = [
        {"message": "ConcurrentRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    salesforce.fail("PATCH", 403, {"Retry-After": "120"}, limit)
    mirrored(store, mirror)
    assert 115 <= mirror.paused_until - clock() <= 121


def test_400_is_kept_until_the_ticket_changes(store, salesforce, events, mirror, clock) -> None:
    salesforce.fail(
        "PATCH",
        400,
        {},
        [
            {
                "message": "Subject must name the asset",
                "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "fields": ["Subject"],
            }
        ],
    )
    error = mirrored(store, mirror).external.error
    assert "400 [FIELD_CUSTOM_VALIDATION_EXCEPTION: Subject must name the asset (Subject)]" in error
    assert "retried after the next edit" in error
    assert mirror.paused_until <= clock(), "only this ticket is affected"
    clock.offset += 86_400
    assert mirror.run_once() == 0 and salesforce.count("PATCH") == 1, "not retried as is"
    assert store.next_mirror_due() == PARKED
    store.edit("T-0001", "ana", title="pump01: bearing wear")
    assert mirror.run_once() == 1
    assert store.get("T-0001").external.id in salesforce.cases


def test_a_case_deleted_in_salesforce_keeps_the_local_ticket(
    store, salesforce, events, mirror, clock
) -> None:
    case_id = mirrored(store, mirror).external.id
    salesforce.delete(case_id)
    store.approve("T-0001", "ana")
    mirror.run_once()
    t = store.get("T-0001")
    assert t.state == "approved" and t.external.id == case_id
    assert "404 [ENTITY_IS_DELETED: entity is deleted]" in t.external.error
    assert "local ticket is kept" in t.external.error
    assert mirror.paused_until <= clock() and store.next_mirror_due() == PARKED
    assert salesforce.cases == {} and salesforce.count("PATCH", UPSERT) == 1, "not re-created"


def test_a_missing_external_id_field_is_a_configuration_error(
    store, salesforce, events, mirror_of, clock
) -> None:
    mirror = mirror_of(salesforce_connector(salesforce, field="Ticket_Ref__c"))
    error = mirrored(store, mirror).external.error
    assert "Provided external ID field does not exist or is not accessible" in error
    assert "Case field Ticket_Ref__c" in error
    assert mirror.paused_until >= clock() + 250


@pytest.mark.parametrize(
    ("where", "status", "headers", "body", "expect"),
    [
        (
            "PATCH",
            300,
            {},
            [
                "/services/data/v67.0/sobjects/Case/500Ka01",
                "/services/data/v67.0/sobjects/Case/500Ka02",
            ],
            ("validation", "ticket", None, False, "make ControlRoom_Ticket_Id__c Unique"),
        ),
        (
            "PATCH",
            302,
            {"Location": "https://acme.my.salesforce.com/x"},
            None,
            ("not_found", "global", 300.0, False, "My Domain URL"),
        ),
        (
            "PATCH",
            403,
            {},
            [{"message": "insufficient access", "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY"}],
            ("forbidden", "global", 300.0, False, "lacks permission"),
        ),
        (
            "PATCH",
            503,
            {},
            [{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}],
            ("server", "ticket", 60.0, True, "server error; retrying"),
        ),
        ("TOKEN", 503, {}, None, ("server", "ticket", 60.0, False, "token request: 503")),
    ],
)
def test_answers_are_classified(store, salesforce, where, status, headers, body, expect) -> None:
    text = expect[-1]
    salesforce.fail(where, status, headers, body)
    with pytest.raises(ConnectorError) as info:
        salesforce_connector(salesforce).create_case(store.record_diagnosis(report()).ticket)
    exc = info.value
    assert (exc.kind, exc.scope, exc.retry_after, exc.ambiguous) == expect[:4]
    assert text in exc.message


def test_secrets_never_appear_in_errors_logs_or_the_store(
    store, salesforce, events, caplog, mirror_of, clock
) -> None:
    caplog.set_level(logging.DEBUG)
    mirror = mirror_of(salesforce_connector(salesforce))
    mirrored(store, mirror)
    token = salesforce.tokens[0]
    # A hostile or buggy server echoing the credentials back must not get them stored or logged.
    salesforce.fail(
        "PATCH",
        400,
        {},
        [{"message": f"rejected Bearer {token} for {SECRET}", "errorCode": "INVALID_FIELD"}],
    )
    salesforce.fail(
        "PATCH", 500, {}, [{"message": quote_plus(SECRET), "errorCode": "UNKNOWN_EXCEPTION"}]
    )
    store.approve("T-0001", "ana")
    mirror.run_once()
    store.edit("T-0001", "ana", title="new title")
    mirror.run_once()
    salesforce.expire_tokens()
    salesforce.fail("TOKEN", 401, {}, {"error": "invalid_client", "error_description": SECRET})
    store.record_diagnosis(report(asset="pump08"))
    clock.offset += 3600
    mirror.run_once()
    bad = mirror_of(salesforce_connector(salesforce, secret=SECRET + "x"))
    mirrored(store, bad, asset="pump09")
    texts = leak_surfaces(store, events, caplog.text, mirror, bad)
    assert sum("***" in t for t in texts) >= 3, "the echoes were scrubbed"
    for text in texts:
        for secret in (SECRET, quote_plus(SECRET), SECRET + "x", *salesforce.tokens):
            assert secret not in text


def test_from_env() -> None:
    assert SalesforceCaseConnector.from_env({}) is None
    assert SalesforceCaseConnector.from_env({"SALESFORCE_API_VERSION": "66.0"}) is None
    url = "https://acme.my.salesforce.com"
    with pytest.raises(ValueError, match="SALESFORCE_CLIENT_SECRET is not") as info:
        SalesforceCaseConnector.from_env(
            {"SALESFORCE_INSTANCE_URL": url, "SALESFORCE_CLIENT_ID": CLIENT_ID}
        )
    assert "SALESFORCE_INSTANCE_URL and SALESFORCE_CLIENT_ID are set" in str(info.value)
    with pytest.raises(
        ValueError, match="SALESFORCE_INSTANCE_URL and SALESFORCE_CLIENT_ID are not"
    ):
        SalesforceCaseConnector.from_env({"SALESFORCE_CLIENT_SECRET": SECRET})
    full = {
        "SALESFORCE_INSTANCE_URL": url + "/",
        "SALESFORCE_CLIENT_ID": CLIENT_ID,
        "SALESFORCE_CLIENT_SECRET": SECRET,
    }
    for key, value, message in [
        ("SALESFORCE_INSTANCE_URL", "http://acme.my.salesforce.com", "must use https"),
        ("SALESFORCE_INSTANCE_URL", "acme.my.salesforce.com", "My Domain URL"),
        ("SALESFORCE_INSTANCE_URL", url + "/services/data", "My Domain URL"),
        ("SALESFORCE_API_VERSION", "62", "must look like 67.0"),
        ("SALESFORCE_EXTERNAL_ID_FIELD", "Ticket Id", "field API name"),
    ]:
        with pytest.raises(ValueError, match=message) as info:
            SalesforceCaseConnector.from_env({**full, key: value})
        assert SECRET not in str(info.value)
    c = SalesforceCaseConnector.from_env(full)
    assert c is not None and c.describe() == {
        "system": "salesforce",
        "instance": url,
        "api_version": "67.0",
        "external_id_field": FIELD,
    }
    c = SalesforceCaseConnector.from_env(
        {**full, "SALESFORCE_API_VERSION": "v66.0", "SALESFORCE_EXTERNAL_ID_FIELD": "Ref__c"}
    )
    assert c is not None and (c.api_version, c.external_id_field) == ("66.0", "Ref__c")


GITHUB_ENV = {"GITHUB_TOKEN": "ghp_SuperSecretToken1234567890", "GITHUB_REPO": "acme/plant"}
SALESFORCE_ENV = {
    "SALESFORCE_INSTANCE_URL": "https://acme.my.salesforce.com",
    "SALESFORCE_CLIENT_ID": CLIENT_ID,
    "SALESFORCE_CLIENT_SECRET": SECRET,
}


def test_the_environment_chooses_one_mirror() -> None:
    assert mirror_connector({}) is None
    assert isinstance(mirror_connector(GITHUB_ENV), GitHubIssuesConnector)
    assert isinstance(mirror_connector(SALESFORCE_ENV), SalesforceCaseConnector)
    with pytest.raises(ValueError, match="SALESFORCE_CLIENT_SECRET are not"):
        mirror_connector({**GITHUB_ENV, "SALESFORCE_INSTANCE_URL": "https://a.my.salesforce.com"})
    with pytest.raises(ValueError) as info:
        mirror_connector({**GITHUB_ENV, **SALESFORCE_ENV})
    message = str(info.value)
    for name in (*GITHUB_ENV, *SALESFORCE_ENV):
        assert name in message
    for value in (*GITHUB_ENV.values(), SECRET):
        assert value not in message


def test_both_mirrors_configured_stops_the_ticket_service_at_start(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = service_env(var, "mqtt://127.0.0.1:1", **GITHUB_ENV, **SALESFORCE_ENV)
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "serve", "ticket", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "controlroom serve ticket: both GitHub (GITHUB_TOKEN, GITHUB_REPO)" in proc.stderr
    assert "SALESFORCE_CLIENT_SECRET" in proc.stderr and SECRET not in proc.stderr
    assert not (var / "controlroom.db").exists(), "refused before the store was opened"
