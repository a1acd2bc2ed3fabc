"""agent-diagnosis: alerts (and the telemetry history around them) in, root-cause reports out
(the pure ``engine.agents.diagnosis.DiagnosisAgent`` with the YAML rules on the bus).

It subscribes to telemetry too, because a diagnosis needs the history around an alert; the
agent holds an alert until enough history after it has arrived (its final report).

Nothing acknowledged is lost:

- every report is committed to a durable outbox (``var/diagnosis/{instance}.db``) before the
  alert that caused it is acknowledged, and published from there until the broker acknowledges
  it (``OutboxPublisher``), so a crash between "decided" and "PUBACK" re-sends, never drops;
- when the agent can export its state (the alerts still waiting for their final report), that
  state is committed in the same transaction and restored at start, so a restart does not drop
  pending finals — they are decided once enough history after the restart has arrived;
- a store that cannot write makes the alert's handler raise ``RetryLater``: the alert stays
  unacknowledged and is retried, and /health says "degraded" with the reason.

A restart without saved state (a new var/, a lost file) makes the agent defer the alerts it
missed until it has history again; it never reports a cause it cannot support.
"""

from __future__ import annotations

import sqlite3
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, cast

from engine.agents.diagnosis import DiagnosisAgent
from engine.agents.diagnosis_state import DiagnosisState
from engine.bus.client import RetryLater, stamped
from engine.bus.routing import ALL_TELEMETRY
from engine.http_schemas import DiagnosisHealth
from engine.paths import var_dir
from engine.schemas import AlertEvent, DiagnosisReport, Telemetry
from engine.services.agent_service import AgentService
from engine.services.outbox_store import OutboxStore
from engine.services.settings import Settings
from engine.tickets.outbox import OutboxPublisher

if TYPE_CHECKING:
    from engine.tickets.store import TicketStore

DiagnosisInput = Telemetry | AlertEvent


STOP_TAIL_S = 900.0
"""At shutdown the saved state also keeps every asset's last 15 simulated minutes, so an alert
raised right after the restart still has its pre-onset history."""


class DiagnosisService(AgentService[DiagnosisInput, DiagnosisReport]):
    name: ClassVar[str] = "diagnosis"
    title: ClassVar[str] = "agent-diagnosis"
    health_model = DiagnosisHealth
    inputs = (ALL_TELEMETRY, "alerts/+")
    output_event = "diagnosis"

    def __init__(self, settings: Settings, agent: DiagnosisAgent) -> None:
        super().__init__(settings, agent)
        self.diagnoser = agent
        self._alert_wall: OrderedDict[str, float] = OrderedDict()
        self.store = OutboxStore(var_dir() / "diagnosis" / f"{self.instance}.db", self.instance)
        self.publisher = OutboxPublisher(
            cast("TicketStore", self.store), self.bus, self.instance
        )  # it needs only pending_outbox/ack_outbox, which OutboxStore has
        self._unsent: list[DiagnosisReport] = []
        self._store_error: str | None = None
        self.pending_finals = 0
        saved = self.store.load_state()
        if saved is not None:
            try:
                state = DiagnosisState.model_validate_json(saved)
            except ValueError as exc:  # another version's layout: start empty, defer, say so
                self.log.event("state_not_restored", error=str(exc)[:300], echo=True)
            else:
                agent.restore_state(state)
                self.pending_finals = _pending(state)
                self.log.event("state_restored", pending_finals=self.pending_finals, echo=True)

    def on_input(self, msg: DiagnosisInput) -> None:
        if isinstance(msg, AlertEvent) and msg.wall_time is not None:
            self._alert_wall[msg.alert_id] = msg.wall_time
            while len(self._alert_wall) > 10_000:
                self._alert_wall.popitem(last=False)
        try:
            super().on_input(msg)
        except RetryLater:
            if isinstance(msg, AlertEvent):
                raise  # unacknowledged: the bus hands it back until the store takes it
            # a telemetry sample is not redelivered: its reports wait in _unsent for the next
            # successful commit

    def emit(self, outs: Sequence[DiagnosisReport], trigger: DiagnosisInput | None) -> None:
        """Commit reports (and the pending state) durably, then let the publisher send them.
        State is saved whenever it changes meaningfully: an alert arrived, or a report left."""
        if not outs and not self._unsent and not isinstance(trigger, AlertEvent):
            return
        self._unsent.extend(stamped(o) for o in outs)
        self._commit(trigger)

    def _commit(self, trigger: DiagnosisInput | None, tail_s: float = 0.0) -> None:
        state = self.diagnoser.export_state(tail_s=tail_s)
        try:
            self.store.commit(self._unsent, state.model_dump_json())
        except (sqlite3.Error, OSError) as exc:
            self._store_error = f"{self.store.path}: {type(exc).__name__}: {exc}"
            self.log.event("store_failed", error=self._store_error, echo=True)
            raise RetryLater(self._store_error) from exc
        self._store_error = None
        self.pending_finals = _pending(state)
        committed, self._unsent = self._unsent, []
        for out in committed:
            self._logged(out, trigger)
        if committed:
            self.publisher.wake()

    def on_start(self) -> None:
        super().on_start()
        self.publisher.start()  # re-sends whatever a previous run left unacknowledged

    def on_stop(self) -> None:
        """Alerts still waiting stay waiting: their state is saved (with recent history) and
        restored at the next start, where they are decided on the history after it — never
        guessed early for want of it."""
        with self._lock:
            try:
                self._commit(None, tail_s=STOP_TAIL_S)
            except RetryLater:
                self.log.event("state_not_saved", error=self._store_error, echo=True)
        self.publisher.stop(timeout=5)
        super().on_stop()

    def output_ids(self, out: DiagnosisReport) -> dict[str, object]:
        return {
            "diagnosis_id": out.diagnosis_id,
            "alert_id": out.alert_id,
            "asset": out.asset,
            "root_cause": out.root_cause,
            "stage": out.stage,
        }

    def output_latency_ms(self, trigger: DiagnosisInput, out: DiagnosisReport) -> float | None:
        """Alert published -> diagnosis committed (includes any wait for history)."""
        wall = self._alert_wall.get(out.alert_id)
        return (time.time() - wall) * 1000.0 if wall else None

    def problems(self) -> list[str]:
        reasons = super().problems()
        if self._store_error:
            reasons.append(f"diagnosis outbox cannot write: {self._store_error}")
        return reasons

    def health_extras(self) -> dict[str, object]:
        rules = getattr(self.agent, "rules", None)
        return {
            **super().health_extras(),
            "diagnoses_published": self.outputs,
            "rules_loaded": len(rules) if rules is not None else 0,
            "outbox": {
                "queued": self.store.queued(),
                "in_flight": self.publisher.pending,
                "sent": self.publisher.sent,
            },
            "pending_finals": self.pending_finals,
            "state_persisted": True,
            "agent": dict(getattr(self.agent, "stats", {})),
        }


def _pending(state: DiagnosisState) -> int:
    return sum(al.pending is not None for a in state.assets for al in a.alerts)
