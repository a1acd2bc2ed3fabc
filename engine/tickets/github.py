"""Mirror tickets as GitHub issues over the REST API (httpx).

Configuration (environment or ``.env``): ``GITHUB_TOKEN``, ``GITHUB_REPO`` ("owner/name"),
``GITHUB_API_URL`` (default ``https://api.github.com``; a GitHub Enterprise Server URL such as
``https://ghe.example.com/api/v3``, or a local test server).

Errors are classified as GitHub documents them (docs.github.com, "Rate limits for the REST API"
and "Troubleshooting the REST API"):

- 403/429 with ``retry-after``: a secondary rate limit; wait that many seconds.
- 403/429 with ``x-ratelimit-remaining: 0``: the primary limit; wait until ``x-ratelimit-reset``
  (UTC epoch seconds).
- 403/429 that says "secondary rate limit" with neither header: wait at least a minute, then
  exponentially longer.
- 401 (bad token), other 403 (token lacks permission), 404 (repository missing or invisible to
  the token), 410 on create (issues disabled): configuration problems that affect every call;
  the mirror pauses and retries every few minutes, since a person has to fix them.
- 410 on update (the issue was deleted on GitHub) and 422 (GitHub rejected the content): only
  this ticket; not retried until the ticket changes.
- Timeouts, dropped connections and 5xx: retried with backoff. They are *ambiguous* for a create:
  the issue may exist. Every issue body carries a hidden marker with the ticket id, and a retried
  create first lists the repository's recent issues looking for it, so a timed-out create never
  yields a second issue.

The token is sent only in the Authorization header; every message this module produces passes
through :meth:`GitHubIssuesConnector._scrub`, so the token never reaches a log, an exception or
the store, even if a server echoed it back.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx

from engine.http_answer import NotJson, json_of
from engine.schemas import ExternalRef, Ticket, utc_now
from engine.tickets.connectors import ConnectorError, header_seconds
from engine.tickets.rest_connector import CONFIG_RETRY_S, RestConnector, state_line

__all__ = ["CONFIG_RETRY_S", "GitHubIssuesConnector", "issue_body", "issue_labels", "marker"]

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
SECONDARY_MIN_WAIT_S = 60.0
LOOKUP_PAGES = 3
"""How many pages (100 issues each) of recently updated issues a retried create searches."""

_REPO_RE = re.compile(r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")

CLOSE_STATE_REASON = {
    "resolved": "completed",
    "false_positive": "not_planned",
    "duplicate": "not_planned",
}
"""``duplicate`` is not accepted by every GitHub Enterprise Server version; the close reason is
also kept as a label, so nothing is lost."""


def marker(ticket_id: str, tag: str = "") -> str:
    """The hidden line that ties an issue to its ticket (invisible in rendered markdown), the
    last line of the issue's body. ``tag``: the connector's unforgeable tag for that ticket."""
    return f"<!-- controlroom-ticket: {ticket_id}{' ' + tag if tag else ''} -->"


def issue_body(ticket: Ticket, tag: str = "") -> str:
    lines = [ticket.body[:64_000], "", "---"]
    lines.append(f"Control Room ticket `{ticket.ticket_id}` · state: {state_line(ticket)}")
    lines.append(marker(ticket.ticket_id, tag))
    return "\n".join(lines)


def issue_labels(ticket: Ticket) -> list[str]:
    labels = list(ticket.labels)
    if ticket.state == "approved":
        labels.append("approved")
    if ticket.state == "closed" and ticket.close_reason:
        labels.append(f"closed:{ticket.close_reason}")
    return list(dict.fromkeys(label[:50] for label in labels))


class GitHubIssuesConnector(RestConnector):
    """One issue per ticket in ``repo``. Calls are serialised (GitHub asks integrations not to
    make concurrent requests) and mutating calls are spaced by ``min_interval_s`` (GitHub asks
    for at least a second between them to stay clear of secondary limits)."""

    system = "github"
    item = "issue"
    service = "GitHub"

    def __init__(
        self,
        token: str,
        repo: str,
        *,
        api_url: str = DEFAULT_API_URL,
        timeout_s: float = 10.0,
        min_interval_s: float = 1.0,
    ) -> None:
        if not token:
            raise ValueError("GITHUB_TOKEN is empty")
        if not _REPO_RE.match(repo or ""):
            raise ValueError(f"GITHUB_REPO must look like 'owner/name', got {repo!r}")
        self.repo = repo
        self.api_url = api_url.rstrip("/")
        self._min_interval_s = min_interval_s
        self._last_mutation = 0.0
        self._secondary_hits = 0
        super().__init__(
            self.api_url,
            timeout_s=timeout_s,
            follow_redirects=True,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "controlroom-ticket-mirror",
                "Authorization": f"Bearer {token}",
            },
            secrets=[token],
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubIssuesConnector | None:
        """The connector ``env`` (the process's resolved environment, passed by the service's
        entry) asks for, or None when GitHub is not configured. ValueError (with the variable's
        name, never its value) when it is half-configured."""
        token, repo = env.get("GITHUB_TOKEN", ""), env.get("GITHUB_REPO", "")
        if not token and not repo:
            return None
        if not token:
            raise ValueError("GITHUB_REPO is set but GITHUB_TOKEN is not")
        if not repo:
            raise ValueError("GITHUB_TOKEN is set but GITHUB_REPO is not")
        return cls(token, repo, api_url=env.get("GITHUB_API_URL") or DEFAULT_API_URL)

    def describe(self) -> dict[str, str]:
        return {"system": self.system, "repo": self.repo, "api": self.api_url}

    # ---- the three calls ---------------------------------------------------------------------

    def create_case(self, ticket: Ticket, *, may_exist: bool = False) -> ExternalRef:
        if may_exist:
            found = self._find(ticket)
            if found is not None:
                return self._ref(found)
        payload = self._fields(ticket)
        issue = self._request("POST", f"/repos/{self.repo}/issues", json=payload, creating=True)
        return self._ref(issue)

    def update(self, ticket: Ticket, ref: ExternalRef) -> ExternalRef:
        payload = self._fields(ticket)
        payload["state"] = "closed" if ticket.state == "closed" else "open"
        if ticket.state == "closed":
            payload["state_reason"] = CLOSE_STATE_REASON.get(ticket.close_reason or "")
        issue = self._request("PATCH", f"/repos/{self.repo}/issues/{ref.id}", json=payload)
        return self._ref(issue)

    # ---- helpers -----------------------------------------------------------------------------

    def _tag(self, ticket_id: str) -> str:
        """Who can read an issue can copy its marker, but nobody without the token can make
        one for a ticket to come (ids are sequential): an HMAC of the repository and the id."""
        msg = f"{self.repo}\0{ticket_id}".encode()
        return hmac.new(self._secrets[0].encode(), msg, hashlib.sha256).hexdigest()[:24]

    def _fields(self, ticket: Ticket) -> dict[str, object]:
        """What every create and update sends (the whole current state: repeats are harmless)."""
        return {
            "title": f"[{ticket.ticket_id}] {ticket.title}"[:256],
            "body": issue_body(ticket, self._tag(ticket.ticket_id)),
            "labels": issue_labels(ticket),
        }

    def _ref(self, issue: dict[str, Any]) -> ExternalRef:
        try:
            number, url = issue["number"], issue.get("html_url")
        except (KeyError, TypeError):
            raise ConnectorError(
                "GitHub answered without an issue number", kind="server", retry_after=60.0
            ) from None
        return ExternalRef(
            system=self.system, id=str(number), url=url, error=None, synced_at=utc_now()
        )

    def _find(self, ticket: Ticket) -> dict[str, Any] | None:
        """The issue an earlier, unanswered create made for ``ticket``, if any: one whose body
        ends with the ticket's tagged marker (a marker quoted inside another ticket's body, or
        an issue anyone may open on the repository, is not it), the oldest if several (a copy
        of ours can only come after it)."""
        needle = marker(ticket.ticket_id, self._tag(ticket.ticket_id))
        found: list[dict[str, Any]] = []
        since = (ticket.created_at - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for page in range(1, LOOKUP_PAGES + 1):
            issues = self._request(
                "GET",
                f"/repos/{self.repo}/issues",
                params={
                    "state": "all",
                    "sort": "created",
                    "direction": "desc",
                    "since": since,
                    "per_page": 100,
                    "page": page,
                },
            )
            if not isinstance(issues, list):
                break
            found += [
                issue
                for issue in issues
                if isinstance(issue, dict)
                and isinstance(issue.get("number"), int)
                and str(issue.get("body") or "").rstrip().endswith(needle)
            ]
            if len(issues) < 100:
                break
        return min(found, key=lambda issue: issue["number"], default=None)

    def _request(self, method: str, path: str, *, creating: bool = False, **kwargs: Any) -> Any:
        with self._lock:
            if method != "GET":
                wait = self._last_mutation + self._min_interval_s - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._last_mutation = time.monotonic()
            response = self._send(method, path, **kwargs)
        if response.status_code < 300:
            self._secondary_hits = 0
            return self._decode(method, path, response)
        raise self._classify(method, path, response, creating=creating)

    def _classify(
        self, method: str, path: str, response: httpx.Response, *, creating: bool
    ) -> ConnectorError:
        status = response.status_code
        try:
            data = json_of(response)
        except NotJson:
            data = {}
        message = str(data.get("message", "")) if isinstance(data, dict) else ""
        detail = f"GitHub {method} {path}: {status} {message}".strip()
        if status in (403, 429):
            return self._limited(detail, status, message, response.headers)
        if status == 401:
            why = "GITHUB_TOKEN was rejected: check it is valid and not expired"
            return self._pause(f"{detail} ({why})", "auth")
        if status == 404:
            why = f"repository {self.repo} not found, or the token cannot see it"
            return self._pause(f"{detail} ({why})", "not_found")
        if status == 410 and creating:
            return self._pause(f"{detail} (issues are disabled on {self.repo})", "gone")
        if status == 410:
            why = "the issue was deleted on GitHub; the local ticket is kept"
            return self._ticket_only(f"{detail} ({why})", "gone")
        if status == 422:
            problems = _problems(data)
            extra = f" [{'; '.join(problems)}]" if problems else ""
            why = "GitHub rejected the content; retried after the next edit"
            return self._ticket_only(f"{detail}{extra} ({why})", "validation")
        return self._server_or_unexpected(detail, status, method)

    def _limited(
        self, detail: str, status: int, message: str, headers: httpx.Headers
    ) -> ConnectorError:
        """A 403 or 429: one of GitHub's rate limits, or a token without permission."""
        retry_after = header_seconds(headers.get("retry-after"))
        reset = header_seconds(headers.get("x-ratelimit-reset"))
        if retry_after is not None:
            self._secondary_hits += 1
            text = f"{detail} (rate limited; retry after {retry_after:.0f} s)"
            wait = max(retry_after, 1.0)
        elif headers.get("x-ratelimit-remaining") == "0" and reset is not None:
            wait = max(reset - time.time(), 0.0) + 1.0
            text = f"{detail} (primary rate limit exhausted; resets in {wait:.0f} s)"
        elif "secondary rate limit" in message.lower() or status == 429:
            self._secondary_hits += 1
            wait = SECONDARY_MIN_WAIT_S * 2 ** min(self._secondary_hits - 1, 5)
            text = f"{detail} (secondary rate limit; waiting {wait:.0f} s)"
        else:
            why = f"the token lacks permission for {self.repo}: it needs Issues read/write"
            return self._pause(f"{detail} ({why})", "forbidden")
        return self._err(text, kind="rate_limit", retry_after=wait, scope="global")


def _problems(data: Any) -> list[str]:
    """Readable lines from a 422's ``errors`` (objects or plain strings)."""
    problems = []
    for e in data.get("errors", []) if isinstance(data, dict) else []:
        if isinstance(e, dict):
            text = e.get("message") or " ".join(
                str(e.get(k)) for k in ("resource", "field", "code") if e.get(k)
            )
            problems.append(str(text))
        elif isinstance(e, str):
            problems.append(e)
    return problems
