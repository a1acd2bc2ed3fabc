"""agent-diagnosis: alerts (and the telemetry history around them) in, root-cause reports out
(the pure ``engine.agents.diagnosis.DiagnosisAgent`` with the YAML rules on the bus).

It subscribes to telemetry too, because a diagnosis needs the history around an alert; the
agent holds an alert until enough history after it has arrived (its final report).

Nothing acknowledged is lost:

- every report is committed to a durable outbox (``var/diagnosis/{instance}.db``) before the
  alert that caused it is acknowledged, and published from there until the broker acknowledges
  it (``OutboxPublisher``), so a crash between "decided" and "PUBACK" re-sends, never drops;
- the agent's state (the alerts still waiting for their final report, and the history they
  need) is committed in the same transaction and restored at start, so a restart does not drop
  pending finals — they are decided once enough history after the restart has arrived. It is
  saved per asset (``DiagnosisAgent.export_asset``): a commit writes the rows of the assets its
  reports and alert concern, never the whole fleet's state (which made each alert cost O(fleet)
  and a 1,000-pump diagnosis fall minutes behind); an asset's reports depend on its own state
  only, so its row and its reports in one transaction keep the same guarantee. At a clean stop
  every asset is saved, with its recent history;
- a store that cannot write makes the alert's handler raise ``RetryLater``: the alert stays
  unacknowledged and is retried, and /health says "degraded" with the reason.

A restart without saved state (a new var/, a lost file) makes the agent defer the alerts it
missed until it has history again; it never reports a cause it cannot support.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar, cast

from engine.agents.diagnosis import DiagnosisAgent
from engine.agents.diagnosis_state import AssetState, DiagnosisState
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
SAVE_CHUNK = 100
"""Assets per transaction when every asset is saved (at stop): ~0.6 s of CPU each at 15 min of
history per pump, so a stop cut short loses at most one chunk's fresher rows."""


class DiagnosisService(AgentService[DiagnosisInput, DiagnosisReport]):
    name: ClassVar[str] = "diagnosis"
    title: ClassVar[str] = "agent-diagnosis"
    health_model = DiagnosisHealth
    inputs = (ALL_TELEMETRY, "alerts/+")
    output_event = "diagnosis"
    output_ids = ("diagnosis_id", "alert_id", "asset", "root_cause", "stage")

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
        self._dirty: set[str] = set()
        """Assets whose state changed since their row was saved (saved by the next commit)."""
        self._pending_by_asset: dict[str, int] = {}
        self._restore()

    def _restore(self) -> None:
        """The saved rows (or an earlier version's whole-state blob, then rewritten as rows).
        A row that does not parse (another version's layout, a damaged file) is skipped and
        said: that asset starts empty and defers, the others carry on."""
        rows = self.store.load_rows()
        legacy = None if rows else self.store.load_legacy()
        states: list[AssetState] = []
        if legacy is not None:
            try:
                states = list(DiagnosisState.model_validate_json(legacy).assets)
            except ValueError as exc:
                self.log.event("state_not_restored", error=str(exc)[:300], echo=True)
        bad: list[str] = []
        for key, value in rows.items():
            try:
                one = DiagnosisState.model_validate_json(value)
            except ValueError as exc:
                if not bad:
                    self.log.event("state_not_restored", ids={"asset": key[:64]},
                                   error=str(exc)[:300], echo=True)  # fmt: skip
                bad.append(key)
                continue
            states += [a for a in one.assets if a.asset == key]  # a row holds its own asset only
        if not states:
            return
        self.diagnoser.restore_state(DiagnosisState(assets=states))
        self._pending_by_asset = {a.asset: n for a in states if (n := _pending(a))}
        self.pending_finals = sum(self._pending_by_asset.values())
        self.log.event("state_restored", assets=len(states), pending_finals=self.pending_finals,
                       rows_skipped=len(bad), echo=True)  # fmt: skip
        if legacy is not None:
            with contextlib.suppress(RetryLater):  # the blob stays readable until a full save
                self._save_all(tail_s=0.0)

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
        """Commit reports (and their assets' state) durably, then let the publisher send them.
        An asset's state is saved whenever it changes meaningfully: an alert for it arrived, or
        a report for it left."""
        if not outs and not self._unsent and not isinstance(trigger, AlertEvent):
            return
        self._unsent.extend(stamped(o) for o in outs)
        self._dirty.update(o.asset for o in self._unsent)
        if trigger is not None:
            self._dirty.add(trigger.asset)
        self._commit(trigger)

    def _evict(self, victim: str) -> None:
        self._dirty.add(victim)  # its row goes with the next commit (or the save at stop)
        super()._evict(victim)

    def _commit(
        self,
        trigger: DiagnosisInput | None,
        names: list[str] | None = None,
        tail_s: float = 0.0,
        stale: Iterable[str] = (),
        drop_legacy: bool = False,
    ) -> None:
        """The unsent reports and the rows of ``names`` (default: the changed assets) in one
        transaction; the rows of ``stale`` assets deleted."""
        agent = self.diagnoser
        names = sorted(self._dirty) if names is None else names
        rows: dict[str, str | None] = dict.fromkeys(stale)
        pending: dict[str, int] = {}
        for name in names:
            state = agent.export_asset(name, tail_s=tail_s)
            rows[name] = None if state is None else DiagnosisState(assets=[state]).model_dump_json()
            pending[name] = 0 if state is None else _pending(state)
        try:
            self.store.commit(self._unsent, rows, drop_legacy=drop_legacy)
        except (sqlite3.Error, OSError) as exc:
            self._store_error = f"{self.store.path}: {type(exc).__name__}: {exc}"
            self.log.event("store_failed", error=self._store_error, echo=True)
            raise RetryLater(self._store_error) from exc
        self._store_error = None
        self._dirty.difference_update(rows)
        for name, n in pending.items():
            if n:
                self._pending_by_asset[name] = n
            else:
                self._pending_by_asset.pop(name, None)
        for name in stale:
            self._pending_by_asset.pop(name, None)
        self.pending_finals = sum(self._pending_by_asset.values())
        committed, self._unsent = self._unsent, []
        for out in committed:
            self._logged(out, trigger)
        if committed:
            self.publisher.wake()

    def _save_all(self, tail_s: float) -> None:
        """Every asset's row (rows of assets the agent no longer holds deleted), in
        transactions of ``SAVE_CHUNK`` assets, those with pending finals first: a stop that is
        cut short (SIGKILL after the supervisor's grace period, with a thousand pumps on a busy
        machine) keeps what it saved, every row a whole asset, and the earlier rows for the
        rest — never a torn state."""
        names = self.diagnoser.asset_names()
        names.sort(key=lambda a: a not in self._pending_by_asset)
        stale = set(self.store.row_keys()) - set(names)
        for k in range(0, max(1, len(names)), SAVE_CHUNK):
            first = k == 0
            self._commit(None, names[k : k + SAVE_CHUNK], tail_s, stale if first else (), first)

    def on_start(self) -> None:
        super().on_start()
        self.publisher.start()  # re-sends whatever a previous run left unacknowledged

    def on_stop(self) -> None:
        """Alerts still waiting stay waiting: their state is saved (with recent history) and
        restored at the next start, where they are decided on the history after it — never
        guessed early for want of it."""
        with self._lock:
            try:
                self._save_all(tail_s=STOP_TAIL_S)
            except RetryLater:
                self.log.event("state_not_saved", error=self._store_error, echo=True)
        self.publisher.stop(timeout=5)
        super().on_stop()

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


def _pending(state: AssetState) -> int:
    return sum(al.pending is not None for al in state.alerts)
