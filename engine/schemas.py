"""Every message that crosses a boundary of the plant half: MQTT, HTTP, JSONL files.

This module is the one contract the simulator, the four agents, the services, the ticket store,
the evaluation harness and the TUI share. Anything read from outside is parsed by one of these
models before use, so a malformed payload fails here, with a reason, and never deep inside an
agent. Models forbid unknown fields and non-finite floats (NaN/Infinity are invalid JSON in most
consumers and poison every statistic downstream).

Times: ``ts`` fields are *simulated* seconds since the scenario started (the clock the plant
lives in, used for detection latency). ``wall_time`` fields are Unix epoch seconds stamped by the
service that published the message (used for live latency such as alert -> ticket). Datetimes on
tickets and feedback are wall-clock, timezone-aware UTC.

Why one module of ~720 lines: it is the one schema module of the bus on purpose: every wire model
with the topic rules and the decoder that enforces them, so the whole contract reads in one file.
The HTTP bodies are in ``engine/http_schemas.py``.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar, get_args

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.plant.signals import PLAUSIBLE

# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

FaultName = Literal[
    "bearing_wear", "clogging", "valve_stuck", "sensor_drift", "sensor_stuck", "noise_burst"
]
FAULTS: tuple[str, ...] = get_args(FaultName)

TruthFault = Literal["none", FaultName]
RootCause = Literal["unknown", FaultName]
Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
Category = Literal["mechanical", "process", "instrumentation", "unknown"]
CATEGORY_OF_CAUSE: dict[str, Category] = {
    "bearing_wear": "mechanical",
    "clogging": "process",
    "valve_stuck": "mechanical",
    "sensor_drift": "instrumentation",
    "sensor_stuck": "instrumentation",
    "noise_burst": "instrumentation",
    "unknown": "unknown",
}
"""Which trade a root cause belongs to: instrument faults go to instrumentation, not to
mechanical maintenance."""
TicketState = Literal["open", "approved", "closed"]
CloseReason = Literal["resolved", "false_positive", "duplicate"]
CLOSE_REASONS: tuple[str, ...] = get_args(CloseReason)
FeedbackAction = Literal["approve", "edit", "close"]

# An asset id becomes an MQTT topic level, so it may not contain '/', '+', '#' or spaces.
AssetId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
SignalName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
Unit01 = Annotated[float, Field(ge=0.0, le=1.0)]
ShortText = Annotated[str, Field(max_length=500)]
LongText = Annotated[str, Field(max_length=20_000)]

MAX_ABS_VALUE = 1e12
"""No signal of any stream may exceed this magnitude (contract C4): beyond it a value is not a
measurement, and summing it into a window would poison every statistic after it."""
SignalValue = Annotated[float, Field(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]

MAX_PAYLOAD_BYTES = 256 * 1024
"""Anything larger on the bus is rejected before JSON parsing (an oversize message is an error,
not something to allocate for)."""
MAX_JSON_DEPTH = 32
"""Deepest JSON nesting a payload may have (the deepest message, a Ticket with its audit history,
has 3 levels). 256 KiB of brackets is 130,000 levels: Python's recursive ``json`` module raises
RecursionError on it, so payloads are parsed by pydantic-core's parser, which refuses anything
past ~200 levels by itself, and then held to this limit."""


def sim_clock(ts: float) -> str:
    """Simulated seconds since the scenario started as ``HH:MM:SS`` (``Nd HH:MM:SS`` past a
    day): how work orders and the TUI show a ``ts``."""
    whole = int(ts)
    days, rest = divmod(whole, 86_400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    clock = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{days}d {clock}" if days else clock


def utc_now() -> datetime:
    return datetime.now(UTC)


class WireModel(BaseModel):
    """Base for every message: strict on input, compact JSON on output."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, validate_assignment=True, cache_strings="keys"
    )
    """``cache_strings="keys"``: pydantic-core would otherwise keep every short string value it
    decodes from JSON (each message's unique ``msg_id``) in a process-wide cache of 16,384
    slots, which a long-running subscriber fills over minutes (~1-2 MiB that reads as growth).
    Keys (field and signal names) repeat and stay cached."""

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=False)

    def to_bytes(self) -> bytes:
        return self.to_json().encode("utf-8")


