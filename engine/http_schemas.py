"""Every body that crosses HTTP: the services' /health, the simulator's scenario API, the review
API (requests, responses and error bodies).

The bus has its contract in ``engine/schemas.py``; this module is its HTTP sibling, so that the
services, the TUI and the CLI share one typed definition of each request and answer instead of
building and parsing dicts by hand.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------------------------
# Service health (every service's GET /health)                                   owner: bus
# --------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerStatus(_Body):
    url: str
    """Redacted: a password never appears."""
    identity: str | None
    """The user name this service connects as (one identity per service on our brokers)."""
    connected: bool
    subscribed: bool
    """Every subscription acknowledged (SUBACK): the service hears everything from here on."""
    error: str | None


class BusCounters(_Body):
    """What the service's bus client counted since start."""

    received: int
    handled: int
    published: int
    dead_letters: int
    rejected_on_publish: int
    handler_failures: int
    """Failed handler attempts (each retry counts)."""
    handler_errors: int
    """Messages given up on after their attempts (dead-lettered, acknowledged)."""
    duplicates: int
    not_mine: int
    publish_dropped: int
    inbox_dropped: int
    connects: int
    disconnects: int
    received_by_kind: dict[str, int]
    published_by_kind: dict[str, int]


class DeadLetterStatus(_Body):
    file: str
    written: int
    bytes: int
    max_bytes: int
    rotations: int
    files_dropped: int
    write_errors: int


class RetryStatus(_Body):
    """The message a handler could not make durable yet, retried unacknowledged."""

    topic: str
    attempts: int
    since: float
    error: str


class HttpLimits(_Body):
    max_bytes: int
    refused: int
    """Requests refused with 413 for a body over the limit."""


class Health(BaseModel):
    """``GET /health`` of every service: 200 when ``status`` is "ok", 503 (same body) when
    "degraded", with ``reasons`` saying why. Clients that only need these common fields parse
    any service's reply with this model (extra keys ignored); ``HEALTH_MODELS`` has the exact
    model of each service (extra keys forbidden: a test holds every service to it)."""

    model_config = ConfigDict(extra="ignore")

    service: str
    instance: str
    status: Literal["ok", "degraded"]
    reasons: list[str]
    pid: int
    uptime_s: float
    restarts: int
    """How many times ``controlroom up`` has restarted this service after a crash."""
    broker: BrokerStatus
    shard: str
    last_message_at: float | None
    last_published_at: float | None
    queue_depth: int
    dead_letters: int
    counters: BusCounters
    deadletter: DeadLetterStatus
    retrying: RetryStatus | None
    http: HttpLimits


class _ServiceHealth(Health):
    model_config = ConfigDict(extra="forbid")


class LatencySummary(_Body):
    n: int
    p50_ms: float | None
    p99_ms: float | None


class TuningStatus(_Body):
    file: str
    loaded_at: float | None
    in_effect: dict[str, Any] | None
    error: str | None


class AssetBounds(_Body):
    """Per-asset state is bounded: at most ``max`` assets, idle ones evicted, refusals counted."""

    tracked: int
    max: int
    idle_evict_s: float
    evicted: int
    refused: int


class AgentHealth(_ServiceHealth):
    assets: list[str]
    """The assets this replica holds state for (the first ``ASSETS_SHOWN``, sorted)."""
    asset_bounds: AssetBounds
    latency: LatencySummary
    tuning: TuningStatus


ASSETS_SHOWN = 256


class MonitorHealth(AgentHealth):
    alerts_published: int
    telemetry_per_s: float


class OutboxStatus(_Body):
    queued: int
    """Rows committed, not yet acknowledged by the broker."""
    in_flight: int
    sent: int


class DiagnosisHealth(AgentHealth):
    diagnoses_published: int
    rules_loaded: int
    outbox: OutboxStatus
    pending_finals: int | None
    """Alerts waiting for their final diagnosis (None: the agent cannot say)."""
    state_persisted: bool
    """Pending finals are saved with every change and restored at start."""


class SimulatorHealth(_ServiceHealth):
    name: str | None
    assets: list[str]
    running: bool
    done: bool
    speed: float
    sim_time: float
    published: int


