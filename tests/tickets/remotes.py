"""The two remote ticket systems as the mirror tests drive them: each fake server (a real local
HTTP server, fake_github.py and fake_salesforce.py), the credentials it accepts and a connector
to it. ``REMOTES`` describes each one for the cases that hold whatever the system
(test_mirror_remotes.py): how it counts creates, what it says when it cannot be used."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fake_github import FakeGitHub
from fake_salesforce import FakeSalesforce

from engine.tickets.connectors import TicketConnector
from engine.tickets.github import GitHubIssuesConnector
from engine.tickets.salesforce import SalesforceCaseConnector

TOKEN = "ghp_SuperSecretToken1234567890"
CLIENT_ID = "3MVG9controlroomConsumerKey"
SECRET = "5F0E9D8C7B6A+Secret/Value=="
"""With characters a form body encodes, so an echo of the encoded form is caught too."""
FIELD = "ControlRoom_Ticket_Id__c"
UPSERT = f"/sobjects/Case/{FIELD}/"


def github_connector(
    github: FakeGitHub, *, token: str = TOKEN, timeout_s: float = 5.0
) -> GitHubIssuesConnector:
    return GitHubIssuesConnector(
        token, github.repo, api_url=github.url, timeout_s=timeout_s, min_interval_s=0.0
    )


def salesforce_connector(
    sf: FakeSalesforce,
    *,
    secret: str = SECRET,
    field: str = FIELD,
    timeout_s: float = 5.0,
) -> SalesforceCaseConnector:
    return SalesforceCaseConnector(
        sf.url, CLIENT_ID, secret, external_id_field=field, timeout_s=timeout_s
    )


@dataclass(frozen=True)
class Remote:
    """One remote system, for a case that runs against each."""

    name: str
    server: Callable[[], Any]
    """A new fake server, bound to a free port, not yet serving."""
    connector: Callable[..., TicketConnector]
    """``connector(server, timeout_s=...)``: the connector the ticket service would build."""
    bad_credentials: dict[str, str]
    """The ``connector`` argument that makes its credentials wrong."""
    bad_credentials_say: tuple[str, ...]
    """What the error recorded on the ticket says then (the setting to fix among it)."""
    sent_with_bad_credentials: int
    """Create requests sent with them: GitHub answers the create 401; Salesforce refuses the
    token first, so no Case request goes out."""
    records: Callable[[Any], dict[Any, Any]]
    """What the server holds: its issues or Cases by id."""
    creates: Callable[[Any], int]
    """Create requests the server has had (POST an issue; PATCH the Case upsert)."""
    lookups: Callable[[Any], int]
    """Requests that look a record up (GitHub's issue list; a GET of the Case upsert)."""
    after_a_lost_answer: tuple[int, int]
    """(creates, lookups) once a create whose answer was lost is retried: GitHub looks the issue
    up by its marker and does not send it again; Salesforce sends the upsert again, which finds
    the Case."""
    unreachable_says: str


REMOTES = {
    "github": Remote(
        name="github",
        server=lambda: FakeGitHub(TOKEN),
        connector=github_connector,
        bad_credentials={"token": "ghp_wrong_token_value"},
        bad_credentials_say=("401 Bad credentials", "GITHUB_TOKEN was rejected"),
        sent_with_bad_credentials=1,
        records=lambda gh: gh.issues,
        creates=lambda gh: gh.count("POST"),
        lookups=lambda gh: gh.count("GET"),
        after_a_lost_answer=(1, 1),
        unreachable_says="failed: ConnectError",
    ),
    "salesforce": Remote(
        name="salesforce",
        server=lambda: FakeSalesforce(CLIENT_ID, SECRET),
        connector=salesforce_connector,
        bad_credentials={"secret": "not-the-secret"},
        bad_credentials_say=(
            "token request: 400 invalid_client: invalid client credentials",
            "SALESFORCE_CLIENT_SECRET",
        ),
        sent_with_bad_credentials=0,
        records=lambda sf: sf.cases,
        creates=lambda sf: sf.count("PATCH", UPSERT),
        lookups=lambda sf: sf.count("GET", UPSERT),
        after_a_lost_answer=(2, 0),
        unreachable_says="token request failed: ConnectError",
    ),
}