# --------------------------------------------------------------------------------------------
# Telemetry (simulator -> telemetry/{bucket}/{asset}, see "Topics" below)
# --------------------------------------------------------------------------------------------


class ActiveFault(WireModel):
    fault: FaultName
    severity: Unit01
    sensor: SignalName | None = None
    """For instrument faults (drift, stuck, noise burst): the channel affected."""
    onset_ts: float = Field(default=0.0, ge=0.0)
    """Scripted onset, simulated seconds: with fault and sensor it names one fault *event*."""
    sudden: bool = True
    """Reaches its peak within two minutes of onset (else gradual: the evaluation reports the
    severity at detection rather than the latency)."""
    observable: bool = True
    """False while the fault cannot show in any signal yet (a stuck valve whose command has not
    moved since); latency counts from the first observable tick."""


class Truth(WireModel):
    """Ground truth from the simulator. Only the evaluation harness and the TUI's truth overlay
    read it; agents never do (a test replaces it with garbage and expects identical output)."""

    fault: TruthFault = "none"
    """The dominant active fault (highest severity), or "none"."""
    severity: Unit01 = 0.0
    """0..1, where 1 means failure."""
    active: list[ActiveFault] = Field(default_factory=list)
    """Every fault active at this tick, for overlapping scripts."""


class Telemetry(WireModel):
    msg_id: str = Field(min_length=1, max_length=128)
    asset: AssetId
    seq: int = Field(ge=0)
    ts: float = Field(ge=0.0)
    signals: dict[SignalName, SignalValue] = Field(min_length=1, max_length=256)
    scenario: str | None = Field(default=None, max_length=128)
    truth: Truth | None = None
    wall_time: float | None = None

    @model_validator(mode="after")
    def _plausible(self) -> Telemetry:
        """A pump's instrument reading outside what the transmitter can report is rejected with
        the message (per-signal plausible ranges in ``engine.plant.signals``, contract C4)."""
        for name, value in self.signals.items():
            bounds = PLAUSIBLE.get(name)
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise ValueError(
                    f"signals.{name}: {value!r} outside its plausible range "
                    f"{bounds[0]:g}..{bounds[1]:g}"
                )
        return self


# --------------------------------------------------------------------------------------------
# Alerts (monitor -> alerts/{asset})
# --------------------------------------------------------------------------------------------


class WindowStats(WireModel):
    """Sliding-window features of one signal at the moment of the alert."""

    seconds: float
    n: int = Field(ge=0)
    mean: float
    std: float
    slope: float
    """Least-squares slope, units per second."""
    diff: float
    """Last value minus first value in the window."""


class SignalEvidence(WireModel):
    signal: SignalName
    value: float
    baseline_mean: float
    baseline_std: float
    score: float
    """Detector score (for z-type detectors: robust z of the window against the baseline)."""
    detector: str = Field(max_length=64)
    direction: Literal["up", "down", "flat", "noisy", "none"] = "none"
    """up/down: mean shift; flat: variance collapsed (stuck); noisy: variance jumped."""
    windows: list[WindowStats] = Field(default_factory=list)


ClearReason = Literal["normal", "new_run"]


class AlertEvent(WireModel):
    """One anomaly *episode* (contract C1): published when it becomes active (``revision`` 0),
    again, same ``alert_id``, each time its severity rises (revision +1), and once when it
    clears (the last revision). Consumers keep the highest revision per ``alert_id`` and ignore
    older or repeated ones; never once per tick."""

    alert_id: str = Field(min_length=1, max_length=128)
    asset: AssetId
    revision: int = Field(default=0, ge=0)
    status: Literal["active", "cleared"] = "active"
    ts: float = Field(ge=0.0)
    onset_ts: float = Field(ge=0.0)
    """Simulated time the episode began (first tick over threshold)."""
    cleared_ts: float | None = None
    clear_reason: ClearReason | None = None
    """Why a cleared episode ended: the data came back to normal, or the asset started a new run
    (its simulated clock went back or its scenario changed), which ends every open episode."""
    severity: Severity
    score: float
    signals: list[SignalName] = Field(min_length=1)
    evidence: list[SignalEvidence] = Field(default_factory=list)
    detector: str = Field(max_length=64)
    wall_time: float | None = None


# --------------------------------------------------------------------------------------------
# Diagnosis (diagnosis -> diagnosis/{asset})
# --------------------------------------------------------------------------------------------


