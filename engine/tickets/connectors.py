"""External ticket systems: the interface the mirror talks to, and its error vocabulary.

The local store is the source of truth; a connector only keeps a copy elsewhere: GitHub Issues
(``engine/tickets/github.py``) or Salesforce Cases (``engine/tickets/salesforce.py``), one system
per ticket service. A connector never decides *when* to retry: it reports what happened in a
:class:`ConnectorError` (how long to wait, whether the wait applies to every request or only this
ticket, whether the request may have taken effect) and the mirror worker
(``engine/tickets/mirror.py``) schedules accordingly.
"""

from __future__ import annotations

from typing import Literal, Protocol

from engine.schemas import ExternalRef, Ticket

ErrorKind = Literal[
    "auth", "forbidden", "not_found", "gone", "validation", "rate_limit", "server", "network"
]


class ConnectorError(Exception):
    """A failed call to an external system.

    ``retry_after``: seconds to wait before trying this job again; None means "not until the
    ticket changes" (e.g. the system rejected its content). ``scope``: "global" when every call
    would fail the same way (bad token, rate limit, missing repository) so the mirror pauses
    altogether; "ticket" when only this ticket is affected. ``ambiguous``: the request may have
    taken effect although no answer arrived (timeout, dropped connection, 5xx), so a retried
    create must first look for the case it may already have made.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        retry_after: float | None,
        scope: Literal["global", "ticket"] = "ticket",
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retry_after = retry_after
        self.scope = scope
        self.ambiguous = ambiguous


def header_seconds(value: str | None) -> float | None:
    """A numeric HTTP header (``retry-after``, a reset epoch), or None when absent or not a
    number: a malformed header must not turn a rate limit into a crash."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class TicketConnector(Protocol):
    """What the mirror needs from an external ticket system. Every call is idempotent from the
    caller's point of view: ``update``/``close`` send the ticket's whole current state, and
    ``create_case(..., may_exist=True)`` finds a copy made by an earlier, unanswered attempt
    instead of making a second one."""

    system: str
    """Recorded in each ticket's ``external.system`` ("github", "salesforce")."""
    item: str
    """What one copy is called there ("issue", "case"), for the audit trail."""

    def create_case(self, ticket: Ticket, *, may_exist: bool = False) -> ExternalRef: ...

    def update(self, ticket: Ticket, ref: ExternalRef) -> ExternalRef: ...

    def close(self, ticket: Ticket, ref: ExternalRef) -> ExternalRef: ...

    def describe(self) -> dict[str, str]:
        """Where the copies go, for /health and logs. Never includes a credential."""
        ...
