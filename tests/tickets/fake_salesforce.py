"""A real HTTP server on loopback that behaves like the parts of Salesforce the connector uses.

- ``POST /services/oauth2/token``: the client credentials flow; issues a new access token per
  request, or answers 400 ``invalid_client`` as Salesforce does for a wrong key or secret.
- ``PATCH /services/data/vXX.X/sobjects/Case/{ExtField}/{value}``: upsert by external ID; 201
  ``{id, success, errors, created: true}`` when it creates, 200 ``created: false`` when it updates
  (or 204 with no body, as older API versions do, after ``legacy_upsert = True``); 404 when the
  field is not the org's external ID field; 400 when the body names the external ID field.
- ``PATCH .../sobjects/Case/{Id}``: update, 204; 404 ``ENTITY_IS_DELETED`` after
  :meth:`FakeSalesforce.delete`.
- ``GET .../sobjects/Case/{ExtField}/{value}``: the Case by external ID.

Every data call checks the bearer token (401 ``INVALID_SESSION_ID`` otherwise, as after a session
expired: :meth:`expire_tokens`). Picklists and field lengths are checked like a default org's.
Scripted faults: ``fail(method, status, headers, body)`` answers the next matching request
("TOKEN" for the token endpoint) with that error; ``hang_next_create()`` creates the Case but
holds the answer back until the test releases it (a create that times out on the client after
it took effect on the server).
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from fake_http import FakeServer, JsonHandler

CASE_FIELDS = {"Subject", "Description", "Priority", "Status", "Origin"}
PICKLISTS = {
    "Priority": {"High", "Medium", "Low"},
    "Status": {"New", "Working", "Escalated", "Closed"},
}
LENGTHS = {"Subject": 255, "Description": 32_000, "Origin": 255}


def _error(code: str, message: str, field_name: str | None = None) -> list[dict[str, Any]]:
    """Salesforce's error body: a list of ``{message, errorCode, fields}``."""
    return [{"message": message, "errorCode": code, "fields": [field_name] if field_name else []}]