class Hypothesis(WireModel):
    root_cause: RootCause
    confidence: Unit01
    rules: list[str] = Field(default_factory=list)


class DiagnosisReport(WireModel):
    """A root cause for one alert. Each alert gets a ``provisional`` report at once, from the
    history up to the alert, so a work order exists within milliseconds; then one ``final``
    report when the evidence after the onset has settled the cause (1-15 simulated minutes
    later). The final one may name another cause: it revises the same episode's ticket.
    An ``update`` report (contract C2) follows an escalation of the alert: same alert, the cause
    already reported, the new severity; it changes the ticket's severity and priority only."""

    diagnosis_id: str = Field(min_length=1, max_length=128)
    alert_id: str = Field(min_length=1, max_length=128)
    asset: AssetId
    ts: float = Field(ge=0.0)
    onset_ts: float = Field(ge=0.0)
    stage: Literal["provisional", "final", "update"] = "final"
    """``update`` (contract C2): the alert escalated; same cause as the last report for it, the
    new severity. It changes a ticket's severity and priority only, never its cause."""
    root_cause: RootCause
    confidence: Unit01
    category: Category = "unknown"
    severity: Severity
    summary: ShortText
    alternatives: list[Hypothesis] = Field(default_factory=list)
    """Ranked, best first, excluding the chosen root cause."""
    actions: list[ShortText] = Field(default_factory=list)
    evidence: list[ShortText] = Field(default_factory=list)
    matched_rules: list[str] = Field(default_factory=list)
    signals: list[SignalName] = Field(default_factory=list)
    wall_time: float | None = None


# --------------------------------------------------------------------------------------------
# Tickets (ticket agent -> tickets/{asset}; review API)
# --------------------------------------------------------------------------------------------


class AuditEntry(WireModel):
    at: datetime
    who: str = Field(max_length=128)
    action: str = Field(max_length=64)
    detail: ShortText = ""


class ExternalRef(WireModel):
    system: str = Field(max_length=64)
    """e.g. "github"."""
    id: str | None = None
    url: str | None = None
    error: ShortText | None = None
    synced_at: datetime | None = None


class Ticket(WireModel):
    """A work order. The SQLite store (engine/tickets/store.py) is its source of truth; what is
    published on ``tickets/{asset}`` is a full snapshot, so a screen only ever needs the latest
    one per ``ticket_id`` (the highest ``revision``; at-least-once delivery may repeat one)."""

    ticket_id: str = Field(min_length=1, max_length=128)
    asset: AssetId
    title: ShortText
    body: LongText
    labels: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list)
    severity: Severity
    state: TicketState = "open"
    root_cause: RootCause
    category: Category = "unknown"
    """Which trade gets the work: instrument faults go to instrumentation, not mechanical."""
    confidence: Unit01 = 0.0
    signals: list[SignalName] = Field(default_factory=list)
    """Signals the diagnoses named; the feedback loop tunes these on a false-positive close."""
    matched_rules: list[str] = Field(default_factory=list)
    revision: int = Field(default=1, ge=1)
    """Bumped by every change; lets a consumer drop a stale or repeated snapshot."""
    diagnosis_ids: list[str] = Field(default_factory=list)
    alert_ids: list[str] = Field(default_factory=list)
    occurrences: int = Field(default=1, ge=1)
    first_seen_ts: float = Field(default=0.0, ge=0.0)
    last_seen_ts: float = Field(default=0.0, ge=0.0)
    created_at: datetime
    updated_at: datetime
    close_reason: CloseReason | None = None
    close_note: ShortText | None = None
    external: ExternalRef | None = None
    history: list[AuditEntry] = Field(default_factory=list)
    wall_time: float | None = None


# --------------------------------------------------------------------------------------------
# Feedback (review -> feedback/{asset})
# --------------------------------------------------------------------------------------------


FEEDBACK_ALERT_IDS = 200
"""Most alert ids a ``Feedback`` carries: its ticket's latest (a ticket lives as long as its
episode, and one that chattered for weeks holds thousands: all of them would not fit in a
message). Nobody tunes on them; they say which alerts the operator judged."""


