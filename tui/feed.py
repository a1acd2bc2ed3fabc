"""The bridge between the bus thread and the UI: bounded ring buffers behind one lock.

paho calls ``PlantFeed.ingest`` on its network thread for every message; that call only appends
to bounded deques and dicts (O(1), no widget is touched, nothing can grow without limit). The UI
reads copies on a timer (``PlantScreen`` at <= 10 Hz, inside ``App.batch_update``) and redraws
only what changed, which it learns from the per-area version counters. A flood of telemetry
therefore costs the UI one redraw per tick, however many messages arrived, and memory stays flat
at ``history x signals x assets`` floats plus ``max_alerts`` alerts and ``max_tickets`` tickets.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace

from engine.schemas import (
    AlertEvent,
    DiagnosisReport,
    Feedback,
    PlantMessage,
    Telemetry,
    Ticket,
    Truth,
)
from tui.scales import measured_signals


@dataclass(frozen=True)
class AlertRow:
    """One alarm episode as the feed shows it: the alert, later its diagnosis, and the simulator's
    ground truth at the moment it arrived (shown only by the truth overlay)."""

    alert_id: str
    asset: str
    status: str
    ts: float
    onset_ts: float
    severity: str
    signals: tuple[str, ...]
    score: float
    arrival: int
    diagnosis: DiagnosisReport | None = None
    truth: Truth | None = None


@dataclass(frozen=True)
class AssetView:
    """A copy of one asset's recent telemetry, safe to read on the UI thread."""

    asset: str
    ts: float | None
    scenario: str | None
    history: dict[str, tuple[float, ...]]
    """signal -> values, oldest first."""
    truth: Truth | None
    alert_signals: frozenset[str]
    """Signals named by an active alert on this asset."""


@dataclass
class _Asset:
    history: dict[str, deque[float]] = field(default_factory=dict)
    last: Telemetry | None = None


@dataclass(frozen=True)
class Versions:
    telemetry: int = 0
    alerts: int = 0
    tickets: int = 0


