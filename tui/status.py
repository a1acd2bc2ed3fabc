"""What the status bar shows: bus and service health, message rates, dead letters.

Pure data plus the parsing of each service's ``GET /health`` reply, kept apart from the widget so
the rules (what counts as healthy, where the dead-letter count is) are testable and in one place.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

SERVICE_SHORT = {
    "simulator": "sim",
    "monitor": "mon",
    "diagnosis": "diag",
    "ticket": "tkt",
    "review": "rev",
}


@dataclass(frozen=True)
class ServiceState:
    ok: bool | None = None
    """None: not checked yet (or not configured)."""
    detail: str = ""
    dead_letters: int = 0


@dataclass(frozen=True)
class HealthState:
    bus_connected: bool | None = None
    broker: str = ""
    services: dict[str, ServiceState] = field(default_factory=dict)
    own_dead_letters: int = 0
    """Messages the TUI's own bus client rejected."""
    rate: float = 0.0
    """Bus messages per second the TUI receives (all kinds)."""
    telemetry_rate: float = 0.0
    operator: str = ""
    """Whom the review service recognises (its audit names this operator)."""

    @property
    def dead_letters(self) -> int:
        return self.own_dead_letters + sum(s.dead_letters for s in self.services.values())


def _find_int(body: Any, key: str, depth: int = 0) -> int | None:
    """The first integer under ``key`` anywhere in a nested reply (breadth-first), so the status
    bar does not break when a service nests its counters one level deeper."""
    if depth > 4:
        return None
    if isinstance(body, dict):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        for child in body.values():
            found = _find_int(child, key, depth + 1)
            if found is not None:
                return found
    return None


def broker_of(body: Any) -> tuple[str, bool | None]:
    """(redacted broker URL, connected?) from a /health reply (its ``broker`` object)."""
    broker = body.get("broker") if isinstance(body, dict) else None
    if isinstance(broker, dict):
        connected = broker.get("connected")
        return str(broker.get("url") or ""), connected if isinstance(connected, bool) else None
    if isinstance(broker, str):
        return broker, None
    return "", None


def service_state(body: Any) -> ServiceState:
    """Judge one /health reply: the service answers and is connected to the broker."""
    if not isinstance(body, dict):
        return ServiceState(ok=False, detail="unreadable /health reply")
    _, connected = broker_of(body)
    status = str(body.get("status", "ok")).lower()
    ok = status == "ok" and connected is not False
    detail = "" if ok else ("broker disconnected" if connected is False else status)
    return ServiceState(ok=ok, detail=detail, dead_letters=_find_int(body, "dead_letters") or 0)


class RateMeter:
    """Messages per second over a sliding window of (time, total count) samples."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque(maxlen=64)

    def update(self, now: float, total: int) -> float:
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
            self._samples.popleft()
        t0, c0 = self._samples[0]
        if now - t0 <= 0:
            return 0.0
        return max(0.0, (total - c0) / (now - t0))