class Feedback(WireModel):
    feedback_id: str = Field(min_length=1, max_length=128)
    ticket_id: str = Field(min_length=1, max_length=128)
    asset: AssetId
    action: FeedbackAction
    who: str = Field(max_length=128)
    at: datetime
    reason: CloseReason | None = None
    note: ShortText | None = None
    root_cause: RootCause = "unknown"
    alert_ids: list[str] = Field(default_factory=list, max_length=FEEDBACK_ALERT_IDS)
    signals: list[SignalName] = Field(default_factory=list)
    matched_rules: list[str] = Field(default_factory=list)
    changes: dict[str, str] = Field(default_factory=dict)
    """For edits: field name -> new value (rendered as text)."""
    tuning_changes: list[ShortText] = Field(default_factory=list)
    """What this feedback changed in the monitor/diagnosis tuning (one line each), already saved
    to the tuning file when the message is published."""
    wall_time: float | None = None


# --------------------------------------------------------------------------------------------
# Tuning (feedback -> var/tuning.json -> monitor and diagnosis)
# --------------------------------------------------------------------------------------------

THRESHOLD_SCALE_BOUNDS = (0.5, 3.0)
"""A threshold multiplier stays within these bounds, whatever the feedback: a burst of careless
false-positive closes can make the monitor at most 3x less sensitive, never blind."""
RULE_OFFSET_BOUNDS = (-0.5, 0.5)
"""A rule's confidence offset stays within these bounds."""
_TUNING_KEY = r"^(\*|[A-Za-z0-9_.\-]{1,64})/(\*|[A-Za-z0-9_.\-]{1,64})$"
TuningKey = Annotated[str, Field(pattern=_TUNING_KEY)]
"""``asset/signal`` with ``*`` for "any": ``pump01/res.flow``, ``pump01/*``, ``*/vibration``."""
ThresholdScale = Annotated[float, Field(ge=THRESHOLD_SCALE_BOUNDS[0], le=THRESHOLD_SCALE_BOUNDS[1])]
RuleOffset = Annotated[float, Field(ge=RULE_OFFSET_BOUNDS[0], le=RULE_OFFSET_BOUNDS[1])]
RuleId = Annotated[str, Field(min_length=1, max_length=64)]


class Tuning(WireModel):
    """Persisted, bounded threshold adjustments made by operator feedback.

    ``thresholds`` multiplies the monitor's detection thresholds (> 1 = less sensitive) for an
    ``asset/signal`` key; every matching key applies (product, clamped to the bounds).
    ``rule_offsets`` adds to the confidence of a diagnosis rule (by rule id). An empty Tuning
    changes nothing."""

    version: Literal[1] = 1
    updated_at: datetime | None = None
    thresholds: dict[TuningKey, ThresholdScale] = Field(default_factory=dict, max_length=10_000)
    rule_offsets: dict[RuleId, RuleOffset] = Field(default_factory=dict, max_length=1_000)
    notes: list[ShortText] = Field(default_factory=list, max_length=1_000)
    """Why each change was made (newest last), for the engineer reading the file."""


# --------------------------------------------------------------------------------------------
# Topics and decoding
# --------------------------------------------------------------------------------------------

MAX_BATCH_SAMPLES = 512
"""Most samples one ``TelemetryBatch`` may carry (``MAX_PAYLOAD_BYTES`` bounds it too)."""


class TelemetryBatch(WireModel):
    """Several telemetry samples in one message, as Sparkplug-style gateways send them: one
    publish carries a tick of many assets (or several ticks of one), which costs the broker and
    every client one packet instead of dozens. It travels on ``telemetry/{bucket}/batch/{source}``
    and may hold only assets of that bucket, so routing by topic still holds. Each sample is a
    ``Telemetry`` with the same validation and bounds as a single message; receivers unpack it
    (``decode_batch``) and a bad sample is rejected alone, never its neighbours."""

    samples: list[Telemetry] = Field(min_length=1, max_length=MAX_BATCH_SAMPLES)


PlantMessage = Telemetry | AlertEvent | DiagnosisReport | Ticket | Feedback
TOPIC_MODELS: dict[str, type[PlantMessage]] = {
    "telemetry": Telemetry,
    "alerts": AlertEvent,
    "diagnosis": DiagnosisReport,
    "tickets": Ticket,
    "feedback": Feedback,
}
MODEL_TOPICS: dict[type[WireModel], str] = {m: k for k, m in TOPIC_MODELS.items()}


