"""Alerts as the monitor publishes them (contract C1: one alert_id per episode, a revision per
publication), for the alarm tests."""

from __future__ import annotations

import os
import pwd
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.schemas import AlertEvent

if "revision" in AlertEvent.model_fields:
    Alert = AlertEvent
else:  # until branch detect's C1 field is on main

    class Alert(AlertEvent):  # type: ignore[no-redef]
        revision: int = 0


T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ME = pwd.getpwuid(os.getuid()).pw_name
"""The operator the review service must name for this test process on its Unix socket."""


class Clock:
    """An injected wall clock: ``clock()`` is epoch seconds, ``clock.now`` a UTC datetime."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now.timestamp()

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def alert(
    alert_id: str = "pump01-A1",
    *,
    status: str = "active",
    severity: str = "medium",
    ts: float = 1000.0,
    revision: int = 0,
    asset: str = "pump01",
    signals: tuple[str, ...] = ("vibration", "bearing_temp"),
    **extra: Any,
) -> AlertEvent:
    fields: dict[str, Any] = {
        "alert_id": alert_id,
        "asset": asset,
        "status": status,
        "ts": ts,
        "onset_ts": max(0.0, ts - 30.0) if status == "active" else extra.pop("onset_ts", 970.0),
        "cleared_ts": ts if status == "cleared" else None,
        "severity": severity,
        "score": 7.5,
        "signals": list(signals),
        "detector": "robust-z",
        "revision": revision,
    }
    fields.update(extra)
    return Alert(**fields)


def wire(alert_id: str, status: str = "active", **kw: Any) -> AlertEvent:
    """An alert as it travels on the bus (contract C1's revision once AlertEvent has it)."""
    fields = alert(alert_id, status=status, **kw).model_dump()
    if "revision" not in AlertEvent.model_fields:
        fields.pop("revision")
    return AlertEvent(**fields)
