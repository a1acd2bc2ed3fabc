"""Mirror tickets as Salesforce Cases over the REST API (httpx).

Configuration (environment or ``.env``): ``SALESFORCE_INSTANCE_URL`` (the org's My Domain URL,
e.g. ``https://acme.my.salesforce.com``), ``SALESFORCE_CLIENT_ID`` and
``SALESFORCE_CLIENT_SECRET`` (the consumer key and secret of an external client app or connected
app with the client credentials flow enabled and a Run As user), ``SALESFORCE_API_VERSION``
(default :data:`DEFAULT_API_VERSION`), ``SALESFORCE_EXTERNAL_ID_FIELD`` (default
``ControlRoom_Ticket_Id__c``: a Text field on Case that an admin marks *External ID* and
*Unique*).

Authentication is the OAuth 2.0 client credentials flow: ``POST /services/oauth2/token`` on the My
Domain URL. The token response states no expiry (the org's session settings decide), so the token
is kept until an API call answers 401 ``INVALID_SESSION_ID``; the connector then fetches a new one
once and repeats the call.

Creates are idempotent by construction: a Case is created with an *upsert by external ID*
(``PATCH /sobjects/Case/{field}/{ticket_id}``), which updates the Case already holding that ticket
id instead of making a second one. A create that timed out after it took effect is therefore
simply sent again; no lookup is needed. Updates and closes ``PATCH`` the Case by its Id, so a Case
deleted in Salesforce answers 404 instead of being silently re-created.

Errors are classified as the REST API Developer Guide documents them ("Status Codes and Error
Responses"; the body is a list of ``{message, errorCode, fields}``):

- 400: Salesforce rejected the content (validation rule, picklist value, field length): only this
  ticket, not retried until it changes.
- 401 once more after a fresh token, or the token request refused: bad credentials or app set-up;
  403 other than the limit: the Run As user lacks a permission; 404 on a create: the object, the
  external ID field or the API version is not there. A person has to fix these: the mirror pauses.
- 403 ``REQUEST_LIMIT_EXCEEDED``: the org's API allocation (24-hour rolling) or its concurrent
  long-request limit is used up: the mirror pauses 15 minutes (or ``Retry-After``, if sent).
- 404 on an update (the Case was deleted, or the Run As user can no longer see it): only this
  ticket; the local ticket is kept and no new Case is made.
- 300 on a create: several Cases hold this ticket id (the field is not Unique).
- Timeouts, dropped connections and 5xx: retried with backoff; harmless for a create (above).

The client secret goes only into the token request's form body and the access token only into the
Authorization header; every message this module produces passes through
:meth:`SalesforceCaseConnector._scrub`, so neither reaches a log, an exception or the store, even
if a server echoed them back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from engine.http_answer import NotJson, json_of
from engine.schemas import ExternalRef, Ticket, utc_now
from engine.tickets.connectors import ConnectorError, ErrorKind, header_seconds
from engine.tickets.rest_connector import CONFIG_RETRY_S, RestConnector, state_line

__all__ = ["CONFIG_RETRY_S", "SalesforceCaseConnector", "case_description", "case_fields"]

DEFAULT_API_VERSION = "67.0"
"""Summer '26, which every org runs; Winter '27 (68.0) reaches orgs in stages."""
DEFAULT_EXTERNAL_ID_FIELD = "ControlRoom_Ticket_Id__c"
LIMIT_RETRY_S = 900.0
"""Pause after REQUEST_LIMIT_EXCEEDED. The daily allocation is a rolling 24-hour window, so calls
come back gradually; a quarter of an hour keeps a blocked mirror from eating what frees up."""

SUBJECT_MAX = 255
DESCRIPTION_MAX = 32_000
ORIGIN = "Control Room"

PRIORITY = {"low": "Low", "medium": "Medium", "high": "High", "critical": "High"}
"""Case.Priority ships with High/Medium/Low only; "critical" stays visible in the description."""
STATUS = {"open": "New", "approved": "Working", "closed": "Closed"}
"""Values of the default Case.Status picklist; "Closed" is the one marked closed."""

ENV_REQUIRED = ("SALESFORCE_INSTANCE_URL", "SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET")

_VERSION_RE = re.compile(r"^\d{2,3}\.0$")
_FIELD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def case_description(ticket: Ticket) -> str:
    """The work order plus a footer with what the Case's own fields cannot hold (the ticket id,
    a critical severity, the close reason and note)."""
    footer = (
        f"Control Room ticket {ticket.ticket_id} · severity: {ticket.severity} · "
        f"state: {state_line(ticket)}"
    )
    return f"{ticket.body}\n\n---\n{footer}"[:DESCRIPTION_MAX]


def case_fields(ticket: Ticket) -> dict[str, str]:
    """The Case fields that follow the ticket on every sync (the local ticket is the truth)."""
    return {
        "Subject": f"[{ticket.ticket_id}] {ticket.title}"[:SUBJECT_MAX],
        "Description": case_description(ticket),
        "Priority": PRIORITY[ticket.severity],
        "Status": STATUS[ticket.state],
    }


class SalesforceCaseConnector(RestConnector):
    """One Case per ticket in the org at ``instance_url``. Calls are serialised: the token is
    shared, and a refresh must not race another call."""

    system = "salesforce"
    item = "case"
    service = "Salesforce"

    def __init__(
        self,
        instance_url: str,
        client_id: str,
        client_secret: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        external_id_field: str = DEFAULT_EXTERNAL_ID_FIELD,
        timeout_s: float = 10.0,
    ) -> None:
        if not client_id:
            raise ValueError("SALESFORCE_CLIENT_ID is empty")
        if not client_secret:
            raise ValueError("SALESFORCE_CLIENT_SECRET is empty")
        parts = urlsplit(instance_url or "")
        local = parts.hostname in _LOCAL_HOSTS
        if not parts.hostname or parts.scheme not in ("https", "http") or parts.path.strip("/"):
            raise ValueError(
                "SALESFORCE_INSTANCE_URL must be the org's My Domain URL, like "
                f"https://acme.my.salesforce.com, got {instance_url!r}"
            )
        if parts.scheme == "http" and not local:
            raise ValueError("SALESFORCE_INSTANCE_URL must use https (it carries the secret)")
        version = api_version.removeprefix("v")
        if not _VERSION_RE.match(version):
            raise ValueError(f"SALESFORCE_API_VERSION must look like 67.0, got {api_version!r}")
        if not _FIELD_RE.match(external_id_field or ""):
            raise ValueError(
                "SALESFORCE_EXTERNAL_ID_FIELD must be a field API name like "
                f"ControlRoom_Ticket_Id__c, got {external_id_field!r}"
            )
        self.instance_url = f"{parts.scheme}://{parts.netloc}"
        self.api_version = version
        self.external_id_field = external_id_field
        self._client_id = client_id
        self._client_secret = client_secret
        self._token: str | None = None
        self._sobjects = f"/services/data/v{version}/sobjects/Case"
        super().__init__(
            self.instance_url,
            timeout_s=timeout_s,
            # A redirect would be followed as a GET (losing the body) or to another host: report
            # it instead, it means the URL is not the My Domain URL.
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "controlroom-ticket-mirror"},
            secrets=[client_secret],
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SalesforceCaseConnector | None:
        """The connector ``env`` (the process's resolved environment, passed by the service's
        entry) asks for, or None when Salesforce is not configured. ValueError (with the
        variables' names, never their values) when it is half-configured."""
        values = {name: env.get(name, "") for name in ENV_REQUIRED}
        if not any(values.values()):
            return None
        missing = [name for name, value in values.items() if not value]
        if missing:
            present = [name for name, value in values.items() if value]
            raise ValueError(
                f"{' and '.join(present)} {'is' if len(present) == 1 else 'are'} set but "
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not"
            )
        return cls(
            values["SALESFORCE_INSTANCE_URL"],
            values["SALESFORCE_CLIENT_ID"],
            values["SALESFORCE_CLIENT_SECRET"],
            api_version=env.get("SALESFORCE_API_VERSION") or DEFAULT_API_VERSION,
            external_id_field=env.get("SALESFORCE_EXTERNAL_ID_FIELD") or DEFAULT_EXTERNAL_ID_FIELD,
        )

    def describe(self) -> dict[str, str]:
        return {
            "system": self.system,
            "instance": self.instance_url,
            "api_version": self.api_version,
            "external_id_field": self.external_id_field,
        }

    # ---- the three calls ---------------------------------------------------------------------

    def create_case(self, ticket: Ticket, *, may_exist: bool = False) -> ExternalRef:
        # ``may_exist`` needs no lookup: the upsert itself finds a Case an unanswered attempt made.
        path = f"{self._sobjects}/{self.external_id_field}/{quote(ticket.ticket_id, safe='')}"
        body = {**case_fields(ticket), "Origin": ORIGIN}
        result = self._call("PATCH", path, creating=True, json=body)
        case_id = result.get("id") if isinstance(result, dict) else None
        if not case_id:
            # Older API versions answer an upsert that updated with 204 and no body: ask.
            found = self._call("GET", path, params={"fields": "Id"})
            case_id = found.get("Id") if isinstance(found, dict) else None
        if not isinstance(case_id, str) or not case_id:
            raise ConnectorError(
                f"Salesforce PATCH {path} answered without a Case id",
                kind="server",
                retry_after=60.0,
                ambiguous=True,
            )
        return self._ref(case_id)

    def update(self, ticket: Ticket, ref: ExternalRef) -> ExternalRef:
        if not ref.id:
            raise ValueError(f"ticket {ticket.ticket_id} has no Case id to update")
        self._call("PATCH", f"{self._sobjects}/{quote(ref.id, safe='')}", json=case_fields(ticket))
        return self._ref(ref.id)

    # ---- helpers -----------------------------------------------------------------------------

    def _ref(self, case_id: str) -> ExternalRef:
        return ExternalRef(
            system=self.system,
            id=case_id,
            url=f"{self.instance_url}/lightning/r/Case/{quote(case_id, safe='')}/view",
            error=None,
            synced_at=utc_now(),
        )

    def _call(self, method: str, path: str, *, creating: bool = False, **kwargs: Any) -> Any:
        """Send with the current token; on a 401, once more with a fresh one."""
        with self._lock:
            for attempt in (1, 2):
                if self._token is None:
                    self._token = self._fetch_token()
                headers = {"Authorization": f"Bearer {self._token}"}
                response = self._send(method, path, headers=headers, **kwargs)
                if response.status_code == 401 and attempt == 1:
                    self._token = None
                    continue
                break
        if 200 <= response.status_code < 300:
            return self._decode(method, path, response) if response.content else None
        raise self._classify(method, path, response, creating=creating)

    def _fetch_token(self) -> str:
        """A new access token (client credentials flow). Nothing was sent to the API yet, so no
        failure here is ambiguous."""
        where = "Salesforce token request"
        try:
            response = self._exchange(
                "POST",
                "/services/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
            )
        except httpx.HTTPError as exc:
            raise self._err(
                f"{where} failed: {type(exc).__name__}: {exc}", kind="network", retry_after=30.0
            ) from None
        data = _json(response)
        token = data.get("access_token") if isinstance(data, dict) else None
        if response.status_code == 200 and isinstance(token, str) and token:
            self._secrets = [self._client_secret, token, *self._secrets[1:3]]
            return token
        status = response.status_code
        if status >= 500 or status == 200:
            raise self._err(
                f"{where}: {status} (Salesforce server error; retrying)",
                kind="server",
                retry_after=60.0,
            )
        reason = ""
        if isinstance(data, dict):
            reason = ": ".join(str(data[k]) for k in ("error", "error_description") if data.get(k))
        raise self._err(
            f"{where}: {status} {reason} (check SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET, "
            "that the app enables the client credentials flow with a Run As user, and that "
            "SALESFORCE_INSTANCE_URL is the My Domain URL)",
            kind="auth",
            retry_after=CONFIG_RETRY_S,
            scope="global",
        )

    def _classify(
        self, method: str, path: str, response: httpx.Response, *, creating: bool
    ) -> ConnectorError:
        status = response.status_code
        data = _json(response)
        codes, problems = _problems(data)
        detail = f"Salesforce {method} {path}: {status}"
        if problems:
            detail += f" [{'; '.join(problems)}]"
        if 300 <= status < 400 and not (status == 300 and creating):
            to = response.headers.get("location", "?")
            why = f"redirected to {to}: set SALESFORCE_INSTANCE_URL to the org's My Domain URL"
            return self._pause(f"{detail} ({why})", "not_found")
        if status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
            wait = header_seconds(response.headers.get("retry-after")) or LIMIT_RETRY_S
            usage = response.headers.get("sforce-limit-info")
            return self._err(
                f"{detail} (API request limit reached{f', {usage}' if usage else ''}; "
                f"retry in {wait:.0f} s)",
                kind="rate_limit",
                retry_after=max(wait, 1.0),
                scope="global",
            )
        meaning = _MEANING.get((status, creating)) or _MEANING.get((status, None))
        if meaning is not None:
            kind, pause, why = meaning
            why = why.format(field=self.external_id_field, version=self.api_version)
            make = self._pause if pause else self._ticket_only
            return make(f"{detail} ({why})", kind)
        return self._server_or_unexpected(detail, status, method)


_MEANING: dict[tuple[int, bool | None], tuple[ErrorKind, bool, str]] = {
    # (status, on a create? None: either): (kind, pause the whole mirror?, what to tell a person)
    (300, True): (
        "validation",
        False,
        "several Cases hold this ticket id: make {field} Unique and merge them; retried after "
        "the next edit",
    ),
    (400, None): ("validation", False, "Salesforce rejected the Case; retried after the next edit"),
    (401, None): (
        "auth",
        True,
        "a fresh access token was rejected too: check that the Run As user is active and API "
        "Enabled",
    ),
    (403, None): (
        "forbidden",
        True,
        "the Run As user lacks permission: it needs API Enabled, Read/Create/Edit on Case and "
        "edit access to {field}",
    ),
    (404, True): (
        "not_found",
        True,
        "Case field {field} or API version v{version} not found, or not visible to the Run As user",
    ),
    (404, False): (
        "gone",
        False,
        "the Case was deleted in Salesforce or is no longer visible; the local ticket is kept",
    ),
}
"""What each status means when Salesforce's REST API answers it (its "Status Codes and Error
Responses"); a status not here is a server error or unexpected."""


def _json(response: httpx.Response) -> Any:
    try:
        return json_of(response)
    except NotJson:
        return None


def _problems(data: Any) -> tuple[set[str], list[str]]:
    """Error codes and readable lines from Salesforce's ``[{message, errorCode, fields}]``."""
    items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    codes: set[str] = set()
    lines: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        code = str(item.get("errorCode") or item.get("error") or "")
        message = str(item.get("message") or item.get("error_description") or "")
        fields = item.get("fields")
        if code:
            codes.add(code)
        line = ": ".join(x for x in (code, message) if x)
        if isinstance(fields, list) and fields:
            line += f" ({', '.join(str(f) for f in fields)})"
        if line:
            lines.append(line)
    return codes, lines