class WireError(ValueError):
    """A payload that is not a valid message for its topic. ``reason`` is one line, fit for a
    dead-letter record or an HTTP 4xx."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Topics (contract C3: nobody else writes or parses topic strings)
# --------------------------------------------------------------------------------------------
#
# ``{kind}/{asset}`` for alerts, diagnosis, tickets and feedback. Telemetry, the one stream whose
# volume grows with the fleet, carries a shard bucket: ``telemetry/{bucket}/{asset}`` (and
# ``telemetry/{bucket}/batch/{source}`` for a TelemetryBatch), the bucket a stable hash of the
# asset id into a fixed number of buckets. A replica that owns some assets subscribes to its
# buckets only, so the broker — any broker — delivers it its own traffic and nothing else
# (``engine.bus.routing``). The old ``telemetry/{asset}`` layout is still read (a migration).

TELEMETRY_BUCKETS = 64
"""Fixed for the life of a deployment: it is part of every telemetry topic. It caps how many
replicas of one service can split telemetry by topic (64); more assets per replica is fine."""
_BUCKET_WIDTH = len(str(TELEMETRY_BUCKETS - 1))
BATCH_LEVEL = "batch"
_SOURCE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def telemetry_bucket(asset: str) -> int:
    """The asset's bucket: CRC-32 of its id modulo ``TELEMETRY_BUCKETS`` (stable across
    processes, machines and Python versions, unlike ``hash``)."""
    return zlib.crc32(asset.encode()) % TELEMETRY_BUCKETS


def bucket_level(bucket: int) -> str:
    """The bucket as its topic level (``07``): fixed width, so filters and ACLs can name it."""
    return f"{bucket:0{_BUCKET_WIDTH}d}"


def telemetry_topic(asset: str) -> str:
    """``telemetry/{bucket}/{asset}``."""
    return f"telemetry/{bucket_level(telemetry_bucket(asset))}/{asset}"


def batch_topic(bucket: int, source: str) -> str:
    """``telemetry/{bucket}/batch/{source}``: where ``source`` (a gateway, a simulator
    instance) publishes its TelemetryBatch messages for the assets of ``bucket``."""
    return f"telemetry/{bucket_level(bucket)}/{BATCH_LEVEL}/{source}"


def topic_for(message: WireModel) -> str:
    """The topic a message belongs on: ``telemetry/{bucket}/{asset}`` or ``{kind}/{asset}``."""
    kind = MODEL_TOPICS.get(type(message))
    asset = getattr(message, "asset", None)
    if kind is None or not isinstance(asset, str):
        raise TypeError(f"{type(message).__name__} has no topic")
    if kind == "telemetry":
        return telemetry_topic(asset)
    return f"{kind}/{asset}"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic. ``asset`` is None for a batch (its samples name theirs); ``bucket`` is
    None for the old ``telemetry/{asset}`` layout and for the other kinds."""

    kind: str
    asset: str | None
    bucket: int | None = None
    source: str | None = None

    @property
    def batch(self) -> bool:
        return self.source is not None

    @property
    def legacy(self) -> bool:
        """Telemetry in the old ``telemetry/{asset}`` layout (still read during a migration)."""
        return self.kind == "telemetry" and self.bucket is None


def _bucket_of_level(level: str, topic: str) -> int:
    if len(level) != _BUCKET_WIDTH or not level.isdigit() or int(level) >= TELEMETRY_BUCKETS:
        raise WireError(
            f"topic {topic!r}: bucket {level!r} is not one of "
            f"{bucket_level(0)}..{bucket_level(TELEMETRY_BUCKETS - 1)}"
        )
    return int(level)


def read_topic(topic: str) -> Topic:
    """Parse any topic of ours; WireError naming it otherwise. A single sample in the wrong
    bucket is refused here: it would reach a replica that does not own its asset."""
    parts = topic.split("/")
    kind = parts[0]
    if kind not in TOPIC_MODELS or not all(parts[1:]):
        raise WireError(f"unknown topic {topic!r}")
    if len(parts) == 2:
        return Topic(kind, parts[1])
    if kind == "telemetry" and len(parts) == 3:
        bucket = _bucket_of_level(parts[1], topic)
        asset = parts[2]
        if telemetry_bucket(asset) != bucket:
            raise WireError(
                f"topic {topic!r}: asset {asset!r} belongs in bucket "
                f"{bucket_level(telemetry_bucket(asset))}, not {parts[1]}"
            )
        return Topic(kind, asset, bucket)
    if kind == "telemetry" and len(parts) == 4 and parts[2] == BATCH_LEVEL:
        if not _SOURCE.fullmatch(parts[3]):
            raise WireError(f"topic {topic!r}: batch source {parts[3][:80]!r} is not an id")
        return Topic(kind, None, _bucket_of_level(parts[1], topic), parts[3])
    raise WireError(f"unknown topic {topic!r}")


