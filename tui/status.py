"""What the status bar shows: bus and service health, supervision, message rates, dead letters.

Pure data plus the reading of each service's ``GET /health`` reply and of the supervisor's
``var/stack.json`` (``StackStatus``), kept apart from the widget so the rules (what counts as
healthy, what a restart looks like) are testable and in one place.

The TUI reads ``/health`` through ``HealthSeen``: the fields of the services' typed contract
(``engine.http_schemas.Health``) that the status bar shows, typed the same way, and nothing
else. A service that gains a counter the TUI does not show (or a TUI one version behind the
stack, over SSH) must not turn the whole status bar red with "unreadable /health"; a reply
missing or mistyping a field the TUI does show still does, with the field named.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.http_schemas import StackStatus
from engine.paths import read_small_file
from engine.schemas import error_line

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
    restarts: int = 0
    """Times the supervisor restarted the service after a crash (its /health says)."""
    supervisor: str = ""
    """The supervisor's state of this part when it is not simply running ("restarting",
    "crash-loop", "stopped"), from the stack's status file."""


@dataclass(frozen=True)
class HealthState:
    bus_connected: bool | None = None
    broker: str = ""
    services: dict[str, ServiceState] = field(default_factory=dict)
    own_dead_letters: int = 0
    """Messages the TUI's own bus client rejected."""
    behind_dropped: int = 0
    """Telemetry the TUI's bus client dropped because the TUI fell behind (``INBOX_LIMIT``)."""
    rate: float = 0.0
    """Bus messages per second the TUI receives (all kinds)."""
    telemetry_rate: float = 0.0
    operator: str = ""
    """Whom the review service recognises (its audit names this operator)."""
    gave_up: str = ""
    """The supervisor stopped restarting (a crash loop): why."""

    @property
    def dead_letters(self) -> int:
        return self.own_dead_letters + sum(s.dead_letters for s in self.services.values())

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self.services.values())


class BrokerSeen(BaseModel):
    """The part of ``BrokerStatus`` the status bar shows."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    url: str
    connected: bool


class HealthSeen(BaseModel):
    """The part of ``Health`` the status bar shows (same names and types; extra keys ignored;
    a test holds it to ``Health``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["ok", "degraded"]
    reasons: list[str]
    restarts: int
    broker: BrokerSeen
    dead_letters: int


def broker_of(body: Any) -> tuple[str, bool | None]:
    """(redacted broker URL, connected?) from a /health reply."""
    try:
        health = HealthSeen.model_validate(body)
    except ValidationError:
        return "", None
    return health.broker.url, health.broker.connected


def service_state(body: Any) -> ServiceState:
    """Judge one /health reply: the service answers, says it is ok, and is connected to the
    broker. A reply that is not a Health body is a problem, named."""
    try:
        health = HealthSeen.model_validate(body)
    except ValidationError as exc:
        return ServiceState(ok=False, detail=f"unreadable /health: {error_line(exc)}")
    connected = health.broker.connected
    ok = health.status == "ok" and connected
    if ok:
        detail = ""
    elif not connected:
        detail = "broker disconnected"
    else:
        detail = "; ".join(health.reasons) or health.status
    return ServiceState(
        ok=ok, detail=detail, dead_letters=health.dead_letters, restarts=health.restarts
    )


def with_supervision(
    services: dict[str, ServiceState], stack: StackStatus | None
) -> tuple[dict[str, ServiceState], str]:
    """The services' states with the supervisor's view of each part (``var/stack.json``), and
    why it gave up, if it did."""
    if stack is None:
        return services, ""
    out = dict(services)
    for name, part in stack.parts.items():
        state = out.get(name, ServiceState())
        supervisor = "" if part.state in ("running", "starting") else part.state
        out[name] = replace(
            state, supervisor=supervisor, restarts=max(state.restarts, part.restarts)
        )
    return out, stack.gave_up or ""


def read_stack_status(path: Path | None) -> StackStatus | None:
    """The supervisor's status file, or None (no file, unreadable, or its stack is gone)."""
    if path is None:
        return None
    try:
        stack = StackStatus.model_validate_json(read_small_file(path, 1024 * 1024))
    except (OSError, ValidationError):
        return None
    return stack if _pid_alive(stack.pid) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


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
