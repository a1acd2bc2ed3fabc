"""Every body that crosses HTTP: the services' /health, the simulator's scenario API, the review
API (requests, responses and error bodies).

The bus has its contract in ``engine/schemas.py``; this module is its HTTP sibling, so that the
services, the TUI and the CLI share one typed definition of each request and answer instead of
building and parsing dicts by hand.

Why one module of ~650 lines: one module for every HTTP body is the contract itself (the HTTP
sibling of ``engine/schemas.py``); it is some fifty small declarative models, not logic.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from engine.schemas import AssetId, CloseReason, Severity, SignalName

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
    samples: int
    """Telemetry samples handed to handlers (a TelemetryBatch counts its samples)."""
    batches: int
    """TelemetryBatch messages received."""
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
    max_body_bytes: int
    bodies_refused: int
    """Requests refused with 413 for a body over the limit."""
    heads_timed_out: int
    """Connections closed because a request's head or body did not arrive in time
    (``engine.http_server``; every service of the process)."""
    idle_closed_for_room: int
    """Idle connections closed to let a new one in at the connection bound."""


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
    queue_bytes: int
    """What the messages counted in ``queue_depth`` hold (payloads and per-message cost; the
    bus client drops telemetry past ``engine.bus.client.INBOX_LIMIT_BYTES``)."""
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
    rejected: dict[str, int]
    """Samples the agent would not use, by kind (duplicate, late, value, ...): dead-lettered."""


ASSETS_SHOWN = 256


class MonitorHealth(AgentHealth):
    alerts_published: int
    telemetry_per_s: float
    """Telemetry samples per second over the last second (a batch counts its samples)."""
    vectorised: bool
    """Whether the monitor takes each burst in one ``feed_batch`` call."""


class OutboxStatus(_Body):
    queued: int
    """Rows committed, not yet acknowledged by the broker."""
    in_flight: int
    sent: int


class DiagnosisHealth(AgentHealth):
    diagnoses_published: int
    rules_loaded: int
    outbox: OutboxStatus
    pending_finals: int
    """Alerts waiting for their final diagnosis (saved with every change, restored at start)."""
    state_persisted: bool
    agent: dict[str, int]
    """The agent's own counts: assets/alerts dropped at its bounds, reports deferred for lack of
    history, finals the history could never support."""


class SimulatorHealth(_ServiceHealth):
    name: str | None
    assets: list[str]
    """The first ``ASSETS_SHOWN`` (all of them: ``GET /scenario/status``)."""
    asset_count: int
    telemetry_batch: int
    """0: one message per sample; N: TelemetryBatch messages of up to N samples."""
    telemetry_log_every: int
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
    """Where the store is (a path, or a PostgreSQL URL without its password)."""
    tickets: dict[str, int] | None
    """Counts by state (None: the store cannot be read right now)."""
    log_errors: int
    diagnoses: dict[str, int]
    """Outcome of every diagnosis handled (created, updated, duplicate, …)."""
    alert_to_ticket: LatencySummary
    outbox: TicketOutbox
    mirror: dict[str, Any] | None
    degraded: str | None
    """Why the store cannot write (also in ``reasons``)."""


class ReviewTuning(_Body):
    file: str
    in_effect: Any


class ReviewAlarms(_Body):
    recorded: int
    ignored: int
    version: int | None
    """None: the store cannot be read right now (the fault is in ``reasons``)."""


class ReviewAuth(_Body):
    socket: str
    socket_mode: str
    token_operators: int
    refused: int


class ReviewHealth(_ServiceHealth):
    store: str
    tickets: dict[str, int] | None
    """Counts by state (None: the store cannot be read right now)."""
    actions: dict[str, int]
    alarms: ReviewAlarms
    auth: ReviewAuth
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
    assets: int = Field(default=1, ge=1)
    """Pumps to play: at most the simulator's ``CONTROLROOM_SIM_MAX_ASSETS`` (422 beyond)."""
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
# Answers are ``engine.schemas.Ticket`` (the bus model); errors are ``ErrorBody`` with 401 (no
# valid identity), 404 (unknown id), 409 (the state forbids it), 413 (body too large), 422 (bad
# input) or 503 (store unavailable). The operator is never in a request body: it comes from the
# authentication (engine/auth), and a ``who`` field is refused like any unknown field.


class ErrorBody(BaseModel):
    """Every refusal of every review endpoint: one line, fit for a notification."""

    detail: str


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def one_plain_line(value: str | None) -> str | None:
    """Refuse control, format (bidi overrides, zero-width) and line-break characters: a note
    goes into an audit line and must read the same everywhere it is shown."""
    if value is not None:
        for ch in value:
            if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
                raise ValueError(
                    f"character U+{ord(ch):04X} is not allowed (no control, bidi, zero-width or "
                    "line-break characters)"
                )
    return value