class PlantFeed:
    """Thread-safe, bounded store of what the plant screen shows."""

    def __init__(
        self,
        *,
        history: int = 240,
        max_alerts: int = 500,
        max_tickets: int = 1000,
        max_assets: int = 64,
        max_signals: int = 32,
    ) -> None:
        self.history = history
        self.max_alerts = max_alerts
        self.max_tickets = max_tickets
        self.max_assets = max_assets
        self.max_signals = max_signals
        self._lock = threading.Lock()
        self._assets: OrderedDict[str, _Asset] = OrderedDict()
        self._alerts: OrderedDict[str, AlertRow] = OrderedDict()
        self._tickets: OrderedDict[str, Ticket] = OrderedDict()
        self._arrivals = 0
        self._versions = Versions()
        self._counts: dict[str, int] = {
            "telemetry": 0,
            "alerts": 0,
            "diagnosis": 0,
            "tickets": 0,
            "feedback": 0,
        }

    # ---------------------------------------------------------------- writer side (any thread)

    def ingest(self, msg: PlantMessage) -> None:
        """Record one parsed bus message. Called on the MQTT thread; never raises for a valid
        model and never blocks for longer than a few dict operations."""
        with self._lock:
            if isinstance(msg, Telemetry):
                self._counts["telemetry"] += 1
                self._on_telemetry(msg)
            elif isinstance(msg, AlertEvent):
                self._counts["alerts"] += 1
                self._on_alert(msg)
            elif isinstance(msg, DiagnosisReport):
                self._counts["diagnosis"] += 1
                self._on_diagnosis(msg)
            elif isinstance(msg, Ticket):
                self._counts["tickets"] += 1
                self._put_ticket(msg)
            elif isinstance(msg, Feedback):
                self._counts["feedback"] += 1

    def put_tickets(self, tickets: list[Ticket]) -> None:
        """Merge a list fetched from the review API (newer versions win, as on the bus)."""
        with self._lock:
            for ticket in tickets:
                self._put_ticket(ticket)

    def _bump(self, **areas: bool) -> None:
        v = self._versions
        self._versions = Versions(
            telemetry=v.telemetry + int(areas.get("telemetry", False)),
            alerts=v.alerts + int(areas.get("alerts", False)),
            tickets=v.tickets + int(areas.get("tickets", False)),
        )

    def _on_telemetry(self, t: Telemetry) -> None:
        asset = self._assets.get(t.asset)
        if asset is None:
            if len(self._assets) >= self.max_assets:
                self._assets.popitem(last=False)
            asset = self._assets[t.asset] = _Asset()
        else:
            self._assets.move_to_end(t.asset)
        for name, value in t.signals.items():
            series = asset.history.get(name)
            if series is None:
                if len(asset.history) >= self.max_signals:
                    continue
                series = asset.history[name] = deque(maxlen=self.history)
            series.append(value)
        asset.last = t
        self._bump(telemetry=True)

    def _on_alert(self, a: AlertEvent) -> None:
        row = self._alerts.get(a.alert_id)
        if row is None:
            self._arrivals += 1
            last = self._assets.get(a.asset)
            truth = last.last.truth if last is not None and last.last is not None else None
            row = AlertRow(
                alert_id=a.alert_id,
                asset=a.asset,
                status=a.status,
                ts=a.ts,
                onset_ts=a.onset_ts,
                severity=a.severity,
                signals=tuple(a.signals),
                score=a.score,
                arrival=self._arrivals,
                truth=truth,
            )
        else:
            row = replace(
                row,
                status=a.status,
                ts=a.ts,
                severity=a.severity if a.status == "active" else row.severity,
                signals=tuple(a.signals) or row.signals,
                score=a.score,
            )
        self._put_alert(row)

    def _on_diagnosis(self, d: DiagnosisReport) -> None:
        row = self._alerts.get(d.alert_id)
        if row is None:
            # The alert itself came before we connected: show the episode from its diagnosis.
            self._arrivals += 1
            row = AlertRow(
                alert_id=d.alert_id,
                asset=d.asset,
                status="active",
                ts=d.ts,
                onset_ts=d.onset_ts,
                severity=d.severity,
                signals=tuple(d.signals),
                score=0.0,
                arrival=self._arrivals,
                diagnosis=d,
            )
        elif row.diagnosis is not None and row.diagnosis.stage == "final" and d.stage != "final":
            return  # a late provisional report never hides the final one
        else:
            row = replace(row, diagnosis=d)
        self._put_alert(row)

    def _put_alert(self, row: AlertRow) -> None:
        self._alerts[row.alert_id] = row
        while len(self._alerts) > self.max_alerts:
            self._alerts.popitem(last=False)
        self._bump(alerts=True, telemetry=True)  # active-alert colouring lives on the signals

    def _put_ticket(self, t: Ticket) -> None:
        old = self._tickets.get(t.ticket_id)
        if old is not None and (old.revision, old.updated_at) > (t.revision, t.updated_at):
            return  # a stale copy (an older fetch racing a newer bus update)
        self._tickets[t.ticket_id] = t
        while len(self._tickets) > self.max_tickets:
            self._tickets.popitem(last=False)
        self._bump(tickets=True)

    # ---------------------------------------------------------------- reader side (UI thread)

    @property
    def versions(self) -> Versions:
        return self._versions

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def assets(self) -> list[str]:
        with self._lock:
            names = set(self._assets) | {row.asset for row in self._alerts.values()}
            names |= {t.asset for t in self._tickets.values()}
        return sorted(names)

    def live_assets(self) -> list[str]:
        """Assets that have sent telemetry."""
        with self._lock:
            return sorted(self._assets)

    def latest_ts(self) -> float | None:
        """The newest simulated time any asset reported (the factory screen's status bar)."""
        with self._lock:
            times = [a.last.ts for a in self._assets.values() if a.last is not None]
        return max(times, default=None)

    def asset_view(self, asset: str) -> AssetView:
        """The asset's telemetry so far (empty history if none arrived yet)."""
        with self._lock:
            state = self._assets.get(asset)
            named = {
                s
                for row in self._alerts.values()
                if row.asset == asset and row.status == "active"
                for s in row.signals
            }
            active = frozenset(m for s in named for m in measured_signals(s))
            if state is None:
                return AssetView(asset, None, None, {}, None, active)
            last = state.last
            return AssetView(
                asset=asset,
                ts=last.ts if last else None,
                scenario=last.scenario if last else None,
                history={name: tuple(series) for name, series in state.history.items()},
                truth=last.truth if last else None,
                alert_signals=active,
            )

    def alerts(self) -> list[AlertRow]:
        """Every kept episode, newest arrival first."""
        with self._lock:
            rows = list(self._alerts.values())
        rows.sort(key=lambda r: r.arrival, reverse=True)
        return rows

    def tickets(self) -> list[Ticket]:
        with self._lock:
            return list(self._tickets.values())

    def ticket(self, ticket_id: str) -> Ticket | None:
        with self._lock:
            return self._tickets.get(ticket_id)
