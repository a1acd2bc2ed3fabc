"""The fleet at a glance: one row per asset, worst first. Pure (no Textual), so the ordering and
the filter are testable.

Built for a thousand assets at 1 Hz each. The order depends on alarms, tickets and silence, not
on the values, so a redraw does the per-asset work only for the assets that have an alarm, a
ticket or an out-of-service mark (``alarm_summary``: bounded by the alert and ticket lists);
every other asset is "healthy" and placed by name, and its values are looked up only when its
row is on screen (``FleetRow.build``).

"Worst" is, in order: an unacknowledged alarm, the highest active priority, the number
unacknowledged, open tickets, silence (stale telemetry); out-of-service assets sink to the
bottom (they are known and handled); then by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.schemas import Ticket
from tui.feed import AlertRow

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


_NO = AlarmFlags()


@dataclass(frozen=True)
class AssetAlarms:
    """The alarm and ticket side of one asset that has any."""

    priority: str = ""
    """Highest priority among active alarms ("" when none)."""
    cause: str = ""
    """The worst active alarm's diagnosis, else its signals."""
    active: int = 0
    unacked: int = 0
    open_tickets: int = 0
    out_of_service: bool = False
    oos_reason: str = ""

    def sort_key(self) -> tuple[object, ...]:
        return (
            self.out_of_service,
            -(self.unacked > 0),
            -_SEV_RANK.get(self.priority, 0),
            -self.unacked,
            -self.open_tickets,
        )


HEALTHY = AssetAlarms()


@dataclass(frozen=True)
class FleetRow:
    """One row as drawn (built only for rows on screen)."""

    asset: str
    state: str
    """ALARM, RTN (returned, unacknowledged), STALE, STOP, OK, OOS, or — (no telemetry)."""
    alarms: AssetAlarms
    values: tuple[float | None, ...]
    ts: float | None

    @staticmethod
    def build(
        asset: str,
        alarms: AssetAlarms,
        received: float | None,
        ts: float | None,
        values: Mapping[str, float],
        now: float,
    ) -> FleetRow:
        return FleetRow(
            asset=asset,
            state=row_state(alarms, received, values, now),
            alarms=alarms,
            values=tuple(values.get(sig) for sig, _ in KEY_SIGNALS),
            ts=ts,
        )


def row_state(
    alarms: AssetAlarms, received: float | None, values: Mapping[str, float], now: float
) -> str:
    if alarms.out_of_service:
        return "OOS"
    if alarms.active:
        return "ALARM"
    if alarms.unacked:
        return "RTN"
    if received is None:
        return "—"
    if now - received > STALE_S:
        return "STALE"
    if values.get("speed", 1.0) <= 1.0:
        return "STOP"
    return "OK"


def haystack(asset: str, alarms: AssetAlarms, stale: bool) -> str:
    """What the filter matches against (state words without the telemetry values)."""
    words = [asset, alarms.priority, alarms.cause]
    if alarms.out_of_service:
        words += ["oos", "out of service", alarms.oos_reason]
    elif alarms.active:
        words.append("alarm")
    elif alarms.unacked:
        words.append("rtn")
    elif stale:
        words.append("stale")
    else:
        words.append("ok")
    if alarms.unacked:
        words.append("unack")
    if alarms.open_tickets:
        words.append("ticket")
    return " ".join(words).lower()


def matches(text: str, query: str) -> bool:
    """Every word of the query appears in the row's haystack."""
    return all(word in text for word in query.lower().split())


def alarm_summary(
    alerts: Iterable[AlertRow],
    tickets: Iterable[Ticket],
    *,
    flags: Mapping[str, AlarmFlags] | None = None,
    out_of_service: Mapping[str, str] | None = None,
) -> dict[str, AssetAlarms]:
    """Per asset with any alarm, open ticket or out-of-service mark: its alarm side.

    ``flags`` (alarm id -> acknowledged / shelved) and ``out_of_service`` (asset -> reason) come
    from the review API when it serves them; without them every episode counts as
    unacknowledged (nobody has acknowledged it)."""
    flags = flags or {}
    oos = out_of_service or {}
    episodes: dict[str, list[AlertRow]] = {}
    for a in alerts:
        episodes.setdefault(a.asset, []).append(a)
    open_tickets: dict[str, int] = {}
    for t in tickets:
        if t.state != "closed":
            open_tickets[t.asset] = open_tickets.get(t.asset, 0) + 1
    out: dict[str, AssetAlarms] = {}
    for asset in {*episodes, *open_tickets, *oos}:
        mine = episodes.get(asset, [])
        shown = [e for e in mine if not flags.get(e.alert_id, _NO).shelved]
        active = [e for e in shown if e.status == "active"]
        unacked = sum(1 for e in shown if not flags.get(e.alert_id, _NO).acknowledged)
        worst = max(active, key=lambda e: (_SEV_RANK.get(e.severity, 0), e.onset_ts), default=None)
        cause = ""
        if worst is not None:
            d = worst.diagnosis
            cause = d.root_cause if d is not None else ", ".join(worst.signals)
        out[asset] = AssetAlarms(
            priority=worst.severity if worst is not None else "",
            cause=cause,
            active=len(active),
            unacked=unacked,
            open_tickets=open_tickets.get(asset, 0),
            out_of_service=asset in oos,
            oos_reason=oos.get(asset, ""),
        )
    return out


def fleet_order(
    received: Mapping[str, float], alarms: Mapping[str, AssetAlarms], now: float
) -> list[str]:
    """Every asset, worst first: the ones with alarms or tickets by their ``sort_key``, then the
    silent ones, then the healthy ones by name; out of service last."""
    marked = sorted(
        (a for a, s in alarms.items() if not s.out_of_service),
        key=lambda a: (*alarms[a].sort_key(), a not in received or now - received[a] <= STALE_S, a),
    )
    rest = sorted(a for a in received if a not in alarms)
    stale = [a for a in rest if now - received[a] > STALE_S]
    healthy = [a for a in rest if now - received[a] <= STALE_S]
    out_of_service = sorted(a for a, s in alarms.items() if s.out_of_service)
    return marked + stale + healthy + out_of_service
