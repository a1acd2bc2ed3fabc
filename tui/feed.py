"""The bridge between the bus thread and the UI: bounded buffers behind one lock.

paho calls ``PlantFeed.ingest`` on its network thread for every message; that call only folds the
message into preallocated or bounded structures (no widget is touched, nothing grows without
limit). The UI reads copies on a timer (at <= 10 Hz, inside ``App.batch_update``) and redraws only
what changed, which it learns from the per-area version counters. A flood of telemetry therefore
costs the UI one redraw per tick, however many messages arrived.

Memory: per asset a fixed ``TrendHistory`` (min/max buckets over four spans, ~60 KB for a pump)
plus its last message; ``max_assets`` assets (an asset beyond it is refused and counted, unless
the longest-idle one has been silent for ``idle_evict_s``), ``max_alerts`` episodes and
``max_tickets`` tickets.

Tickets come from the store only (the review API): a ``tickets/{asset}`` message on the bus is
never shown, it only names a ticket to fetch again (``take_ticket_hints``). Anyone who can publish
on the broker could forge one; the store cannot be forged that way.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from engine.schemas import (
    SEVERITIES,
    AlertEvent,
    DiagnosisReport,
    Feedback,
    PlantMessage,
    Telemetry,
    Ticket,
    Truth,
)
from tui.scales import measured_signals
from tui.trend import TrendHistory

MAX_TICKET_HINTS = 256
"""Ticket ids named on the bus awaiting a refetch; more (a flood) are dropped and counted."""


@dataclass(frozen=True)
class AlertRow:
    """One alarm episode as the feed shows it: the alert at its highest revision, later its
    diagnosis, and the simulator's ground truth at the moment it arrived (truth overlay only)."""

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
    revision: int = 0
    cleared_ts: float | None = None
    peak_severity: str = ""
    """The highest severity the episode reached (its priority; stays after it clears)."""


@dataclass(frozen=True)
class AssetView:
    """A copy of one asset's telemetry, safe to read on the UI thread."""

    asset: str
    ts: float | None
    scenario: str | None
    trend: TrendHistory | None
    """Min/max history over every span (a snapshot: the feed keeps writing its own)."""
    values: dict[str, float]
    """The last sample's value per signal."""
    truth: Truth | None
    alert_signals: frozenset[str]
    """Signals named by an active alert on this asset."""

    @property
    def names(self) -> list[str]:
        return list(self.values)


@dataclass
class _Asset:
    trend: TrendHistory
    last: Telemetry | None = None
    received: float = 0.0


@dataclass(frozen=True)
class Versions:
    telemetry: int = 0
    alerts: int = 0
    tickets: int = 0


@dataclass
class Counters:
    """What the feed refused or dropped, shown on screen (nothing is dropped silently)."""

    assets_refused: int = 0
    """Telemetry samples of a new asset turned away (samples, not assets): the feed held
    ``max_assets`` assets and none had been silent for ``idle_evict_s`` (the fleet screen)."""
    assets_evicted: int = 0
    """Assets dropped, history and all, to make room for a new one after ``idle_evict_s``
    of silence; the new asset is shown, the old one starts afresh if it speaks again."""
    signals_refused: int = 0
    """Signal values not kept because their asset already had ``max_signals`` signals (a
    pump sends 10); counted per value, so a stream that keeps sending them keeps counting."""
    stale_alerts: int = 0
    """Alert revisions older than one already shown (C1: the highest revision wins)."""
    ticket_hints_dropped: int = 0
    """Ticket ids from the bus not queued for a refetch because ``MAX_TICKET_HINTS`` were
    already waiting; the periodic fetch of every ticket still brings the change, later."""
    by_kind: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("telemetry", "alerts", "diagnosis", "tickets", "feedback"), 0
        )
    )


_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def _worse(a: str, b: str) -> str:
    return a if _SEVERITY_RANK.get(a, -1) >= _SEVERITY_RANK.get(b, -1) else b