PlainLine = Annotated[str, AfterValidator(one_plain_line)]
TicketId = Annotated[str, Field(min_length=1, max_length=128)]
Note = Annotated[PlainLine | None, Field(default=None, max_length=500)]
TicketStateFilter = Literal["open", "approved", "closed", "active"]
TICKET_STATE_FILTERS: tuple[str, ...] = get_args(TicketStateFilter)
"""``active`` = open or approved."""
TICKET_LIST_MAX = 1000


class Whoami(BaseModel):
    """``GET /whoami``: the operator the service recognises on this connection."""

    operator: str
    via: Literal["unix_socket", "token"]


class ApproveRequest(ReviewRequest):
    ticket_id: TicketId
    note: Note = None


class EditRequest(ReviewRequest):
    ticket_id: TicketId
    title: str | None = Field(default=None, min_length=1, max_length=500)
    body: str | None = Field(default=None, min_length=1, max_length=20_000)
    labels: list[str] | None = Field(default=None, max_length=50)
    severity: Severity | None = None

    def changes(self) -> dict[str, object]:
        return self.model_dump(include={"title", "body", "labels", "severity"}, exclude_none=True)


class CloseRequest(ReviewRequest):
    ticket_id: TicketId
    reason: CloseReason
    note: Note = None


# --------------------------------------------------------------------------------------------
# Review API: alarms
# --------------------------------------------------------------------------------------------
# An alarm is one alert episode (keyed by its alert_id) in the ISA-18.2 / OPC UA Part 9 sense;
# the state machine is engine/alarms/lifecycle.py. Times ``*_at`` / ``shelved_until`` are
# wall-clock UTC (the operator's clock); ``onset_ts`` / ``cleared_ts`` are the plant's simulated
# seconds, and ``plant_raised`` / ``plant_cleared`` the same on one timeline stitched across
# simulator runs (what the KPIs are measured on).

Priority = Severity
PRIORITIES: tuple[str, ...] = get_args(Severity)
"""Lowest first. An alarm's priority is the highest severity its alert reached."""
AlarmState = Literal[
    "unacknowledged",
    "acknowledged",
    "returned_unacknowledged",
    "latched",
    "normal",
    "shelved",
    "suppressed",
    "out_of_service",
]
ALARM_STATES: tuple[str, ...] = get_args(AlarmState)
"""One word per alarm (ISA-18.2 states B, C, D, E, A, F, G, H): out_of_service over shelved
over suppressed over the active x acknowledged combinations."""
AlarmFilter = Literal[AlarmState, "open", "active", "unacked", "all"]
ALARM_FILTERS: tuple[str, ...] = (*ALARM_STATES, "open", "active", "unacked", "all")
"""``open`` (default) = every state but normal; ``active`` = condition present; ``unacked``."""
ShelveKind = Literal["timed", "until_clear"]
RaisedAs = Literal["annunciated", "out_of_service", "shelved", "suppressed"]
"""How an alarm was presented when it raised: shown to the operator, or withheld (by this
precedence) because its asset was out of service, its source shelved, or it chattered."""
AlarmAction = Literal[
    "raised",
    "escalated",
    "returned_to_normal",
    "acknowledged",
    "shelved",
    "unshelved",
    "shelve_expired",
    "out_of_service",
    "returned_to_service",
    "chattering",
]
MAX_SHELVE_MINUTES = 480
"""A timed shelve lasts at most one 8-hour shift: a shelved alarm must come back to someone."""
ALARM_LIST_MAX = 5000
AlarmId = Annotated[str, Field(min_length=1, max_length=128)]
AlarmNote = Note


class AlarmEvent(BaseModel):
    """One line of an alarm's audit trail."""

    model_config = ConfigDict(extra="forbid", frozen=True, cache_strings="keys")
    """``cache_strings="keys"`` here and in the other models the alarm store reads back from
    JSON (``Alarm``, ``AssetServiceEvent``, ``AssetStatus``), as in ``engine.schemas.WireModel``:
    by default pydantic-core keeps every short string value it decodes (alarm ids, timestamps)
    in a process-wide cache of 16,384 slots, ~1.3 MiB that the review and ticket services filled
    over the first hour of steady alerts and the soak read as growth."""

    at: datetime
    who: str = Field(max_length=128)
    action: AlarmAction
    note: str | None = Field(default=None, max_length=500)
    detail: str = Field(default="", max_length=500)


