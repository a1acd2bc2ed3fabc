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

Durability: the handler returns only once the diagnosis is committed (or recognised as a
duplicate). While the store cannot write (disk full, locked by another process, corrupt file,
server gone) it raises :class:`NotDurable` (a ``RetryLater``): the bus keeps the message
unacknowledged and retries it in place, in arrival order, and leaves it for redelivery if the
service stops first. Meanwhile ``/health`` says ``degraded`` (503) with the reason; a probe
thread keeps checking that the store can write even when no diagnosis arrives. A log write that
fails (disk full) never fails the handler.

Alert -> ticket latency: the service also listens to ``alerts/+`` to learn when each alert was
published (``AlertEvent.wall_time``) and logs ``latency_ms`` = ticket stored - alert published
on every ``ticket_created`` / ``ticket_updated`` line (falling back to the diagnosis' publish
time when the alert was not seen).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from engine.alarms.store import create_alarm_tables, suppression_in
from engine.bus.client import RetryLater
from engine.http_schemas import TicketHealth
from engine.schemas import AlertEvent, DiagnosisReport, PlantMessage, Ticket, topic_for
from engine.services.agent_service import LatencyWindow
from engine.services.base import Service
from engine.services.settings import Settings
from engine.services.store_health import WriteHealth
from engine.tickets.connectors import TicketConnector
from engine.tickets.database import Conn
from engine.tickets.errors import Fault, StoreError
from engine.tickets.github import GitHubIssuesConnector
from engine.tickets.lifecycle import Outcome
from engine.tickets.mirror import Mirror
from engine.tickets.outbox import OutboxPublisher
from engine.tickets.salesforce import SalesforceCaseConnector
from engine.tickets.store import Recorded, TicketStore

ORIGIN = "ticket"
ALERT_MEMORY = 10_000
PROBE_EVERY_S = 2.0
DIAGNOSIS_OUTCOMES = (
    Outcome.CREATED,
    Outcome.UPDATED,
    Outcome.REFINED,
    Outcome.REVISED,
    Outcome.MERGED,
    Outcome.ESCALATED,
    Outcome.KEPT,
    Outcome.ATTACHED,
    Outcome.NOTED,
    Outcome.SUPPRESSED,
    Outcome.DUPLICATE,
)


def store_path(env: Any, var: Path) -> str | Path:
    """``CONTROLROOM_DB`` (a file path or a ``postgresql://`` URL) or ``var/controlroom.db``,
    shared by the ticket and review services."""
    raw = env.get("CONTROLROOM_DB") if env else None
    if not raw:
        return var / "controlroom.db"
    return raw if "://" in raw else Path(raw)


def busy_timeout(env: Mapping[str, str]) -> float:
    """``CONTROLROOM_DB_BUSY_TIMEOUT_S``: how long one write waits for another writer's lock
    before the attempt counts as failed (default 10 s; the handler then retries, so this only
    decides how soon ``/health`` reports a store held by someone else)."""
    raw = env.get("CONTROLROOM_DB_BUSY_TIMEOUT_S") or "10"
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"CONTROLROOM_DB_BUSY_TIMEOUT_S={raw!r}: expected seconds") from None
    if not 0 < value <= 600:
        raise ValueError(f"CONTROLROOM_DB_BUSY_TIMEOUT_S={raw!r}: expected 0 < seconds <= 600")
    return value