class FakeSalesforce(FakeServer):
    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        api_version: str = "67.0",
        external_id_field: str = "ControlRoom_Ticket_Id__c",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_version = api_version
        self.external_id_field = external_id_field
        self.cases: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.tokens: list[str] = []
        """Every token issued, oldest first."""
        self.valid_tokens: set[str] = set()
        self.bodies: list[Any] = []
        self.legacy_upsert = False
        self.accept_sessions = True
        """False: every data call answers 401, even with a fresh token (a Run As user that was
        deactivated or lost API access)."""
        self._ids = itertools.count(1)
        super().__init__()

    def expire_tokens(self) -> None:
        """Every session ends (timeout, revoked): the next data call answers 401."""
        self.valid_tokens.clear()

    def delete(self, case_id: str) -> None:
        self.cases.pop(case_id)
        self.deleted.add(case_id)

    def count(self, method: str, part: str = "") -> int:
        return sum(1 for m, p, _ in self.requests if m == method and part in p)

    def by_ticket(self, ticket_id: str) -> dict[str, Any]:
        (case,) = [c for c in self.cases.values() if c[self.external_id_field] == ticket_id]
        return case

    # ---- the handler -------------------------------------------------------------------------

    def _handler(self) -> type[JsonHandler]:
        sf = self

        class Handler(JsonHandler):
            content_type = "application/json;charset=UTF-8"
            extra_headers: ClassVar[dict[str, str]] = {"Sforce-Limit-Info": "api-usage=18/15000"}

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sf.requests.append((method, parts.path, dict(self.headers)))
                if parts.path == "/services/oauth2/token" and method == "POST":
                    return self._token(parse_qs(raw.decode()))
                payload = json.loads(raw) if raw else None
                sf.bodies.append(payload)
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token not in sf.valid_tokens or not sf.accept_sessions:
                    return self._send(
                        401,
                        [
                            {
                                "message": "Session expired or invalid",
                                "errorCode": "INVALID_SESSION_ID",
                            }
                        ],
                    )
                if self._scripted(sf.take_fault(method)):
                    return None
                base = f"/services/data/v{sf.api_version}/sobjects/Case/"
                if not parts.path.startswith(base):
                    return self._not_found()
                rest = [unquote(p) for p in parts.path.removeprefix(base).split("/")]
                if len(rest) == 2 and method == "PATCH":
                    return self._upsert(rest[0], rest[1], payload)
                if len(rest) == 2 and method == "GET":
                    return self._get_by_external_id(rest[0], rest[1])
                if len(rest) == 1 and method == "PATCH":
                    return self._update(rest[0], payload)
                return self._not_found()

            def _not_found(self, code: str = "NOT_FOUND", message: str = "") -> None:
                message = message or "The requested resource does not exist"
                self._send(404, [{"errorCode": code, "message": message}])

            def _token(self, form: dict[str, list[str]]) -> None:
                if self._scripted(sf.take_fault("TOKEN")):
                    return None
                if form.get("grant_type") != ["client_credentials"]:
                    return self._send(400, {"error": "unsupported_grant_type"})
                if form.get("client_id") != [sf.client_id]:
                    return self._send(
                        400,
                        {
                            "error": "invalid_client_id",
                            "error_description": "client identifier invalid",
                        },
                    )
                if form.get("client_secret") != [sf.client_secret]:
                    return self._send(
                        400,
                        {
                            "error": "invalid_client",
                            "error_description": "invalid client credentials",
                        },
                    )
                token = f"00DKa0000000001!AQ{secrets.token_urlsafe(32)}"
                with sf._lock:
                    sf.tokens.append(token)
                    sf.valid_tokens.add(token)
                self._send(
                    200,
                    {
                        "access_token": token,
                        "signature": "c2lnbmF0dXJl",
                        "scope": "api",
                        "instance_url": sf.url,
                        "id": f"{sf.url}/id/00DKa0000000001/005Ka0000000001",
                        "token_type": "Bearer",
                        "issued_at": "1795000000000",
                    },
                )

            def _invalid(self, payload: Any, *, upsert: bool) -> list | None:
                """Salesforce's 400 body for what a default org would reject, else None."""
                if not isinstance(payload, dict):
                    return _error("JSON_PARSER_ERROR", "not a JSON object")
                for key, value in payload.items():
                    if key == sf.external_id_field and upsert:
                        return _error("INVALID_FIELD", f"{key} is the external ID", key)
                    if key not in CASE_FIELDS | {sf.external_id_field}:
                        return _error("INVALID_FIELD", f"No such column '{key}' on Case", key)
                    if key in PICKLISTS and value not in PICKLISTS[key]:
                        return _error(
                            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                            f"{key}: bad value for restricted picklist field: {value}",
                            key,
                        )
                    if len(str(value)) > LENGTHS.get(key, 10**6):
                        return _error(
                            "STRING_TOO_LONG",
                            f"{key}: data value too large (max length={LENGTHS[key]})",
                            key,
                        )
                return None

            def _upsert(self, ext_field: str, value: str, payload: Any) -> None:
                if ext_field != sf.external_id_field:
                    return self._not_found(
                        message=f"Provided external ID field does not exist or is not accessible: "
                        f"{ext_field}"
                    )
                problem = self._invalid(payload, upsert=True)
                if problem:
                    return self._send(400, problem)
                with sf._lock:
                    existing = [i for i, c in sf.cases.items() if c[ext_field] == value]
                    if existing:
                        case_id = existing[0]
                        sf.cases[case_id].update(payload)
                        created = False
                    else:
                        case_id = f"500Ka{next(sf._ids):010d}AAA"
                        sf.cases[case_id] = {"Id": case_id, ext_field: value, **payload}
                        created = True
                if created:
                    sf.hold_if_hanging()
                if not created and sf.legacy_upsert:
                    return self._send(204, None)
                result = {"id": case_id, "success": True, "errors": [], "created": created}
                self._send(201 if created else 200, result)

            def _update(self, case_id: str, payload: Any) -> None:
                if case_id in sf.deleted:
                    return self._not_found("ENTITY_IS_DELETED", "entity is deleted")
                if case_id not in sf.cases:
                    return self._not_found()
                problem = self._invalid(payload, upsert=False)
                if problem:
                    return self._send(400, problem)
                sf.cases[case_id].update(payload)
                self._send(204, None)

            def _get_by_external_id(self, ext_field: str, value: str) -> None:
                found = [c for c in sf.cases.values() if c.get(ext_field) == value]
                if ext_field != sf.external_id_field or not found:
                    return self._not_found()
                case = found[0]
                self._send(200, {"attributes": {"type": "Case"}, "Id": case["Id"]})

        return Handler