class Alarm(BaseModel):
    """An alarm as the review API serves it (and as the store keeps it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, cache_strings="keys")

    alarm_id: AlarmId
    asset: AssetId
    source: str = Field(max_length=140)
    """``asset/signal``: the tag an alarm is counted against (chattering, bad actors, a timed
    shelve carried over to the next episode)."""
    signals: list[SignalName] = Field(default_factory=list, max_length=64)
    detector: str = Field(default="", max_length=64)
    revision: int = Field(ge=0)
    """Highest alert revision applied (contract C1)."""
    priority: Priority
    state: AlarmState
    active: bool
    acknowledged: bool
    reannunciations: int = Field(default=0, ge=0)
    """Times the priority rose while the alarm was acknowledged (it became unacknowledged)."""
    latched: bool = False
    """A critical alarm stays latched after it returns to normal until acknowledged there."""
    chattering: bool = False
    suppressed: bool = False
    """Chattering and suppressed by design: recorded and counted, not annunciated."""
    shelved: ShelveKind | None = None
    shelved_until: datetime | None = None
    shelved_by: str | None = None
    out_of_service: bool = False
    out_of_service_reason: str | None = None
    raised_as: RaisedAs | None = None
    """Decided by the lifecycle at the raise and never changed: what the alarm KPIs' rates count
    (ISA-18.2 counts annunciated alarms). None: stored before this was kept (not known)."""
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    raised_at: datetime
    cleared_at: datetime | None = None
    updated_at: datetime
    onset_ts: float = Field(ge=0.0)
    raised_ts: float = Field(ge=0.0)
    """Plant time of the raise (the alert's ``ts``), on its run's clock like ``cleared_ts``."""
    cleared_ts: float | None = None
    plant_raised: float = Field(ge=0.0)
    plant_cleared: float | None = None
    history: list[AlarmEvent] = Field(default_factory=list)


class AckRequest(ReviewRequest):
    alarm_id: AlarmId
    note: AlarmNote = None


class ShelveRequest(ReviewRequest):
    """Exactly one of ``minutes`` (1..MAX_SHELVE_MINUTES) and ``until_clear``."""

    alarm_id: AlarmId
    minutes: int | None = Field(default=None, ge=1, le=MAX_SHELVE_MINUTES)
    until_clear: bool = False
    note: AlarmNote = None

    @model_validator(mode="after")
    def _one_kind(self) -> ShelveRequest:
        if (self.minutes is None) == (not self.until_clear):
            raise ValueError("give either minutes or until_clear=true (not both, not neither)")
        return self


class UnshelveRequest(ReviewRequest):
    alarm_id: AlarmId
    note: AlarmNote = None


class OutOfServiceRequest(ReviewRequest):
    """``on``: take the asset out of service (``reason`` required) or return it to service.

    The service knows an asset by its alarms (it sees the plant's alerts, not its telemetry): a
    name no alarm carries is refused (404), so a typo is not listed out of service for good.
    ``never_alarmed`` vouches for an asset that reports but has not alarmed yet (maintenance
    before its first alarm): the TUI sends it for a pump it sees in telemetry, the CLI on
    ``--never-alarmed``."""

    asset: AssetId
    on: bool
    reason: PlainLine | None = Field(default=None, min_length=1, max_length=500)
    never_alarmed: bool = False

    @model_validator(mode="after")
    def _reason_when_on(self) -> OutOfServiceRequest:
        if self.on and not self.reason:
            raise ValueError("reason: say why the asset is taken out of service")
        return self


class AssetServiceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, cache_strings="keys")

    at: datetime
    who: str = Field(max_length=128)
    action: Literal["out_of_service", "returned_to_service"]
    reason: str | None = Field(default=None, max_length=500)


class AssetStatus(BaseModel):
    """``GET /assets`` row and ``POST /assets/out_of_service`` answer."""

    model_config = ConfigDict(extra="forbid", frozen=True, cache_strings="keys")

    asset: AssetId
    out_of_service: bool = False
    reason: str | None = None
    since: datetime | None = None
    by: str | None = None
    open_alarms: int = 0
    unacknowledged: int = 0
    history: list[AssetServiceEvent] = Field(default_factory=list)


class KpiRow(BaseModel):
    """One line of the KPI table: the figure and the EEMUA 191 / ISA-18.2 target beside it."""

    name: str
    value: float | None
    shown: str
    target: str
    meets: bool | None
    """None: no target to meet, or nothing to measure."""


class BadActor(BaseModel):
    source: str
    alarms: int
    share: float


class AlarmKpis(BaseModel):
    """``GET /alarms/kpis``: the alarm-system KPIs over a window of plant time."""

    window_start: float
    window_end: float
    hours: float
    operators: int
    alarms: int
    """Alarms raised in the window (the load), annunciated or not."""
    annunciated: int = 0
    """Of them, presented to the operator at their raise (or not known to be withheld)."""
    withheld: dict[str, int] = Field(default_factory=dict)
    """Raised but not annunciated, by reason: out_of_service, shelved, suppressed."""
    not_known: int = 0
    """Raises whose presentation is not known (no store record): counted as annunciated."""
    summary: str = ""
    """The counts above in a sentence ("12 annunciated of 15 raised; 3 not: 1 shelved, ..."),
    as the report and the TUI panel head their tables."""
    periods: int
    rows: list[KpiRow]
    bad_actors: list[BadActor]
    priority_split: dict[str, float]
