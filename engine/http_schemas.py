"""Every body that crosses HTTP: the services' /health, the simulator's scenario API, the review
API (requests, responses and error bodies).

The bus has its contract in ``engine/schemas.py``; this module is its HTTP sibling, so that the
services, the TUI and the CLI share one typed definition of each request and answer instead of
building and parsing dicts by hand.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from engine.schemas import AssetId, CloseReason, Severity, SignalName

# --------------------------------------------------------------------------------------------
# Service health (every service's GET /health)
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Simulator scenario API
# --------------------------------------------------------------------------------------------


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

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime
    who: str = Field(max_length=128)
    action: AlarmAction
    note: str | None = Field(default=None, max_length=500)
    detail: str = Field(default="", max_length=500)


class Alarm(BaseModel):
    """An alarm as the review API serves it (and as the store keeps it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    """``on``: take the asset out of service (``reason`` required) or return it to service."""

    asset: AssetId
    on: bool
    reason: PlainLine | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _reason_when_on(self) -> OutOfServiceRequest:
        if self.on and not self.reason:
            raise ValueError("reason: say why the asset is taken out of service")
        return self


class AssetServiceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime
    who: str = Field(max_length=128)
    action: Literal["out_of_service", "returned_to_service"]
    reason: str | None = Field(default=None, max_length=500)


class AssetStatus(BaseModel):
    """``GET /assets`` row and ``POST /assets/out_of_service`` answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    periods: int
    rows: list[KpiRow]
    bad_actors: list[BadActor]
    priority_split: dict[str, float]
