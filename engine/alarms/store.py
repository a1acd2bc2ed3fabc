"""Alarms in the store: their tables live in the same SQLite file as the tickets (contract C6),
so the ticket service can ask, in its own process, whether an alarm is shelved or out of service.

Tables (written once for SQLite and PostgreSQL through the tickets' SQL layer,
``engine/tickets/database.py``; faults come back as its ``StoreError`` with a ``Fault`` kind):

- ``alarms``: one row per alarm (alert episode); the columns the API filters on, and ``doc``, the
  ``Alarm`` as JSON without its history;
- ``alarm_history``: the audit trail, one row per ``AlarmEvent`` (who, when, note), numbered per
  alarm; the first row (the raise) and the latest ``HISTORY_MAX - 1`` are kept;
- ``asset_service``: assets out of service, with reason, who and since, and their history;
- ``alarm_meta``: a change counter (the ``ETag`` of ``GET /alarms``, so a TUI can poll cheaply)
  and the stitched plant clock (below).

Every write is one transaction: the transition computed by the pure ``lifecycle`` from the
stored alarm, the new row, its history lines and the counter. Two operators racing on one alarm
queue on the write lock, and the second is judged against the first's result.

**The plant timeline.** KPIs and chattering are measured in plant time (the simulator's clock;
on a real plant, the wall clock), but every simulator run starts at 0. A raise whose plant time
lies more than ``RUN_RESET_S`` before the latest seen starts a new run, which is placed after
the previous one: ``plant_raised`` = offset of the run + the alert's ``ts``.

Bounds: alarms that are over (normal) are deleted after ``RETENTION_DAYS`` or beyond
``MAX_ALARMS``, oldest first (``prune``); history is capped per alarm.

**The ticket path (contract C6)** calls ``suppression_in(conn, asset, alert_id, signal=...)``
inside its own transaction: why this alert must not open a ticket (shelved, out of service,
chattering), or None. ``create_alarm_tables(conn)`` once at its start makes sure the tables are
there even if the review service never ran.

Why one module of ~600 lines: one repository: the alarm tables' SQL for both dialects and the
transaction around each lifecycle command; the rules are in ``engine/alarms/lifecycle.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.alarms import lifecycle as lc
from engine.http_schemas import Alarm, AlarmEvent, AssetServiceEvent, AssetStatus
from engine.schemas import AlertEvent
from engine.tickets.database import Condition, Conn, TwoConnections, where

RUN_RESET_S = 600.0
HISTORY_MAX = 200
RETENTION_DAYS = 90
MAX_ALARMS = 100_000
LIST_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id      TEXT PRIMARY KEY,
    asset         TEXT NOT NULL,
    source        TEXT NOT NULL,
    state         TEXT NOT NULL,
    priority      TEXT NOT NULL,
    active        INTEGER NOT NULL,
    acknowledged  INTEGER NOT NULL,
    shelved       TEXT,
    shelved_until {real},
    plant_raised  {real} NOT NULL,
    raised_at     {real} NOT NULL,
    updated_at    {real} NOT NULL,
    doc           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alarms_by_asset ON alarms(asset, raised_at);
CREATE INDEX IF NOT EXISTS alarms_by_source ON alarms(source, plant_raised);
CREATE INDEX IF NOT EXISTS alarms_by_state ON alarms(state);
CREATE INDEX IF NOT EXISTS alarms_by_plant_time ON alarms(plant_raised);
CREATE INDEX IF NOT EXISTS alarms_shelf_due ON alarms(shelved_until);
CREATE TABLE IF NOT EXISTS alarm_history (
    alarm_id TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    doc      TEXT NOT NULL,
    PRIMARY KEY (alarm_id, seq)
);
CREATE TABLE IF NOT EXISTS asset_service (
    asset TEXT PRIMARY KEY,
    doc   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alarm_meta (
    key   TEXT PRIMARY KEY,
    value {real} NOT NULL
);
"""


def create_alarm_tables(conn: Conn) -> None:
    """The alarm tables, if missing (idempotent; inside the caller's transaction)."""
    conn.script(_SCHEMA)


@dataclass(frozen=True)
class Recorded:
    """What an alert did: ``alarm`` after it (None: a stale or repeated revision, ignored) and
    ``created`` (first time this alert id was seen)."""

    alarm: Alarm | None
    created: bool


def _ts(t: datetime) -> float:
    return t.timestamp()


def _doc(alarm: Alarm) -> str:
    return alarm.model_copy(update={"history": []}).model_dump_json()


