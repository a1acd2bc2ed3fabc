"""The fleet at a glance: one row per asset, worst first. Pure (no Textual), so the ordering and
the filter are testable and cheap: 1,000 assets are joined and sorted in a few milliseconds.

A row joins three sources: the asset's last telemetry (``PlantFeed.fleet``), its alarm episodes
(from the bus, with the alarm states the review API keeps, when it has them), and its tickets
(from the store). "Worst" is, in order: an unacknowledged alarm, the highest active priority,
the number unacknowledged, open tickets, silence (stale telemetry); out-of-service assets sink to
the bottom (they are known and handled), then by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.schemas import Ticket
from tui.feed import AlertRow, AssetSummary

KEY_SIGNALS: tuple[tuple[str, str], ...] = (
    ("vibration", "vib mm/s"),
    ("bearing_temp", "brg °C"),
    ("flow", "flow m³/h"),
)
"""The values a fleet row shows (the ones a pump's health is read from first)."""
STALE_S = 10.0
"""No telemetry for this many wall seconds: the row says STALE."""
_SEV_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}


@dataclass(frozen=True)
class AlarmFlags:
    """What the review API knows about one alarm beyond the bus: acknowledged, shelved."""

    acknowledged: bool = False
    shelved: bool = False


@dataclass(frozen=True)
class FleetRow:
    asset: str
    state: str
    """ALARM, RTN (returned, unacknowledged), STALE, STOP, OK, OOS, or — (no telemetry)."""
    priority: str
    """Highest priority among active alarms ("" when none)."""
    cause: str
    """The worst active alarm's diagnosis, else its signals."""
    active: int
    unacked: int
    open_tickets: int
    out_of_service: bool
    oos_reason: str
    values: tuple[float | None, ...]
    ts: float | None

    def haystack(self) -> str:
        words = [self.asset, self.state, self.priority, self.cause]
        if self.out_of_service:
            words += ["oos", "out of service", self.oos_reason]
        if self.unacked:
            words.append("unack")
        if self.open_tickets:
            words.append("ticket")
        return " ".join(words).lower()


def matches(row: FleetRow, query: str) -> bool:
    """Every word of the query appears in the row (asset, state, priority, cause, flags)."""
    hay = row.haystack()
    return all(word in hay for word in query.lower().split())


def sort_key(row: FleetRow) -> tuple[object, ...]:
    return (
        row.out_of_service,
        -(row.unacked > 0),
        -_SEV_RANK.get(row.priority, 0),
        -row.unacked,
        -row.open_tickets,
        row.state != "STALE",
        row.asset,
    )


def fleet_rows(
    summaries: Iterable[AssetSummary],
    alerts: Iterable[AlertRow],
    tickets: Iterable[Ticket],
    now: float,
    *,
    flags: Mapping[str, AlarmFlags] | None = None,
    out_of_service: Mapping[str, str] | None = None,
) -> list[FleetRow]:
    """Every asset any source knows, worst first. ``now`` is the monotonic clock of
    ``AssetSummary.received``; ``flags`` (alarm id -> acknowledged/shelved) and
    ``out_of_service`` (asset -> reason) come from the review API when it serves them."""
    flags = flags or {}
    oos = out_of_service or {}
    by_asset: dict[str, list[AlertRow]] = {}
    for a in alerts:
        by_asset.setdefault(a.asset, []).append(a)
    open_tickets: dict[str, int] = {}
    for t in tickets:
        if t.state != "closed":
            open_tickets[t.asset] = open_tickets.get(t.asset, 0) + 1
    seen: dict[str, AssetSummary | None] = {s.asset: s for s in summaries}
    for name in list(by_asset) + list(open_tickets) + list(oos):
        seen.setdefault(name, None)

    rows = []
    for name, summary in seen.items():
        episodes = by_asset.get(name, [])
        active = [
            e for e in episodes if e.status == "active" and not flags.get(e.alert_id, _NO).shelved
        ]
        unacked = [
            e
            for e in episodes
            if not flags.get(e.alert_id, _NO).acknowledged
            and not flags.get(e.alert_id, _NO).shelved
        ]
        worst = max(active, key=lambda e: (_SEV_RANK.get(e.severity, 0), e.onset_ts), default=None)
        if worst is not None:
            d = worst.diagnosis
            cause = d.root_cause if d is not None else ", ".join(worst.signals)
        else:
            cause = ""
        values: tuple[float | None, ...] = tuple(
            summary.values.get(sig) if summary is not None else None for sig, _ in KEY_SIGNALS
        )
        if name in oos:
            state = "OOS"
        elif active:
            state = "ALARM"
        elif unacked:
            state = "RTN"
        elif summary is None or summary.ts is None:
            state = "—"
        elif now - summary.received > STALE_S:
            state = "STALE"
        elif summary.values.get("speed", 1.0) <= 1.0:
            state = "STOP"
        else:
            state = "OK"
        rows.append(
            FleetRow(
                asset=name,
                state=state,
                priority=worst.severity if worst is not None else "",
                cause=cause,
                active=len(active),
                unacked=len(unacked),
                open_tickets=open_tickets.get(name, 0),
                out_of_service=name in oos,
                oos_reason=oos.get(name, ""),
                values=values,
                ts=summary.ts if summary is not None else None,
            )
        )
    rows.sort(key=sort_key)
    return rows


_NO = AlarmFlags()
