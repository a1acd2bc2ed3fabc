"""The alarm states the review API keeps, as the TUI last fetched them, joined with the episodes
the bus announced.

The bus tells the TUI at once that an episode is raised, escalates or clears (and what the
diagnosis thinks); whether an operator acknowledged, shelved or took the asset out of service is
the store's, fetched over HTTP (``GET /alarms`` with an ETag: an unchanged list costs a 304),
never taken from the bus. ``AlarmBook`` holds the open alarms (every state but "normal"); an
alarm that leaves the open list has returned to normal and been acknowledged, and is kept as
such (bounded) so its bus row does not look unacknowledged again.

``alarm_rows`` joins both into what the alarm list shows: one row per episode, with the store's
state when it has one (an episode the store has not recorded yet shows as new and
unacknowledged; one raised before the TUI connected comes from the store alone).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engine.http_schemas import Alarm, AssetStatus
from tui.feed import AlertRow
from tui.fleet import AlarmFlags

MAX_CLOSED = 1000
"""Alarms remembered after they left the open list (returned to normal and acknowledged)."""

STATE_SHORT = {
    "unacknowledged": "UNACK",
    "acknowledged": "ACK",
    "returned_unacknowledged": "RTN",
    "latched": "LATCH",
    "normal": "ok",
    "shelved": "SHELV",
    "suppressed": "SUPPR",
    "out_of_service": "OOS",
}
"""The state column: ISA-18.2 states in five letters (RTN = returned to normal, unacknowledged;
LATCH = a critical alarm that returned to normal and waits for an acknowledgement)."""


@dataclass(frozen=True)
class Reannunciation:
    """An acknowledged alarm whose priority rose: it needs the operator again."""

    alarm_id: str
    asset: str
    priority: str


@dataclass
class AlarmBook:
    """Replaced on each changed fetch; ``version`` tells screens to redraw."""

    version: int = 0
    etag: str | None = None
    available: bool = False
    """True once the review API has answered ``GET /alarms``."""
    _open: dict[str, Alarm] = field(default_factory=dict)
    _closed: OrderedDict[str, Alarm] = field(default_factory=OrderedDict)
    _assets: dict[str, AssetStatus] = field(default_factory=dict)

    def replace(self, alarms: Iterable[Alarm]) -> list[Reannunciation]:
        """The open list as fetched. Returns the alarms that re-annunciated since the last one."""
        new = {a.alarm_id: a for a in alarms}
        events = []
        for a in new.values():
            old = self._open.get(a.alarm_id)
            if old is not None and a.reannunciations > old.reannunciations:
                events.append(Reannunciation(a.alarm_id, a.asset, a.priority))
        for gone in set(self._open) - set(new):
            last = self._open[gone]
            self._remember_closed(
                last.model_copy(update={"state": "normal", "active": False, "acknowledged": True})
            )
        for alarm_id in new:
            self._closed.pop(alarm_id, None)
        self._open = new
        self.available = True
        self.version += 1
        return events

    def put(self, alarm: Alarm) -> None:
        """One alarm as an action's answer returned it (before the next poll)."""
        if alarm.state == "normal":
            self._open.pop(alarm.alarm_id, None)
            self._remember_closed(alarm)
        else:
            self._open[alarm.alarm_id] = alarm
        self.version += 1

    def set_assets(self, assets: Iterable[AssetStatus]) -> None:
        new = {a.asset: a for a in assets}
        if new != self._assets:
            self._assets = new
            self.version += 1

    def put_asset(self, status: AssetStatus) -> None:
        self._assets[status.asset] = status
        self.version += 1

    def _remember_closed(self, alarm: Alarm) -> None:
        self._closed[alarm.alarm_id] = alarm
        self._closed.move_to_end(alarm.alarm_id)
        while len(self._closed) > MAX_CLOSED:
            self._closed.popitem(last=False)

    # ---------------------------------------------------------------- reading

    def get(self, alarm_id: str) -> Alarm | None:
        return self._open.get(alarm_id) or self._closed.get(alarm_id)

    def open_alarms(self) -> list[Alarm]:
        return list(self._open.values())

    def asset(self, name: str) -> AssetStatus | None:
        return self._assets.get(name)

    def out_of_service(self) -> dict[str, str]:
        """Asset -> reason, for every asset out of service."""
        return {
            name: s.reason or "out of service"
            for name, s in self._assets.items()
            if s.out_of_service
        }


@dataclass(frozen=True)
class AlarmRow:
    """One line of the alarm list: the episode as the bus told it, the store's state if known."""

    row: AlertRow
    alarm: Alarm | None
    settled: bool = False
    """No stored alarm, but the store is answering and the episode has cleared: it is not open
    there, so it returned to normal and was acknowledged (or was never annunciated)."""

    @property
    def alarm_id(self) -> str:
        return self.row.alert_id

    @property
    def state(self) -> str:
        """The store's one-word state; before the store recorded it, the bus's view."""
        if self.alarm is not None:
            return self.alarm.state
        if self.settled:
            return "normal"
        return "unacknowledged" if self.row.status == "active" else "returned_unacknowledged"

    @property
    def acknowledged(self) -> bool:
        if self.alarm is not None:
            return self.alarm.acknowledged
        return self.settled

    @property
    def hidden(self) -> bool:
        """Shelved, suppressed or out of service: recorded, not annunciated."""
        return self.state in ("shelved", "suppressed", "out_of_service")

    @property
    def priority(self) -> str:
        if self.alarm is not None:
            return self.alarm.priority
        return self.row.peak_severity or self.row.severity

    @property
    def active(self) -> bool:
        return self.alarm.active if self.alarm is not None else self.row.status == "active"


def row_from_alarm(alarm: Alarm) -> AlertRow:
    """A list row for an alarm the bus has not told this TUI about (raised before it connected)."""
    return AlertRow(
        alert_id=alarm.alarm_id,
        asset=alarm.asset,
        status="active" if alarm.active else "cleared",
        ts=alarm.raised_ts,
        onset_ts=alarm.onset_ts,
        severity=alarm.priority,
        signals=tuple(alarm.signals),
        score=0.0,
        arrival=0,
        revision=alarm.revision,
        cleared_ts=alarm.cleared_ts,
        peak_severity=alarm.priority,
    )


def alarm_rows(rows: Iterable[AlertRow], book: AlarmBook) -> list[AlarmRow]:
    """Bus episodes (newest first, as the feed gives them) with their stored state, then the
    store's open alarms the bus has not shown this TUI, newest raised first."""
    out = [
        AlarmRow(
            r,
            alarm := book.get(r.alert_id),
            settled=alarm is None and book.available and r.status == "cleared",
        )
        for r in rows
    ]
    seen = {r.alarm_id for r in out}
    older = sorted(
        (a for a in book.open_alarms() if a.alarm_id not in seen),
        key=lambda a: a.raised_at,
        reverse=True,
    )
    return out + [AlarmRow(row_from_alarm(a), a) for a in older]


def flags_of(rows: Iterable[AlarmRow]) -> dict[str, AlarmFlags]:
    """Per alarm: acknowledged, and whether it is kept from the operator (shelved, suppressed,
    out of service): what the fleet counts."""
    return {r.alarm_id: AlarmFlags(acknowledged=r.acknowledged, shelved=r.hidden) for r in rows}


def by_id(rows: Iterable[AlarmRow]) -> Mapping[str, AlarmRow]:
    return {r.alarm_id: r for r in rows}