def parse_topic(topic: str) -> tuple[str, str]:
    """``"alerts/pump01"``, ``"telemetry/17/pump01"`` or the old ``"telemetry/pump01"`` ->
    ``(kind, asset)``; WireError on anything else (a batch topic names no asset: use
    ``read_topic``)."""
    t = read_topic(topic)
    if t.asset is None:
        raise WireError(f"topic {topic!r} is a batch: it names no single asset")
    return t.kind, t.asset


def error_line(exc: ValidationError, root: str = "(root)", more: bool = False) -> str:
    """A validation error as one line fit for a log, a dead letter or an HTTP detail:
    ``field.path: message`` of the first error (``root`` names a whole-object error; empty:
    the message alone), with ``(+N more)`` when ``more`` and there are others. The one place
    that turns a pydantic error into words."""
    errors = exc.errors(include_url=False)
    if not errors:
        return str(exc)
    e = errors[0]
    loc = ".".join(str(p) for p in e.get("loc", ())) or root
    msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    tail = f" (+{len(errors) - 1} more)" if more and len(errors) > 1 else ""
    if not loc:
        return f"{msg}{tail}"
    sep = "" if msg.startswith("[") else ": "  # a validator that names an index: "when[2]: ..."
    return f"{loc}{sep}{msg}{tail}"


def json_depth(value: object) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


def check_size(size: int) -> None:
    """WireError for a payload of ``size`` bytes past ``MAX_PAYLOAD_BYTES`` (the bus client
    refuses such a payload where it arrives, before it is queued)."""
    if size > MAX_PAYLOAD_BYTES:
        raise WireError(f"oversize payload: {size} bytes > {MAX_PAYLOAD_BYTES}")


def _parse_json(payload: bytes | str) -> tuple[str, Any]:
    """Size, encoding, JSON and nesting checks every payload passes first: (text, parsed)."""
    check_size(len(payload))
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        # As WireModel: string values (ids, timestamps) never enter pydantic-core's cache.
        raw = pydantic_core.from_json(payload, cache_strings="keys")
    except ValueError as exc:
        raise WireError(f"bad JSON: {exc}") from None
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise WireError(f"JSON nested {depth} levels deep (limit {MAX_JSON_DEPTH})")
    if not isinstance(raw, dict):
        raise WireError(f"payload must be a JSON object, got {type(raw).__name__}")
    return payload, raw


def decode(topic: str, payload: bytes | str) -> PlantMessage:
    """Parse a bus payload into the model its topic names.

    Raises WireError with a one-line reason for: unknown topic, oversize, non-UTF-8, bad JSON,
    nesting deeper than ``MAX_JSON_DEPTH``, schema violation (including NaN/Infinity), or an
    asset in the payload that disagrees with the topic's asset. A batch topic goes through
    ``decode_batch``.
    """
    kind, asset = parse_topic(topic)
    text, _ = _parse_json(payload)
    model = TOPIC_MODELS[kind]
    try:
        msg = model.model_validate_json(text)
    except ValidationError as exc:
        raise WireError(f"{model.__name__} invalid: {error_line(exc, more=True)}") from None
    if msg.asset != asset:
        raise WireError(f"asset {msg.asset!r} in payload does not match topic {topic!r}")
    return msg


@dataclass(frozen=True, slots=True)
class BatchRejection:
    """One sample of a batch that was not accepted: where, why, and its JSON (to dead-letter)."""

    index: int
    reason: str
    sample: str