class PlantFeed:
    """Thread-safe, bounded store of what the plant screens show."""

    def __init__(
        self,
        *,
        max_alerts: int = 500,
        max_tickets: int = 1000,
        max_assets: int = 5000,
        max_signals: int = 32,
        idle_evict_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_alerts = max_alerts
        """Alarm episodes kept (one row per alert id), the first raised going first: bounds the
        memory a flood of alerts can take."""
        self.max_tickets = max_tickets
        """Tickets kept from the store's answers, the first one stored going first."""
        self.max_assets = max_assets
        """Assets with a trend history; ~55 KiB per pump, so 5,000 take ~275 MB at most."""
        self.max_signals = max_signals
        """Signals per asset (a pump sends 10): room for a richer stream, none for a runaway one
        whose every message names new signals."""
        self.idle_evict_s = idle_evict_s
        """Seconds (on ``clock``) an asset must have been silent before a new asset, arriving
        with the feed full, may take its place: five minutes, far longer than a live asset's
        sample period (1 s for a simulated pump), so a reporting asset is never the one that
        goes."""
        self.clock = clock
        self._lock = threading.Lock()
        self._assets: OrderedDict[str, _Asset] = OrderedDict()
        """Least recently heard first (eviction order)."""
        self._alerts: OrderedDict[str, AlertRow] = OrderedDict()
        self._tickets: OrderedDict[str, Ticket] = OrderedDict()
        self._ticket_hints: OrderedDict[str, None] = OrderedDict()
        self._ticket_puts = 0
        self._ticket_put_at: dict[str, int] = {}
        self._arrivals = 0
        self._versions = Versions()
        self.counters = Counters()

    # ---------------------------------------------------------------- writer side (any thread)

    def ingest(self, msg: PlantMessage) -> None:
        """Record one parsed bus message. Called on the MQTT thread; never raises for a valid
        model and never blocks for longer than a few array operations."""
        with self._lock:
            kinds = self.counters.by_kind
            if isinstance(msg, Telemetry):
                kinds["telemetry"] += 1
                self._on_telemetry(msg)
            elif isinstance(msg, AlertEvent):
                kinds["alerts"] += 1
                self._on_alert(msg)
            elif isinstance(msg, DiagnosisReport):
                kinds["diagnosis"] += 1
                self._on_diagnosis(msg)
            elif isinstance(msg, Ticket):
                kinds["tickets"] += 1
                self._hint_ticket(msg.ticket_id)
            elif isinstance(msg, Feedback):
                kinds["feedback"] += 1
                self._hint_ticket(msg.ticket_id)

    def ticket_mark(self) -> int:
        """Take before requesting a complete ticket list; pass to ``put_tickets``."""
        with self._lock:
            return self._ticket_puts

    def put_tickets(self, tickets: list[Ticket], *, complete_since: int | None = None) -> None:
        """Tickets as the store (the review API) returned them: the only source of ticket state.

        ``complete_since``: the list is every ticket the store had when the request was made
        (``ticket_mark()`` then), so a ticket missing from it is gone, unless it was fetched
        again after that mark (a slow listing must not hide a ticket created meanwhile).
        Among fetched copies the newer revision wins (two fetches can finish out of order)."""
        with self._lock:
            if complete_since is not None:
                keep = {t.ticket_id for t in tickets}
                for gone in [
                    k
                    for k in self._tickets
                    if k not in keep and self._ticket_put_at.get(k, 0) <= complete_since
                ]:
                    del self._tickets[gone]
                    self._ticket_put_at.pop(gone, None)
            for ticket in tickets:
                self._put_ticket(ticket)
            self._bump(tickets=True)

    def take_ticket_hints(self, limit: int = 20) -> list[str]:
        """Ticket ids the bus said changed, oldest first, to fetch from the review API."""
        with self._lock:
            out: list[str] = []
            while self._ticket_hints and len(out) < limit:
                out.append(self._ticket_hints.popitem(last=False)[0])
            return out

    def _hint_ticket(self, ticket_id: str) -> None:
        if ticket_id in self._ticket_hints:
            return
        if len(self._ticket_hints) >= MAX_TICKET_HINTS:
            self.counters.ticket_hints_dropped += 1
            return
        self._ticket_hints[ticket_id] = None

    def _bump(self, **areas: bool) -> None:
        v = self._versions
        self._versions = Versions(
            telemetry=v.telemetry + int(areas.get("telemetry", False)),
            alerts=v.alerts + int(areas.get("alerts", False)),
            tickets=v.tickets + int(areas.get("tickets", False)),
        )

    def _admit(self, name: str) -> _Asset | None:
        """A new asset's slot, or None (refused) when the feed is full of live assets."""
        if len(self._assets) >= self.max_assets:
            oldest_name, oldest = next(iter(self._assets.items()))
            if self.clock() - oldest.received < self.idle_evict_s:
                self.counters.assets_refused += 1
                return None
            del self._assets[oldest_name]
            self.counters.assets_evicted += 1
        asset = self._assets[name] = _Asset(TrendHistory(()))
        return asset

    def _on_telemetry(self, t: Telemetry) -> None:
        asset = self._assets.get(t.asset)
        if asset is None:
            asset = self._admit(t.asset)
            if asset is None:
                return
        else:
            self._assets.move_to_end(t.asset)
        trend = asset.trend
        unknown = [n for n in t.signals if n not in trend.index]
        if unknown:
            room = self.max_signals - len(trend.names)
            if len(unknown) > room:
                self.counters.signals_refused += len(unknown) - max(room, 0)
                unknown = unknown[: max(room, 0)]
            trend.add_signals(unknown)
        trend.add(t.ts, t.signals)
        asset.last = t
        asset.received = self.clock()
        self._bump(telemetry=True)

    def _on_alert(self, a: AlertEvent) -> None:
        revision = int(getattr(a, "revision", 0) or 0)
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
                revision=revision,
                cleared_ts=a.cleared_ts if a.status == "cleared" else None,
                peak_severity=a.severity,
            )
        else:
            if revision < row.revision or (row.status == "cleared" and a.status == "active"):
                # C1: an older or repeated publication never undoes a newer one; a cleared
                # episode stays cleared (a late "active" is a redelivery).
                self.counters.stale_alerts += 1
                return
            row = replace(
                row,
                status=a.status,
                ts=a.ts,
                severity=a.severity if a.status == "active" else row.severity,
                signals=tuple(a.signals) or row.signals,
                score=a.score,
                revision=revision,
                cleared_ts=(a.cleared_ts or a.ts) if a.status == "cleared" else None,
                peak_severity=_worse(a.severity, row.peak_severity),
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
                peak_severity=d.severity,
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
            return  # an older fetch finishing after a newer one
        self._ticket_puts += 1
        self._tickets[t.ticket_id] = t
        self._ticket_put_at[t.ticket_id] = self._ticket_puts
        while len(self._tickets) > self.max_tickets:
            gone, _ = self._tickets.popitem(last=False)
            self._ticket_put_at.pop(gone, None)

    # ---------------------------------------------------------------- reader side (UI thread)

    @property
    def versions(self) -> Versions:
        return self._versions

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counters.by_kind)

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
        """The asset's telemetry so far (no history if none arrived yet)."""
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
                return AssetView(asset, None, None, None, {}, None, active)
            last = state.last
            return AssetView(
                asset=asset,
                ts=last.ts if last else None,
                scenario=last.scenario if last else None,
                trend=state.trend.copy(),
                values=dict(last.signals) if last else {},
                truth=last.truth if last else None,
                alert_signals=active,
            )

    def heard(self) -> dict[str, float]:
        """Asset -> wall-clock (``clock``) time of its last sample: the fleet's order needs
        only this for healthy assets."""
        with self._lock:
            return {name: a.received for name, a in self._assets.items()}

    def last(self, asset: str) -> tuple[float | None, dict[str, float]]:
        """(simulated time, values) of the asset's last sample (values: the message's own dict,
        never modified)."""
        with self._lock:
            state = self._assets.get(asset)
            if state is None or state.last is None:
                return None, {}
            return state.last.ts, state.last.signals

    def memory_per_asset(self) -> int:
        """Bytes of history one asset holds (fixed once its signals are known)."""
        with self._lock:
            return max((a.trend.memory_bytes for a in self._assets.values()), default=0)

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
