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

An agent without state export falls back to deciding its waiting alerts at shutdown.
"""

from __future__ import annotations

import sqlite3
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol, cast, runtime_checkable

from engine.bus.client import RetryLater, stamped
from engine.http_schemas import DiagnosisHealth
from engine.paths import var_dir
from engine.schemas import AlertEvent, DiagnosisReport, Telemetry
from engine.services.agent_service import Agent, AgentService
from engine.services.outbox_store import OutboxStore
from engine.services.settings import Settings
from engine.tickets.outbox import OutboxPublisher

if TYPE_CHECKING:
    from engine.tickets.store import TicketStore

DiagnosisInput = Telemetry | AlertEvent


@runtime_checkable
class PersistentAgent(Protocol):
    """An agent whose pending work can be saved and restored (typed, pure, JSON text)."""

    def export_state(self) -> str: ...

    def restore_state(self, state: str, /) -> None: ...

    def pending_count(self) -> int: ...


class DiagnosisService(AgentService[DiagnosisInput, DiagnosisReport]):
    name: ClassVar[str] = "diagnosis"
    title: ClassVar[str] = "agent-diagnosis"
    health_model = DiagnosisHealth
    inputs = ("telemetry/+", "alerts/+")
    output_event = "diagnosis"

    def __init__(self, settings: Settings, agent: Agent[DiagnosisInput, DiagnosisReport]) -> None:
        super().__init__(settings, agent)
        self._alert_wall: OrderedDict[str, float] = OrderedDict()
        self.store = OutboxStore(var_dir() / "diagnosis" / f"{self.instance}.db", self.instance)
        self.publisher = OutboxPublisher(
            cast("TicketStore", self.store), self.bus, self.instance
        )  # it needs only pending_outbox/ack_outbox, which OutboxStore has
        self._unsent: list[DiagnosisReport] = []
        self._store_error: str | None = None
        self.persistent = isinstance(agent, PersistentAgent)
        saved = self.store.load_state() if self.persistent else None
        if saved is not None:
            cast(PersistentAgent, agent).restore_state(saved)
            self.log.event("state_restored", pending=self._pending_finals(), echo=True)

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
        state = cast(PersistentAgent, self.agent).export_state() if self.persistent else None
        try:
            self.store.commit(self._unsent, state)
        except (sqlite3.Error, OSError) as exc:
            self._store_error = f"{self.store.path}: {type(exc).__name__}: {exc}"
            self.log.event("store_failed", error=self._store_error, echo=True)
            raise RetryLater(self._store_error) from exc
        self._store_error = None
        committed, self._unsent = self._unsent, []
        for out in committed:
            self._logged(out, trigger)
        if committed:
            self.publisher.wake()

    def on_start(self) -> None:
        super().on_start()
        self.publisher.start()  # re-sends whatever a previous run left unacknowledged

    def on_stop(self) -> None:
        """With persisted state, alerts still waiting stay waiting (restored at the next
        start: decided with the history after it, never guessed early). Without, decide them
        now (the bus is still up): a diagnosis with less history beats one never made."""
        if not self.persistent:
            with self._lock:
                flush = getattr(self.agent, "flush", None)
                outs = flush() if flush is not None else []
                if outs:
                    try:
                        self.emit(outs, None)
                    except RetryLater:
                        self.log.event("flush_not_stored", count=len(outs), echo=True)
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

    def _pending_finals(self) -> int | None:
        return cast(PersistentAgent, self.agent).pending_count() if self.persistent else None

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
            "pending_finals": self._pending_finals(),
            "state_persisted": self.persistent,
        }