def decode_batch(topic: str, payload: bytes | str) -> tuple[list[Telemetry], list[BatchRejection]]:
    """Unpack a TelemetryBatch: its valid samples (in order) and the ones rejected, each with
    its own reason (``samples[3]: signals.flow: ...``). A sample is judged exactly as a single
    ``telemetry`` message would be (same model, bounds, plausible ranges), and must belong to
    the topic's bucket. WireError when the batch as a whole is unusable (topic, size, encoding,
    JSON, nesting, no ``samples`` list, too many samples): the caller dead-letters it whole."""
    route = read_topic(topic)
    if not route.batch:
        raise WireError(f"topic {topic!r} is not a telemetry batch topic")
    rejected: list[BatchRejection] = []
    try:
        # One pass when all is well: a batch the schema accepts is bounded in size, depth and
        # count by the schema itself. Anything else gets the full checks below, for a reason.
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError
        indexed = list(enumerate(TelemetryBatch.model_validate_json(payload).samples))
    except (ValidationError, ValueError):
        _, raw = _parse_json(payload)
        items = raw.get("samples")
        extra = sorted(set(raw) - {"samples"})
        if not isinstance(items, list) or not items or extra:
            why = f"unexpected field {extra[0]!r}" if extra else "needs a non-empty 'samples' list"
            raise WireError(f"TelemetryBatch invalid: {why}") from None
        if len(items) > MAX_BATCH_SAMPLES:
            raise WireError(
                f"TelemetryBatch invalid: {len(items)} samples > {MAX_BATCH_SAMPLES}"
            ) from None
        indexed = []
        for i, item in enumerate(items):
            one = json.dumps(item, allow_nan=True)  # NaN stays NaN: the model refuses it
            try:
                indexed.append((i, Telemetry.model_validate_json(one)))
            except ValidationError as exc:
                rejected.append(
                    BatchRejection(i, f"samples[{i}]: {error_line(exc, more=True)}", one)
                )
    kept = []
    for i, t in indexed:
        if telemetry_bucket(t.asset) == route.bucket:
            kept.append(t)
        else:
            rejected.append(
                BatchRejection(
                    i,
                    f"samples[{i}]: asset {t.asset!r} belongs in bucket "
                    f"{bucket_level(telemetry_bucket(t.asset))}, not {topic!r}",
                    t.to_json(),
                )
            )
    rejected.sort(key=lambda r: r.index)
    return kept, rejected


def batch_payloads(samples: Iterable[Telemetry], max_samples: int = MAX_BATCH_SAMPLES,
                   max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[int, list[bytes]]:  # fmt: skip
    """Samples packed as TelemetryBatch payloads per bucket (order kept within a bucket), each
    within ``max_samples`` and ``max_bytes``: bucket -> payloads."""
    out: dict[int, list[bytes]] = {}
    open_: dict[int, tuple[list[bytes], int]] = {}
    for t in samples:
        b = telemetry_bucket(t.asset)
        body = t.to_bytes()
        parts, size = open_.get(b, ([], 15))
        if parts and (len(parts) >= max_samples or size + len(body) + 1 > max_bytes):
            out.setdefault(b, []).append(b'{"samples":[' + b",".join(parts) + b"]}")
            parts, size = [], 15
        parts.append(body)
        open_[b] = (parts, size + len(body) + 1)
    for b, (parts, _) in open_.items():
        out.setdefault(b, []).append(b'{"samples":[' + b",".join(parts) + b"]}")
    return out


M = TypeVar("M", bound=WireModel)


def validate_model(model: type[M], data: Any, *, where: str) -> M:
    """Validate ``data`` (a dict or JSON text) as ``model``; WireError names ``where`` + field."""
    try:
        if isinstance(data, str | bytes):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        raise WireError(
            f"{where}: {model.__name__} invalid: {error_line(exc, more=True)}"
        ) from None


# --------------------------------------------------------------------------------------------
# Files: replay / run logs and dead letters
# --------------------------------------------------------------------------------------------


class Envelope(WireModel):
    """One line of a replay or run JSONL file: the topic and the message as it was on the bus."""

    topic: str
    payload: dict[str, Any]

    @classmethod
    def of(cls, message: WireModel) -> Envelope:
        return cls(topic=topic_for(message), payload=message.model_dump(mode="json"))

    def message(self) -> PlantMessage:
        return decode(self.topic, json.dumps(self.payload, allow_nan=False))


class DeadLetter(WireModel):
    """A rejected message, kept so nothing silently disappears."""

    at: datetime
    service: str
    topic: str
    reason: ShortText
    payload: str
    """The raw payload as text (bytes that are not UTF-8 are replaced), truncated to 64 KiB."""
    size: int