class AlarmStore(TwoConnections):
    """The alarm tables of the store at ``target`` (a path or a ``postgresql://`` URL): one
    connection for writes, one for reads, each safe across threads and processes."""

    def __init__(
        self,
        target: str | Path,
        *,
        policy: lc.Policy = lc.DEFAULT_POLICY,
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.policy = policy
        super().__init__(target, busy_timeout_s=busy_timeout_s)

    def _create(self, conn: Conn) -> None:
        create_alarm_tables(conn)

    def _write(self) -> Any:
        return self.db.transaction()

    def _read(self) -> Any:
        return self._reader.snapshot()

    # ---- rows ----------------------------------------------------------------------------------

    @staticmethod
    def _meta(c: Conn, key: str, default: float = 0.0) -> float:
        value = c.scalar("SELECT value FROM alarm_meta WHERE key = ?", (key,))
        return float(value) if value is not None else default

    @staticmethod
    def _set_meta(c: Conn, key: str, value: float) -> None:
        c.execute(
            "INSERT INTO alarm_meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _bump(self, c: Conn) -> None:
        self._set_meta(c, "version", self._meta(c, "version") + 1)

    def _must(self, c: Conn, alarm_id: str) -> Alarm:
        alarm = _load(c, alarm_id.strip())
        if alarm is None:
            raise lc.AlarmNotFound(f"no alarm {alarm_id!r}")
        return alarm

    @staticmethod
    def _history(c: Conn, ids: Sequence[str]) -> dict[str, list[AlarmEvent]]:
        out: dict[str, list[AlarmEvent]] = {i: [] for i in ids}
        for lo in range(0, len(ids), LIST_CHUNK):
            chunk = list(ids[lo : lo + LIST_CHUNK])
            marks = ",".join("?" * len(chunk))
            for alarm_id, doc in c.all(
                f"SELECT alarm_id, doc FROM alarm_history WHERE alarm_id IN ({marks}) "
                "ORDER BY alarm_id, seq",
                chunk,
            ):
                out[alarm_id].append(AlarmEvent.model_validate_json(doc))
        return out

    def _save(self, c: Conn, new: Alarm, events: Sequence[AlarmEvent]) -> None:
        c.execute(
            "INSERT INTO alarms(alarm_id, asset, source, state, priority, active, acknowledged, "
            "shelved, shelved_until, plant_raised, raised_at, updated_at, doc) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(alarm_id) DO UPDATE SET state = excluded.state, "
            "priority = excluded.priority, active = excluded.active, "
            "acknowledged = excluded.acknowledged, shelved = excluded.shelved, "
            "shelved_until = excluded.shelved_until, updated_at = excluded.updated_at, "
            "doc = excluded.doc",
            (
                new.alarm_id,
                new.asset,
                new.source,
                new.state,
                new.priority,
                int(new.active),
                int(new.acknowledged),
                new.shelved,
                _ts(new.shelved_until) if new.shelved_until else None,
                new.plant_raised,
                _ts(new.raised_at),
                _ts(new.updated_at),
                _doc(new),
            ),
        )
        if events:
            seq = int(
                c.scalar("SELECT MAX(seq) FROM alarm_history WHERE alarm_id = ?", (new.alarm_id,))
                or 0
            )
            c.executemany(
                "INSERT INTO alarm_history(alarm_id, seq, doc) VALUES (?, ?, ?)",
                [(new.alarm_id, seq + i, e.model_dump_json()) for i, e in enumerate(events, 1)],
            )
            last = seq + len(events)
            if last > HISTORY_MAX:
                c.execute(
                    "DELETE FROM alarm_history WHERE alarm_id = ? AND seq > 1 AND seq <= ?",
                    (new.alarm_id, last - HISTORY_MAX + 1),
                )
        self._bump(c)

    def _transition(self, c: Conn, old: Alarm, new: Alarm) -> None:
        """Save ``new``, computed from ``old`` (loaded without history), with its new lines."""
        self._save(c, new, new.history[len(old.history) :])

    def _full(self, c: Conn, alarm_id: str) -> Alarm:
        alarm = self._must(c, alarm_id)
        return alarm.model_copy(update={"history": self._history(c, [alarm_id])[alarm_id]})

    # ---- the asset's service state -----------------------------------------------------------

    # ---- writes: the monitor's alerts ----------------------------------------------------------

    def record_alert(self, alert: AlertEvent, now: datetime) -> Recorded:
        """Apply one alert publication (keeping the highest revision per alert id)."""
        with self._write() as c:
            old = _load(c, alert.alert_id)
            if old is not None:
                if old.asset != alert.asset:
                    return Recorded(None, False)  # an id reused on another asset: not this alarm
                new = lc.apply_alert(old, alert, now, self.policy)
                if new is None:
                    return Recorded(None, False)
                self._transition(c, old, new)
                return Recorded(self._full(c, alert.alert_id), False)
            ts = alert.ts if alert.status == "active" else alert.onset_ts
            offset, last = self._meta(c, "plant_offset"), self._meta(c, "plant_last", -1.0)
            if last >= 0 and ts < last - RUN_RESET_S:  # the simulator started a new run
                offset += last
                last = ts
            last = max(last, ts)
            self._set_meta(c, "plant_offset", offset)
            self._set_meta(c, "plant_last", last)
            source = lc.source_of(alert.asset, alert.signals)
            window_start = offset + ts - self.policy.chatter_window_s
            recent = [
                float(r[0])
                for r in c.all(
                    "SELECT plant_raised FROM alarms WHERE source = ? AND plant_raised >= ?",
                    (source, window_start),
                )
            ]
            ctx = lc.Context(
                plant_offset=offset,
                out_of_service_reason=_oos_reason(c, alert.asset),
                source_shelf=_source_shelf(c, source, now),
                recent_raises=recent,
            )
            new = lc.open_alarm(alert, ctx, now, self.policy)
            self._save(c, new, new.history)
            if new.chattering:
                self._flag_chattering(c, source, window_start, now)
            return Recorded(self._full(c, alert.alert_id), True)

    def _flag_chattering(self, c: Conn, source: str, since: float, now: datetime) -> None:
        """The earlier raises that made a source chatter are flagged too (for the record)."""
        for (doc,) in c.all(
            "SELECT doc FROM alarms WHERE source = ? AND plant_raised >= ?", (source, since)
        ):
            alarm = Alarm.model_validate_json(doc)
            if not alarm.chattering:
                event = AlarmEvent(
                    at=now, who=lc.SYSTEM, action="chattering", detail=f"{source} chatters"
                )
                self._save(c, alarm.model_copy(update={"chattering": True}), [event])

    # ---- writes: operators ---------------------------------------------------------------------

    def acknowledge(self, alarm_id: str, who: str, now: datetime, note: str | None) -> Alarm:
        with self._write() as c:
            old = self._must(c, alarm_id)
            self._transition(c, old, lc.acknowledge(old, who, now, note))
            return self._full(c, old.alarm_id)

    def shelve(
        self,
        alarm_id: str,
        who: str,
        now: datetime,
        *,
        minutes: int | None,
        until_clear: bool,
        note: str | None,
    ) -> Alarm:
        with self._write() as c:
            old = self._must(c, alarm_id)
            new = lc.shelve(
                old,
                who,
                now,
                minutes=minutes,
                until_clear=until_clear,
                note=note,
                policy=self.policy,
            )
            self._transition(c, old, new)
            return self._full(c, old.alarm_id)

    def unshelve(self, alarm_id: str, who: str, now: datetime, note: str | None) -> Alarm:
        with self._write() as c:
            old = self._must(c, alarm_id)
            self._transition(c, old, lc.unshelve(old, who, now, note))
            return self._full(c, old.alarm_id)

    def shelves_due(self, now: datetime) -> bool:
        with self._read() as c:
            row = c.one(
                "SELECT 1 FROM alarms WHERE shelved = 'timed' AND shelved_until <= ? LIMIT 1",
                (_ts(now),),
            )
        return row is not None

    def expire_shelves(self, now: datetime) -> list[Alarm]:
        """End every timed shelve whose time has come; returns the alarms changed."""
        if not self.shelves_due(now):
            return []
        changed = []
        with self._write() as c:
            for (doc,) in c.all(
                "SELECT doc FROM alarms WHERE shelved = 'timed' AND shelved_until <= ?",
                (_ts(now),),
            ):
                old = Alarm.model_validate_json(doc)
                new = lc.expire_shelve(old, now)
                if new is not None:
                    self._transition(c, old, new)
                    changed.append(new)
        return changed

    def set_out_of_service(
        self,
        asset: str,
        on: bool,
        who: str,
        now: datetime,
        reason: str | None,
        *,
        known_only: bool = False,
    ) -> AssetStatus:
        """``known_only``: refuse (``AlarmNotFound``) an asset that has no alarm and no service
        record here, the API's guard against a mistyped name."""
        with self._write() as c:
            record = _asset(c, asset)
            if known_only and record is None and not _has_alarms(c, asset):
                raise lc.AlarmNotFound(
                    f"asset: no alarm names {asset!r}; check the name (or, for a pump that has "
                    "not alarmed yet, say so: never_alarmed, --never-alarmed)"
                )
            current = record or AssetStatus(asset=asset)
            if current.out_of_service == on:
                if on:
                    raise lc.IllegalTransition(
                        f"asset {asset} is already out of service since "
                        f"{current.since:%Y-%m-%d %H:%M}Z by {current.by} ({current.reason})"
                    )
                raise lc.IllegalTransition(f"asset {asset} is not out of service")
            event = AssetServiceEvent(
                at=now,
                who=who,
                action="out_of_service" if on else "returned_to_service",
                reason=reason,
            )
            status = current.model_copy(
                update={
                    "out_of_service": on,
                    "reason": reason if on else None,
                    "since": now,
                    "by": who,
                    "history": [*current.history, event][-HISTORY_MAX:],
                }
            )
            c.execute(
                "INSERT INTO asset_service(asset, doc) VALUES (?, ?) "
                "ON CONFLICT(asset) DO UPDATE SET doc = excluded.doc",
                (asset, status.model_dump_json()),
            )
            for (doc,) in c.all(
                "SELECT doc FROM alarms WHERE asset = ? AND state != 'normal'", (asset,)
            ):
                old = Alarm.model_validate_json(doc)
                new = lc.set_out_of_service(old, on, who, now, reason)
                if new is not None:
                    self._transition(c, old, new)
            self._bump(c)
            return self._asset_status(c, status)

    def prune(
        self, now: datetime, *, keep_days: float = RETENTION_DAYS, max_alarms: int = MAX_ALARMS
    ) -> int:
        """Delete alarms that are over (normal) and old, or beyond the cap; returns how many."""
        with self._write() as c:
            cutoff = _ts(now - timedelta(days=keep_days))
            ids = [
                r[0]
                for r in c.all(
                    "SELECT alarm_id FROM alarms WHERE state = 'normal' AND updated_at < ?",
                    (cutoff,),
                )
            ]
            total = int(c.scalar("SELECT COUNT(*) FROM alarms"))
            excess = total - len(ids) - max_alarms
            if excess > 0:
                ids += [
                    r[0]
                    for r in c.all(
                        "SELECT alarm_id FROM alarms WHERE state = 'normal' AND updated_at >= ? "
                        "ORDER BY updated_at LIMIT ?",
                        (cutoff, excess),
                    )
                ]
            for lo in range(0, len(ids), LIST_CHUNK):
                chunk = ids[lo : lo + LIST_CHUNK]
                marks = ",".join("?" * len(chunk))
                c.execute(f"DELETE FROM alarm_history WHERE alarm_id IN ({marks})", chunk)
                c.execute(f"DELETE FROM alarms WHERE alarm_id IN ({marks})", chunk)
            if ids:
                self._bump(c)
            return len(ids)

    # ---- reads ---------------------------------------------------------------------------------

    def get(self, alarm_id: str) -> Alarm:
        with self._read() as c:
            return self._full(c, alarm_id)

    def version(self) -> int:
        with self._read() as c:
            return int(self._meta(c, "version"))

    def find(
        self,
        state: str = "open",
        asset: str | None = None,
        priority: str | None = None,
        limit: int = 1000,
        *,
        history: bool = True,
    ) -> list[Alarm]:
        """Newest raise first. ``state``: one of ``ALARM_FILTERS``."""
        fixed: dict[str, Condition | None] = {
            "open": ("state != 'normal'", ()),
            "active": ("active = 1", ()),
            "unacked": ("acknowledged = 0", ()),
            "all": None,
        }
        clause, params = where(
            fixed.get(state, ("state = ?", (state,))),
            ("asset = ?", (asset,)) if asset else None,
            ("priority = ?", (priority,)) if priority else None,
        )
        sql = f"SELECT doc FROM alarms{clause} ORDER BY raised_at DESC, alarm_id LIMIT ?"
        params.append(int(limit))
        with self._read() as c:
            alarms = [Alarm.model_validate_json(r[0]) for r in c.all(sql, params)]
            if not history:
                return alarms
            lines = self._history(c, [a.alarm_id for a in alarms])
        return [a.model_copy(update={"history": lines[a.alarm_id]}) for a in alarms]

    def _asset_status(self, c: Conn, status: AssetStatus) -> AssetStatus:
        row = c.one(
            "SELECT SUM(CASE WHEN state != 'normal' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN acknowledged = 0 THEN 1 ELSE 0 END) FROM alarms WHERE asset = ?",
            (status.asset,),
        ) or (0, 0)
        return status.model_copy(
            update={"open_alarms": int(row[0] or 0), "unacknowledged": int(row[1] or 0)}
        )

    def assets(self) -> list[AssetStatus]:
        """Every asset with alarms, or out of service, by name. A record of an asset returned to
        service that never alarmed (a name put out of service by mistake, then taken back) is
        kept for its history but not listed."""
        with self._read() as c:
            known = {r[0] for r in c.all("SELECT DISTINCT asset FROM alarms")}
            records = {
                r[0]: s
                for r in c.all("SELECT asset, doc FROM asset_service")
                if (s := AssetStatus.model_validate_json(r[1])).out_of_service or r[0] in known
            }
            return [
                self._asset_status(c, records.get(a) or AssetStatus(asset=a))
                for a in sorted(known | set(records))
            ]

    def suppression(
        self, alarm_id: str, asset: str, signal: str | None = None, now: datetime | None = None
    ) -> lc.Suppression | None:
        """Contract C6, for the ticket path: why this alarm must not open a ticket (shelved,
        out of service, chattering), or None. Works before the alarm is recorded (the alert and
        its diagnosis race): the asset's service state and a running shelve of its source
        (``asset/signal``, the alert's first signal) still count."""
        with self._read() as c:
            return suppression_in(c, asset, alarm_id, signal=signal, now=now)

    def raised_as(self) -> dict[str, str | None]:
        """How each alarm was presented at its raise, by id (``Alarm.raised_as``; None: stored
        before that was kept): what ``controlroom report`` reads beside a run's logs."""
        with self._read() as c:
            rows = c.all("SELECT doc FROM alarms")
        return {a.alarm_id: a.raised_as for a in (Alarm.model_validate_json(r[0]) for r in rows)}

    def plant_now(self) -> float:
        """The latest plant time seen, on the stitched timeline."""
        with self._read() as c:
            return self._meta(c, "plant_offset") + max(0.0, self._meta(c, "plant_last", 0.0))

    def timeline(self, start: float) -> list[Alarm]:
        """Alarms raised at or after plant time ``start``, and those still active however old
        (standing alarms), oldest first: what the KPIs are measured on."""
        with self._read() as c:
            return [
                Alarm.model_validate_json(r[0])
                for r in c.all(
                    "SELECT doc FROM alarms WHERE plant_raised >= ? OR active = 1 "
                    "ORDER BY plant_raised",
                    (start,),
                )
            ]


# ---- reads shared by the store and the ticket path ---------------------------------------------


def _load(c: Conn, alarm_id: str) -> Alarm | None:
    doc = c.scalar("SELECT doc FROM alarms WHERE alarm_id = ?", (alarm_id,))
    return Alarm.model_validate_json(doc) if doc is not None else None


def _asset(c: Conn, asset: str) -> AssetStatus | None:
    doc = c.scalar("SELECT doc FROM asset_service WHERE asset = ?", (asset,))
    return AssetStatus.model_validate_json(doc) if doc is not None else None


def _has_alarms(c: Conn, asset: str) -> bool:
    return c.scalar("SELECT 1 FROM alarms WHERE asset = ? LIMIT 1", (asset,)) is not None


def _oos_reason(c: Conn, asset: str) -> str | None:
    status = _asset(c, asset)
    return status.reason if status is not None and status.out_of_service else None


def _source_shelf(c: Conn, source: str, now: datetime) -> Alarm | None:
    """The latest alarm of ``source`` whose timed shelve is still running."""
    doc = c.scalar(
        "SELECT doc FROM alarms WHERE source = ? AND shelved = 'timed' AND shelved_until > ? "
        "ORDER BY raised_at DESC LIMIT 1",
        (source, _ts(now)),
    )
    return Alarm.model_validate_json(doc) if doc is not None else None


def suppression_in(
    c: Conn,
    asset: str,
    alert_id: str,
    *,
    signal: str | None = None,
    now: datetime | None = None,
) -> lc.Suppression | None:
    """Why this alert must not open a ticket, read in the transaction ``c``; None: it may.
    Works before the review service has recorded the alert (the alert and its diagnosis race):
    the asset's service state and a running shelve of its source (``asset/signal``, the
    alert's first signal) still count."""
    now = now or datetime.now(UTC)
    alarm = _load(c, alert_id)
    if alarm is not None and alarm.asset != asset:
        alarm = None  # an id on another asset is not this alarm
    shelf = None
    if alarm is None and signal:
        shelf = _source_shelf(c, lc.source_of(asset, [signal]), now)
    return lc.suppression(alarm, _oos_reason(c, asset), shelf, now)