class TicketOutbox(_Body):
    in_flight: int
    sent: int


class TicketHealth(_ServiceHealth):
    store: str
    tickets: dict[str, int]
    diagnoses: dict[str, int]
    alert_to_ticket: LatencySummary
    outbox: TicketOutbox
    mirror: dict[str, Any] | None


class ReviewTuning(_Body):
    file: str
    in_effect: Any


class ReviewHealth(_ServiceHealth):
    store: str
    tickets: dict[str, int]
    actions: dict[str, int]
    outbox: TicketOutbox
    tuning: ReviewTuning
    false_positive_log: str


HEALTH_MODELS: dict[str, type[Health]] = {
    "simulator": SimulatorHealth,
    "monitor": MonitorHealth,
    "diagnosis": DiagnosisHealth,
    "ticket": TicketHealth,
    "review": ReviewHealth,
}
"""The exact /health body of each service (``tests/live/test_health.py`` holds them to it)."""


PartState = Literal["starting", "running", "restarting", "crash-loop", "stopped"]


class PartStatus(_Body):
    """One supervised part of ``controlroom up`` / ``demo``: a service, or the broker."""

    state: PartState
    pid: int | None
    restarts: int
    """Restarts after a crash since the stack started."""
    last_exit: str | None
    """How it last ended: "killed by SIGKILL", "exit code 1"…"""
    last_exit_at: float | None
    next_restart_at: float | None
    """Wall time of the pending restart (state "restarting")."""


class StackStatus(_Body):
    """``var/stack.json``, rewritten by the supervisor on every change (for the TUI)."""

    pid: int
    """The ``up``/``demo`` process."""
    started_at: float
    updated_at: float
    broker: str | None
    supervised: bool
    gave_up: str | None
    """Why supervision stopped (a crash loop); the stack then stops."""
    parts: dict[str, PartStatus]


def parse_health(body: object) -> Health:
    """A /health reply as the model of the service it names (ValidationError if it is not)."""
    service = body.get("service") if isinstance(body, dict) else None
    model = HEALTH_MODELS.get(service, Health) if isinstance(service, str) else Health
    return model.model_validate(body)


# --------------------------------------------------------------------------------------------
# Simulator scenario API                                                         owner: bus
# --------------------------------------------------------------------------------------------


class LoadRequest(_Body):
    """``POST /scenario/load``: scenario(s) by name from ``scenarios/`` (one asset each for
    ``names``), or an uploaded scenario under ``scenario``; a body that is itself a scenario JSON
    is accepted too. Names never reach the file system unless they are shipped scenarios."""

    name: str | None = Field(default=None, max_length=64)
    names: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=64
    )
    scenario: dict[str, Any] | None = None
    assets: int = Field(default=1, ge=1, le=256)
    seed: int | None = None
    rate_hz: float | None = Field(default=None, gt=0, le=1000)


LOAD_KEYS = frozenset(LoadRequest.model_fields)


class StartRequest(_Body):
    speed: float | None = Field(default=None, gt=0, le=1_000_000)
    until: float | None = Field(default=None, ge=0)
    """Pause again once the simulated time reaches this (seconds): play a scenario in steps."""


class OperatorRequest(_Body):
    """``POST /operator``: what an operator at the DCS would do to one running pump."""

    asset: str = Field(max_length=64)
    action: Literal["speed", "valve", "start", "stop"]
    pct: float | None = Field(default=None, ge=0.0, le=110.0)
    ramp_s: float = Field(default=10.0, ge=0.0, le=3600.0)


class ScenarioStatus(_Body):
    """``GET /scenario/status`` (and the reply of every control call)."""

    loaded: bool
    name: str | None
    scenarios: list[str]
    assets: list[str]
    seeds: list[int | None]
    running: bool
    done: bool
    speed: float
    rate_hz: float
    sim_time: float
    pause_at: float | None
    """Where a ``start`` with ``until`` pauses the run."""
    duration: float | None
    ticks: int
    published: int


class ScenarioList(_Body):
    scenarios: list[str]


# --------------------------------------------------------------------------------------------
# Review API: tickets
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Review API: alarms
# --------------------------------------------------------------------------------------------
