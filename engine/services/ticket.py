"""Agent C as a service: diagnoses from the bus become work orders in the store, announced on
``tickets/{asset}`` and mirrored to GitHub Issues or Salesforce Cases when configured.

Order of work per diagnosis (bus dispatcher thread): store it (ticket + diagnosis id + outbox
row in one transaction) -> log -> wake the publisher. The bus acknowledges the diagnosis only
after this returns, so a crash before the commit means redelivery, and a crash after it means a
redelivery the store recognises as a duplicate. The outbox publisher announces the ticket; the
mirror worker copies it to GitHub or Salesforce on its own thread, so a slow or failing external
system never delays a ticket.

Who publishes what (the review service shares the store): this service publishes ticket
snapshots caused by diagnoses and by the mirror (new issue link, mirror errors); the review
service publishes those caused by review actions, and the feedback. Each drains only its own
outbox rows. Mirroring of every change, whoever made it, is done here.

Alert -> ticket latency: the service also listens to ``alerts/+`` to learn when each alert was
published (``AlertEvent.wall_time``) and logs ``latency_ms`` = ticket stored - alert published
on every ``ticket_created`` / ``ticket_updated`` line (falling back to the diagnosis' publish
time when the alert was not seen).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from engine.http_schemas import TicketHealth
from engine.paths import var_dir
from engine.schemas import AlertEvent, DiagnosisReport, PlantMessage, Ticket, topic_for
from engine.services.agent_service import LatencyWindow
from engine.services.base import Service
from engine.services.settings import Settings
from engine.tickets.connectors import TicketConnector
from engine.tickets.github import GitHubIssuesConnector
from engine.tickets.mirror import Mirror
from engine.tickets.outbox import OutboxPublisher
from engine.tickets.salesforce import SalesforceCaseConnector
from engine.tickets.store import Recorded, TicketStore

ORIGIN = "ticket"
ALERT_MEMORY = 10_000
STORE_RETRY_S = 30.0


def store_path(env: Any) -> Path:
    """``CONTROLROOM_DB`` or ``var/controlroom.db`` (shared by the ticket and review services)."""
    raw = env.get("CONTROLROOM_DB") if env else None
    return Path(raw) if raw else var_dir() / "controlroom.db"


def mirror_connector(env: Mapping[str, str]) -> TicketConnector | None:
    """The one external system the environment configures, or None. ValueError (naming the
    variables) when one is half-configured or both are: two mirrors would each need their own
    queue, retries and error on every ticket, and the store keeps one external ref per ticket."""
    github = GitHubIssuesConnector.from_env(env)
    try:
        salesforce = SalesforceCaseConnector.from_env(env)
    except ValueError:
        if github is not None:
            github.close_client()
        raise
    if github is not None and salesforce is not None:
        github.close_client()
        salesforce.close_client()
        raise ValueError(
            "both GitHub (GITHUB_TOKEN, GITHUB_REPO) and Salesforce (SALESFORCE_INSTANCE_URL, "
            "SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET) are configured; the ticket service "
            "mirrors to one system: unset the variables of the other"
        )
    return github or salesforce


class TicketService(Service):
    name: ClassVar[str] = "ticket"
    title: ClassVar[str] = "Agent C — tickets"
    health_model = TicketHealth

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        env = self.settings.env
        connector = mirror_connector(env)  # first: a configuration error leaves nothing behind
        self.store = TicketStore(store_path(env))
        self.alert_times: OrderedDict[str, float] = OrderedDict()
        self.latency = LatencyWindow()
        self.outcomes = dict.fromkeys(
            ("created", "updated", "refined", "revised", "merged", "attached", "duplicate"), 0
        )
        self.outbox = OutboxPublisher(self.store, self.bus, ORIGIN, on_sent=self._sent)
        self.mirror = (
            Mirror(
                self.store,
                connector,
                origin=ORIGIN,
                notify=self.outbox.wake,
                log=self._mirror_log,
            )
            if connector is not None
            else None
        )
        self._stop = threading.Event()
        self._mirror_thread: threading.Thread | None = None
        self.bus.subscribe("alerts/+", self.on_alert)
        self.bus.subscribe("diagnosis/+", self.on_diagnosis)

    def on_start(self) -> None:
        self.outbox.start()  # re-sends whatever a previous run left unacknowledged
        if self.mirror is not None:
            self.log.event("mirror_enabled", echo=True, **self.mirror.connector.describe())
            self._mirror_thread = threading.Thread(
                target=self._mirror_loop, name="mirror", daemon=True
            )
            self._mirror_thread.start()

    def on_stop(self) -> None:
        self._stop.set()
        if self._mirror_thread is not None:
            self._mirror_thread.join(timeout=15)
        self.bus.wait_idle(5)
        self.outbox.stop(timeout=5)
        # The store stays open: a diagnosis still arriving before the bus disconnects must be
        # stored (its outbox row waits for the next start), not fail and be acknowledged.

    def health_extras(self) -> dict[str, Any]:
        return {
            "store": str(self.store.path),
            "tickets": self.store.counts(),
            "diagnoses": dict(self.outcomes),
            "alert_to_ticket": self.latency.summary(),
            "outbox": {"in_flight": self.outbox.pending, "sent": self.outbox.sent},
            "mirror": self.mirror.status() if self.mirror is not None else None,
        }

    # ---------------------------------------------------------------- bus handlers

    def on_alert(self, alert: PlantMessage) -> None:
        assert isinstance(alert, AlertEvent)
        if alert.wall_time is not None and alert.status == "active":
            self.alert_times[alert.alert_id] = alert.wall_time
            while len(self.alert_times) > ALERT_MEMORY:
                self.alert_times.popitem(last=False)

    def on_diagnosis(self, report: PlantMessage) -> None:
        assert isinstance(report, DiagnosisReport)
        rec = self._record(report)
        stored = time.time()
        self.outcomes[rec.outcome] += 1
        since = self.alert_times.get(report.alert_id) or report.wall_time
        latency = (stored - since) * 1000.0 if since else None
        ids = {
            "ticket_id": rec.ticket.ticket_id,
            "alert_id": report.alert_id,
            "diagnosis_id": report.diagnosis_id,
        }
        if rec.changed:
            if latency is not None and rec.first_for_alert:
                self.latency.add(latency)
            self.log.event(
                f"ticket_{rec.outcome}",
                ids=ids,
                latency_ms=latency,
                echo=True,
                latency_from="alert" if report.alert_id in self.alert_times else "diagnosis",
                stored_at=stored,
                topic=topic_for(rec.ticket),
                message=rec.ticket.model_dump(mode="json"),
            )
            self.outbox.wake()
        else:
            self.log.event(f"diagnosis_{rec.outcome}", ids=ids)

    def _record(self, report: DiagnosisReport) -> Recorded:
        """Store with retries while the database is locked (a long review transaction, a
        backup): giving up would dead-letter a diagnosis that only needed a moment."""
        deadline = time.monotonic() + STORE_RETRY_S
        delay = 0.05
        while True:
            try:
                return self.store.record_diagnosis(report, origin=ORIGIN)
            except sqlite3.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise
                self.log.event("store_busy", error=str(exc), ids={"diag": report.diagnosis_id})
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # ---------------------------------------------------------------- workers

    def _sent(self, message: PlantMessage) -> None:
        if isinstance(message, Ticket):
            self.log.event(
                "ticket_published",
                ids={"ticket_id": message.ticket_id},
                revision=message.revision,
                state=message.state,
            )

    def _mirror_loop(self) -> None:
        assert self.mirror is not None
        while not self._stop.is_set():
            try:
                self.mirror.run_once()
            except Exception as exc:  # a bug or a locked store: report, keep the service up
                self.log.event("mirror_failed", error=f"{type(exc).__name__}: {exc}", echo=True)
                self._stop.wait(5.0)
            self._stop.wait(self.mirror.next_wakeup())

    def _mirror_log(self, event: dict[str, Any]) -> None:
        name = event.pop("event")
        self.log.event(name, echo=name == "mirror_error", **event)