class NotDurable(RetryLater):
    """A diagnosis the store could not record now (it cannot write): the bus keeps the message
    unacknowledged and hands it to the handler again, or leaves it for redelivery when the
    service stops first."""


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
        self.store = TicketStore(store_path(env, settings.var), busy_timeout_s=busy_timeout(env))
        if connector is None:
            self.store.disable_mirror()  # nothing would drain the queue
        with self.store.transaction() as tx:
            create_alarm_tables(tx.conn)  # C6 reads them, even if the review service never ran
        self.writes = WriteHealth()
        self.log_errors = 0
        self.alerts_seen: OrderedDict[tuple[str, str], tuple[str, float | None]] = OrderedDict()
        """(asset, alert id) -> (first signal, publish time) of the last ALERT_MEMORY alerts."""
        self.latency = LatencyWindow()
        self.outcomes = {o.value: 0 for o in DIAGNOSIS_OUTCOMES}
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
        self._probe_thread: threading.Thread | None = None
        self.bus.subscribe("alerts/+", self.on_alert)
        self.bus.subscribe("diagnosis/+", self.on_diagnosis)

    def on_start(self) -> None:
        self.outbox.start()  # re-sends whatever a previous run left unacknowledged
        self._probe_thread = threading.Thread(target=self._probe_loop, name="probe", daemon=True)
        self._probe_thread.start()
        if self.mirror is not None:
            self._log("mirror_enabled", echo=True, **self.mirror.connector.describe())
            self._mirror_thread = threading.Thread(
                target=self._mirror_loop, name="mirror", daemon=True
            )
            self._mirror_thread.start()

    def on_stop(self) -> None:
        self._stop.set()
        for thread in (self._mirror_thread, self._probe_thread):
            if thread is not None:
                thread.join(timeout=15)
        self.bus.wait_idle(5)
        self.outbox.stop(timeout=5)
        # The store stays open: a diagnosis still arriving before the bus disconnects must be
        # stored (its outbox row waits for the next start), not fail and be acknowledged.

    def _store_problem(self) -> str | None:
        problem = self.writes.problem()
        retry = self.bus.retrying
        if problem is not None and retry is not None:
            problem += f"; a diagnosis waits (attempt {retry.attempts})"
        return problem

    def problems(self) -> list[str]:
        problem = self._store_problem()
        return [*super().problems(), *([problem] if problem else [])]

    def health_extras(self) -> dict[str, Any]:
        try:
            counts: dict[str, int] | None = self.store.counts()
        except StoreError as exc:
            self.writes.failed("probe", exc)
            counts = None
        return {
            "store": self.store.location,
            "tickets": counts,
            "log_errors": self.log_errors,
            "diagnoses": dict(self.outcomes),
            "alert_to_ticket": self.latency.summary(),
            "outbox": {"in_flight": self.outbox.pending, "sent": self.outbox.sent},
            "mirror": self.mirror.status() if self.mirror is not None else None,
            "degraded": self._store_problem(),
        }

    # ---------------------------------------------------------------- bus handlers

    def on_alert(self, alert: PlantMessage) -> None:
        assert isinstance(alert, AlertEvent)
        key = (sys.intern(alert.asset), alert.alert_id)
        if alert.status == "active" and key not in self.alerts_seen:
            # The first publication counts: a later one (a re-publication, or a forgery of a
            # known id) cannot move the start of the alert -> ticket latency. One entry per
            # alert, asset and signal names shared (interned): ~0.3 KiB each.
            self.alerts_seen[key] = (sys.intern(alert.signals[0]), alert.wall_time)
            while len(self.alerts_seen) > ALERT_MEMORY:
                self.alerts_seen.popitem(last=False)

    def on_diagnosis(self, report: PlantMessage) -> None:
        """Returns once the diagnosis is durable; raises NotDurable while it cannot be."""
        assert isinstance(report, DiagnosisReport)
        rec = self._record(report)
        stored = time.time()
        self.outcomes[rec.outcome.value] += 1
        alert_seen = self.alerts_seen.get((report.asset, report.alert_id), ("", None))[1]
        since = alert_seen or report.wall_time
        latency = (stored - since) * 1000.0 if since else None
        ids = {
            "ticket_id": rec.ticket.ticket_id if rec.ticket is not None else None,
            "alert_id": report.alert_id,
            "diagnosis_id": report.diagnosis_id,
        }
        if rec.changed and rec.ticket is not None:
            if latency is not None and rec.first_for_alert:
                self.latency.add(latency)
            self._log(
                f"ticket_{rec.outcome.value}",
                ids=ids,
                latency_ms=latency,
                echo=True,
                latency_from="alert" if alert_seen else "diagnosis",
                stored_at=stored,
                topic=topic_for(rec.ticket),
                message=rec.ticket.model_dump(mode="json"),
            )
            self.outbox.wake()
        else:
            self._log(f"diagnosis_{rec.outcome.value}", ids=ids, reason=rec.reason)

    def _record(self, report: DiagnosisReport) -> Recorded:
        """Store the diagnosis, or raise NotDurable: the bus then keeps it unacknowledged and
        calls again after a backoff, in arrival order (the final diagnosis never overtakes its
        provisional one), or leaves it to be redelivered if the service stops first."""
        try:
            rec = self.store.record_diagnosis(report, origin=ORIGIN, gate=self._alarm_gate)
        except StoreError as exc:
            new = self.writes.failed("handler", exc)
            if new:
                ids = {"diagnosis_id": report.diagnosis_id}
                self._log("store_unavailable", echo=True, fault=exc.fault, error=str(exc), ids=ids)
            if exc.fault in (Fault.CORRUPT, Fault.UNAVAILABLE, Fault.IO):
                self._reopen()  # a restored file or a restarted server, on the next try
            raise NotDurable(
                f"diagnosis {report.diagnosis_id} not stored yet ({exc.fault}): {exc}"
            ) from exc
        if self.writes.ok("handler"):
            self._log("store_recovered", echo=True, ids={"diagnosis_id": report.diagnosis_id})
        return rec

    def _alarm_gate(self, conn: Conn, report: DiagnosisReport) -> str | None:
        """Contract C6: a shelved or out-of-service alarm opens no ticket (the review service's
        check on its alarm tables, in the ticket transaction). The alarm's source is its first
        signal, as the alert named it when we saw it. The reason as "reason: detail"
        ("shelved: shelved until ... (by ana)", "out_of_service: asset out of service: ..."),
        or None: it may open one."""
        seen = self.alerts_seen.get((report.asset, report.alert_id))
        signal = seen[0] if seen is not None else None
        if signal is None and report.signals:
            signal = report.signals[0]
        found = suppression_in(conn, report.asset, report.alert_id, signal=signal)
        return f"{found.reason}: {found.detail}" if found is not None else None

    def _reopen(self) -> None:
        with contextlib.suppress(StoreError):  # still broken: the next attempt says so
            self.store.reopen()

    def _log(self, event: str, **fields: Any) -> None:
        """A JSONL line, never at the cost of the handler: a full disk loses log lines, counted
        in /health, not diagnoses."""
        try:
            self.log.event(event, **fields)
        except (OSError, ValueError):
            self.log_errors += 1

    # ---------------------------------------------------------------- workers

    def _sent(self, message: PlantMessage) -> None:
        if isinstance(message, Ticket):
            self._log(
                "ticket_published",
                ids={"ticket_id": message.ticket_id},
                revision=message.revision,
                state=message.state,
            )

    def _probe_loop(self) -> None:
        """Tell /health whether the store can write, also when no diagnosis arrives."""
        while not self._stop.wait(PROBE_EVERY_S):
            try:
                self.store.probe()
            except StoreError as exc:
                self.writes.failed("probe", exc)
                if exc.fault in (Fault.CORRUPT, Fault.UNAVAILABLE, Fault.IO):
                    self._reopen()
            else:
                self.writes.ok("probe")

    def _mirror_loop(self) -> None:
        assert self.mirror is not None
        while not self._stop.is_set():
            try:
                self.mirror.run_once()
            except Exception as exc:  # a bug or a locked store: report, keep the service up
                self._log("mirror_failed", error=f"{type(exc).__name__}: {exc}", echo=True)
                self._stop.wait(5.0)
            self._stop.wait(self.mirror.next_wakeup())

    def _mirror_log(self, event: dict[str, Any]) -> None:
        name = event.pop("event")
        self._log(name, echo=name == "mirror_error", **event)
