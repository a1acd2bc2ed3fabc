"""Operators are authenticated; the audit names whom the authentication says. Also the HTTP
body bound, and the uvicorn internals the peer-credential reading relies on."""

from __future__ import annotations

import os
import stat
from typing import Any

import httpx
import pytest
from alarm_data import ME, alert

from engine.auth.identity import check_operator_name, name_for_uid
from engine.auth.peer import check_uvicorn
from engine.auth.tokens import TokenRegistry
from engine.review_client import ApiError


def test_uvicorn_still_has_what_the_peer_credentials_rely_on() -> None:
    check_uvicorn()  # fails loudly, naming the file to fix, after an incompatible upgrade


def test_operator_names_cannot_carry_tricks() -> None:
    for bad in (
        "Alice",
        "a b",
        "x\nFORGED",
        "bob\u202e",
        "ze\u200bro",
        "agent-ticket",
        "mirror",
        "",
    ):
        with pytest.raises(ValueError):
            check_operator_name(bad)
    assert check_operator_name("alice.k-2") == "alice.k-2"
    assert name_for_uid(os.getuid()) == ME
    assert name_for_uid(2**31 - 7) == f"uid:{2**31 - 7}"


async def test_tcp_without_identity_is_refused_and_tokens_name_the_operator(
    make_review: Any, var: Any
) -> None:
    review = make_review()
    review.service.on_alert(alert("pump01-A1"))
    tcp = httpx.Client(base_url=review.url, timeout=10)
    assert tcp.get("/health").status_code == 200
    assert oct(stat.S_IMODE(os.stat(review.socket).st_mode)) == "0o660"
    assert review.url not in tcp.get("/health").json()["auth"]["socket"]
    for method, path, body in [
        ("GET", "/alarms", None),
        ("GET", "/tickets", None),
        ("GET", "/whoami", None),
        ("POST", "/alarms/ack", {"alarm_id": "pump01-A1"}),
        ("POST", "/review/approve", {"ticket_id": "T-0001", "who": "admin"}),
        ("POST", "/alarms/ack", {"not": "even valid"}),  # 401 before the body is judged
    ]:
        r = tcp.request(method, path, json=body)
        assert r.status_code == 401, (path, r.text)
        assert "no operator identity" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"
    for header in ("Bearer crt_not-a-token", "Basic YWRtaW46YWRtaW4=", "Bearer"):
        r = tcp.post(
            "/alarms/ack", json={"alarm_id": "pump01-A1"}, headers={"authorization": header}
        )
        assert r.status_code == 401, header
    health = tcp.get("/health").json()
    assert health["auth"]["refused"] == 9

    registry = TokenRegistry(var / "operators.json")
    token, path = registry.add("ana")
    assert stat.S_IMODE(os.stat(var / "operators.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert token not in (var / "operators.json").read_text()  # only its hash is kept
    async with review.tcp_client(token) as api:
        assert (await api.whoami()).operator == "ana"
        acked = await api.ack("pump01-A1", note="from the laptop")
        assert (acked.acknowledged_by, acked.history[-1].who) == ("ana", "ana")
    registry.remove("ana")  # revoked at once, no restart
    async with review.tcp_client(token) as api:
        with pytest.raises(ApiError, match="invalid or revoked") as err:
            await api.whoami()
        assert err.value.status == 401 and err.value.exit_code == 2


async def test_socket_identity_is_the_peer_whatever_the_request_says(make_review: Any) -> None:
    review = make_review()
    review.service.on_alert(alert("pump01-A1"))
    raw = httpx.Client(transport=httpx.HTTPTransport(uds=str(review.socket)), timeout=10)
    r = raw.get("http://review/whoami", headers={"x-forwarded-for": "10.0.0.1", "x-user": "admin"})
    assert r.json() == {"operator": ME, "via": "unix_socket"}
    r = raw.post("http://review/alarms/ack", json={"alarm_id": "pump01-A1", "who": "admin"})
    assert r.status_code == 422 and "who: not accepted" in r.json()["detail"]
    r = raw.post(
        "http://review/review/approve",
        json={"ticket_id": "T-0001", "note": "ok\u2066\n2026-12-01 agent-ticket approved"},
    )
    assert r.status_code == 422 and "U+2066" in r.json()["detail"]  # before any ticket lookup
    r = raw.post("http://review/alarms/ack", json={"alarm_id": "pump01-A1"})
    assert r.status_code == 200 and r.json()["acknowledged_by"] == ME


def test_request_bodies_are_bounded(make_review: Any, post_oversize: Any) -> None:
    """Refused with a Content-Length before a byte is read, or once a streamed body passes the
    limit. The service may close while the client still writes (a reset, not a 413): its own
    counter is the proof either way."""
    review = make_review()
    raw = httpx.Client(transport=httpx.HTTPTransport(uds=str(review.socket)), timeout=10)
    big = b'{"alarm_id": "' + b"x" * (300 * 1024) + b'"}'
    r = post_oversize(str(review.socket), "/alarms/ack", big)
    assert r.status in (413, None), r
    if r.status:
        assert "limit of 262144 bytes" in r.body.decode()
    chunks = [b'{"alarm_id": "', *(b"y" * 8192 for _ in range(64)), b'"}']
    r = post_oversize(str(review.socket), "/alarms/ack", iter(chunks))
    assert r.status in (413, None), r
    limits = review.service.body_limit.snapshot()
    assert (limits["max_body_bytes"], limits["bodies_refused"]) == (262144, 2)
    r = raw.post("http://review/alarms/ack", json={"alarm_id": "small"})
    assert r.status_code == 404  # a normal body still goes through
