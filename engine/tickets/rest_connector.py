"""What the GitHub and Salesforce connectors share: one serialised httpx client, secrets scrubbed
from every message, and the same reading of transport failures and server errors.

Why a base class: both mirrors talk JSON over HTTPS to a system that may time out, drop the
connection, answer 5xx or echo a credential back. How each of those becomes a
:class:`ConnectorError` (wait how long, ambiguous for a create or not) is one decision, written
once here; each subclass keeps only what its API documents differently (authentication, the
status codes it gives meaning to, how one copy is addressed).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from engine.http_answer import NotJson, json_of, send_bounded
from engine.schemas import ExternalRef, Ticket
from engine.tickets.connectors import ConnectorError, ErrorKind

CONFIG_RETRY_S = 300.0
"""Pause after an error a person has to fix (bad credentials, a missing repository or field)."""
ANSWER_MAX_BYTES = 4 * 1024 * 1024
"""The most of one answer a mirror reads (an issue or a record is a few KiB): a remote that
answers more, or compressed when asked not to, is a server fault, not something to allocate for."""
ANSWER_MAX_S = 60.0
"""The longest a mirror keeps reading one answer once its headers are in (a trickle)."""


def state_line(ticket: Ticket) -> str:
    """The ticket's state as a copy shows it: ``closed (reason): note`` once it is closed."""
    if ticket.state != "closed":
        return ticket.state
    state = f"closed ({ticket.close_reason})"
    return f"{state}: {ticket.close_note}" if ticket.close_note else state


class RestConnector:
    """Base of the REST connectors. ``service`` names the system in messages ("GitHub");
    ``_secrets`` holds every credential the subclass sends, scrubbed (also URL-encoded) from any
    text this connector produces, so none reaches a log, an exception or the store."""

    system: str
    item: str
    service: str

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        follow_redirects: bool,
        headers: dict[str, str],
        secrets: list[str],
    ) -> None:
        self._secrets = secrets
        self._lock = threading.Lock()
        self._client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            follow_redirects=follow_redirects,
            headers=headers,
        )

    def close_client(self) -> None:
        self._client.close()

    def update(self, ticket: Ticket, ref: ExternalRef) -> ExternalRef:
        raise NotImplementedError

    def close(self, ticket: Ticket, ref: ExternalRef) -> ExternalRef:
        """Closing is an update that carries the closed state (so a repeat is harmless)."""
        if ticket.state != "closed":
            raise ValueError(f"ticket {ticket.ticket_id} is not closed")
        return self.update(ticket, ref)

    # ---- errors ------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                for form in {secret, quote_plus(secret), quote(secret, safe="")}:
                    text = text.replace(form, "***")
        return text

    def _err(self, text: str, **kw: Any) -> ConnectorError:
        return ConnectorError(self._scrub(text)[:480], **kw)

    def _pause(self, text: str, kind: ErrorKind) -> ConnectorError:
        """An error a person has to fix: every call would fail the same way."""
        return self._err(text, kind=kind, retry_after=CONFIG_RETRY_S, scope="global")

    def _ticket_only(self, text: str, kind: ErrorKind) -> ConnectorError:
        """An error of this ticket alone: not retried until the ticket changes."""
        return self._err(text, kind=kind, retry_after=None)

    def _server_or_unexpected(self, detail: str, status: int, method: str) -> ConnectorError:
        """Any status the subclass gave no meaning: a 5xx is retried (ambiguous unless a GET),
        anything else is unexpected and waits as long as a configuration error."""
        if status >= 500:
            return self._err(
                f"{detail} ({self.service} server error; retrying)",
                kind="server",
                retry_after=60.0,
                ambiguous=method != "GET",
            )
        return self._err(f"{detail} (unexpected answer)", kind="server", retry_after=CONFIG_RETRY_S)

    # ---- the wire ----------------------------------------------------------------------------

    def _exchange(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request and its whole answer, read within ``ANSWER_MAX_BYTES`` and
        ``ANSWER_MAX_S`` (``engine.http_answer``): httpx.HTTPError otherwise."""
        request = self._client.build_request(method, path, **kwargs)
        return send_bounded(self._client, request, max_bytes=ANSWER_MAX_BYTES, limit_s=ANSWER_MAX_S)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request. A timeout or a connection lost after sending may have taken effect, so
        it is ambiguous for anything but a GET; a refused connection never is."""
        where = f"{self.service} {method} {path}"
        try:
            return self._exchange(method, path, **kwargs)
        except httpx.HTTPError as exc:
            timed_out = isinstance(exc, httpx.TimeoutException)
            sent = timed_out or not isinstance(exc, httpx.ConnectError)
            name = type(exc).__name__
            what = f"timed out ({name})" if timed_out else f"failed: {name}: {exc}"
            raise self._err(
                f"{where} {what}",
                kind="network",
                retry_after=30.0,
                ambiguous=sent and method != "GET",
            ) from None

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        """The JSON of a successful answer; a body that is not JSON is a server fault."""
        try:
            return json_of(response)
        except NotJson:
            raise self._err(
                f"{self.service} {method} {path} answered {response.status_code} without JSON",
                kind="server",
                retry_after=60.0,
                ambiguous=method != "GET",
            ) from None
