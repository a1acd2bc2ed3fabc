"""The one MQTT adapter every service, test and the TUI use (paho-mqtt 2.x underneath).

Guarantees, and how they are kept:

- **Validated both ways.** ``publish`` serialises and re-parses the message with the schema
  before it leaves; every received payload is parsed by the model its topic names before a
  handler sees it. Anything invalid (bad JSON, too deep, wrong schema, NaN, oversize, unknown
  topic) is appended to a size-capped dead-letter JSONL file with topic, reason and payload and
  counted; the client keeps going.
- **Acknowledged only once handled.** Received QoS 1 messages are acknowledged (paho manual
  ack) only after every handler returned, i.e. after the handler's effect is durable. A handler
  that raises ``RetryLater`` (its effect is not durable yet: a locked or full store) is retried
  in place with backoff, unacknowledged, for as long as it takes — the broker holds everything
  behind it, and a process stopped meanwhile gets the message again on restart. Any other
  exception is retried ``RetryPolicy.attempts`` times, then the message is dead-lettered,
  counted and acknowledged, so one poison message cannot wedge a service.
- **Durable at the broker, not just acknowledged.** Mosquitto sends PUBACK before it saves the
  message (it saves at the top of its next loop iteration): a broker killed in between loses an
  acknowledged message. So ``delivered(publication)`` — what the outboxes wait for before they
  delete a row — is true only once the PUBACK came *and* a later round trip on the same
  connection completed (a QoS 1 publish on ``sync/{identity}``, which nobody subscribes to): by
  then Mosquitto has been through its save. A message whose round trip spans a reconnect is
  published again (a repeat at worst, which consumers recognise by id).
- **Nothing lost.** Alerts, diagnoses, tickets and feedback travel at QoS 1 on a persistent
  session (MQTT 3.1.1 ``clean_session=False`` with a stable client id, which Mosquitto and amqtt
  both honour), so what is published while a service is down waits for it at the broker.
  Telemetry is QoS 0.
- **Nothing doubled by the bus.** A redelivered QoS 1 message (a valid message with the same
  topic and bytes as one of the last few thousand handled) is acknowledged and skipped. Across
  process restarts the consumers' own idempotency keys (diagnosis_id in the ticket store) take
  over.
- **paho's network thread never waits for a handler and never sees an exception**:
  ``on_message`` only enqueues (a payload past ``MAX_PAYLOAD_BYTES`` cut to its first
  ``OVERSIZE_KEPT`` bytes, so junk holds little inbox room); one dispatcher thread decodes
  and runs handlers in arrival order, which keeps the per-asset order the monitor's and
  diagnosis' windows need. The queue is bounded for QoS 0
  (telemetry beyond ``INBOX_LIMIT`` messages or ``INBOX_LIMIT_BYTES`` waiting is dropped and
  counted); QoS 1 is bounded by the broker's in-flight window.
- Reconnects with exponential backoff (0.25 s doubling to 10 s); subscriptions are restored on
  every connect.

paho's private internals are used only through ``engine.bus.paho_compat``.

Why one module of ~1260 lines: BusClient is one state machine: connection, subscriptions, inbox,
dispatcher, retries, dead letters and the order of acknowledgements share its locks and counters,
and the guarantee that a message is acknowledged only after its handlers returned would span
modules if it were split. What is not that state already lives apart (``paho_compat``,
``deadletter``, ``routing``, ``engine/schemas.py``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import queue
import ssl
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from engine.bus import paho_compat
from engine.bus.acl import credentials_for
from engine.bus.broker import parse_broker_url, redact_url
from engine.bus.deadletter import DeadLetterLog
from engine.bus.paho_compat import FastClient, message_topic
from engine.schemas import (
    MAX_BATCH_SAMPLES,
    MAX_PAYLOAD_BYTES,
    TOPIC_MODELS,
    PlantMessage,
    Telemetry,
    WireError,
    WireModel,
    batch_payloads,
    batch_topic,
    bucket_level,
    check_size,
    decode,
    decode_batch,
    telemetry_bucket,
    topic_for,
)

log = logging.getLogger("controlroom.bus")

QOS_BY_KIND: dict[str, int] = {
    "telemetry": 0,
    "alerts": 1,
    "diagnosis": 1,
    "tickets": 1,
    "feedback": 1,
}
"""Telemetry is a stream (a missed sample is superseded by the next); everything else is work."""

DEDUP_WINDOW = 4096
UNACKED_PRUNE_MIN = 64
"""QoS 1 publications kept for ``flush`` are pruned of the durable ones whenever the list reaches
twice what the last pruning left, and at least this many: each keeps its payload, so the list
stays near what is really in flight instead of holding the last thousand payloads (a ticket
snapshot is kilobytes: that read as megabytes of growth in the soak)."""
INBOX_LIMIT = 100_000
"""QoS 0 messages waiting for the dispatcher beyond this are dropped (``inbox_dropped``)."""
INBOX_LIMIT_BYTES = 16 * 1024 * 1024
"""QoS 0 messages waiting for the dispatcher are also dropped once they would hold more than
this (each counted as its payload, its topic and ``INBOX_ITEM_BYTES``). A count alone bounds no
memory: a queued message costs what its payload (and its topic) does — ~0.65 KB for one
telemetry sample (100,000 of them ~62 MiB), ~26 KB for a 64-sample ``TelemetryBatch`` (100,000:
~2.5 GiB), up to ``MAX_PAYLOAD_BYTES`` and beyond for junk (the soak's 300 KB payloads made its
monitor's queued messages 12 KB each on average). A service that falls behind so holds at most
this much, and how long it stays behind no longer decides its memory. 16 MiB is ~25,000 single
samples or ~40 s of a 1,000-pump fleet in batches of 64."""
INBOX_ITEM_BYTES = 256
"""What a queued message costs beside its payload and its topic's characters (measured with
``tracemalloc``: ~200 B of ``_Inbound`` tuple, float and queue slot, and its topic string's
header). The topic is counted apart: MQTT allows 64 KiB of it, and empty payloads on 60 KB
topics each counted 256 B (a stuck service held 6 MB against a 100 KB bound)."""
OVERSIZE_KEPT = 4096
"""Of a payload past ``MAX_PAYLOAD_BYTES``, what is queued for its dead letter: enough to see
what the junk was, not the 300 KB the soak sends (refused at arrival, it never reaches a
decoder)."""
OUT_LIMIT = 10_000
"""QoS 0 messages handed to paho and not yet written to the socket beyond which a publisher is
told to wait (``wait_writable``): paho's send queue has no bound of its own, so a simulator
publishing faster than the broker reads grew it without end, and a stop then had to write all
of it out (6.6 s at 1,000 pumps flat out)."""
STOP_WRITE_S = 2.0
"""How long ``stop`` lets paho write what is queued (the DISCONNECT last) before it closes the
socket: a broker that stopped reading must not keep a service from stopping."""
DISPATCH_BATCH = 256
"""Most queued messages the dispatcher takes in one pass (what a batch handler gets at most
from separate messages; a TelemetryBatch adds its samples)."""

Handler = Callable[[PlantMessage], None]
BatchHandler = Callable[[list[Telemetry]], None]


class _Batched:
    """A handler that takes every consecutive message the dispatcher has for it at once."""

    __slots__ = ("handler",)

    def __init__(self, handler: BatchHandler) -> None:
        self.handler = handler

    def name(self) -> str:
        return str(getattr(self.handler, "__qualname__", repr(self.handler)))


Route = Handler | _Batched
"""What a subscription holds: a plain handler, or a batch handler the dispatcher feeds."""

M = TypeVar("M", bound=WireModel)
P = ParamSpec("P")

__all__ = [
    "BusClient",
    "Publication",
    "RetryLater",
    "RetryPolicy",
    "TlsOptions",
    "delivered",
    "stamped",
]


class RetryLater(Exception):
    """Raised by a handler whose effect is not durable yet (the store is locked, the disk is
    full): the message stays unacknowledged and is handed to the handler again after a backoff,
    however long it takes. Subclass it for a typed reason."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a QoS 1 message whose handler fails is retried before it is given up on."""

    attempts: int = 3
    """Attempts for a handler raising anything but ``RetryLater`` (a bug, a poison message)."""
    base_s: float = 0.05
    cap_s: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class RetryState:
    """The message the dispatcher is retrying right now (shown in /health)."""

    topic: str
    attempts: int
    since: float
    error: str


@dataclass(frozen=True)
class TlsOptions:
    """For ``mqtts://`` brokers. ``insecure`` skips certificate and host-name checks (a
    self-signed test broker); the client warns once per process when it is used."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


_insecure_warned = threading.Event()


class Publication:
    """A publish, as ``BusClient.publish`` returns it; ``delivered(publication)`` says whether
    the broker has it durably (see the module docstring)."""

    __slots__ = ("_after", "_bus", "_gen", "info", "payload", "qos", "topic")

    def __init__(self, bus: BusClient, info: mqtt.MQTTMessageInfo, topic: str, payload: bytes,
                 qos: int) -> None:  # fmt: skip
        self._bus = bus
        self.info = info
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self._after: int | None = None
        self._gen = 0

    @property
    def mid(self) -> int:
        return self.info.mid

    def acknowledged(self) -> bool:
        """The broker sent PUBACK (it may not have saved the message yet)."""
        return paho_compat.delivered(self.info)

    def durable(self) -> bool:
        """Acknowledged, and a later round trip on the same connection completed."""
        if self.qos == 0:
            return True
        bus = self._bus
        if self._after is None:
            if not paho_compat.delivered(self.info):
                return False
            self._gen = bus._puback_generation(self.info.mid)
            self._after = bus._barrier_after_now()
        done, gen = bus._barrier_state()
        if done < self._after:
            return False
        if gen != self._gen:  # the round trip crossed a reconnect: publish it again
            self.info = bus._mqtt.publish(self.topic, self.payload, qos=self.qos)
            self._after = None
            return False
        self.payload = b""  # durable: never sent again, so a publication kept for flush holds none
        return True


def delivered(info: Publication | mqtt.MQTTMessageInfo) -> bool:
    """Whether a QoS 1 publish is safe to forget: durable at the broker for a ``Publication``,
    acknowledged for a bare paho ``MQTTMessageInfo``."""
    if isinstance(info, Publication):
        return info.durable()
    return paho_compat.delivered(info)


class _Inbound(NamedTuple):
    topic: str | bytes
    payload: bytes
    qos: int
    mid: int
    generation: int
    received: float
    cost: int
    """What it counts against ``INBOX_LIMIT_BYTES``: its payload, its topic (MQTT allows 64 KiB
    of it) and ``INBOX_ITEM_BYTES``."""
    refused: str = ""
    """Why it is refused already (oversize: only its first ``OVERSIZE_KEPT`` bytes were kept);
    the dispatcher dead-letters it in its turn."""


class Counters:
    """Thread-safe counters for /health and the benchmark."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, int] = defaultdict(int)
        self.received_by_kind: dict[str, int] = defaultdict(int)
        self.published_by_kind: dict[str, int] = defaultdict(int)
        self.last_message_at: float | None = None
        self.last_published_at: float | None = None

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.values[name] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                **{k: self.values.get(k, 0) for k in COUNTER_NAMES},
                "received_by_kind": dict(self.received_by_kind),
                "published_by_kind": dict(self.published_by_kind),
                "last_message_at": self.last_message_at,
                "last_published_at": self.last_published_at,
            }


COUNTER_NAMES = (
    "received",
    "handled",
    "published",
    "dead_letters",
    "rejected_on_publish",
    "handler_failures",
    "handler_errors",
    "duplicates",
    "not_mine",
    "samples",
    "batches",
    "publish_dropped",
    "inbox_dropped",
    "connects",
    "disconnects",
)
"""``handler_failures`` counts failed attempts (each retry); ``handler_errors`` the messages
given up on after them (dead-lettered and acknowledged). ``samples`` counts telemetry samples
handed to handlers (a TelemetryBatch counts its samples, ``batches`` the batch messages)."""


def _kind_of(topic: str) -> str:
    return topic.split("/", 1)[0]


def _plain_filter(pattern: str) -> str:
    """The topic filter inside a shared subscription (``$share/{group}/{filter}``): messages
    arrive on their own topics, which the plain filter matches."""
    if pattern.startswith("$share/"):
        return pattern.split("/", 2)[2] if pattern.count("/") >= 2 else pattern
    return pattern


def _never_raises(
    callback: Callable[Concatenate[BusClient, P], None],
) -> Callable[Concatenate[BusClient, P], None]:
    """A paho callback that never raises into paho's network thread: a failure is logged with
    its traceback, naming the service and the callback."""
    what = callback.__name__.lstrip("_")

    @functools.wraps(callback)
    def guarded(self: BusClient, /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(self, *args, **kwargs)
        except Exception:
            log.exception("%s: %s failed", self.service_name, what)

    return guarded


def _is_batch(topic: str) -> bool:
    """``telemetry/{bucket}/batch/{source}`` (checked fully by ``decode_batch``)."""
    return topic.count("/") == 3


class BusClient:
    """A service's connection to the bus.

    ``client_id`` must be stable across restarts for the persistent session to work (the
    services use ``controlroom-{service}[-{i}of{N}]``). ``accept(asset)`` lets a replica ignore
    assets another replica owns (counted as ``not_mine``, still acknowledged).
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        service_name: str,
        *,
        tls: TlsOptions | None = None,
        persistent: bool = True,
        var: Path,
        credentials: Path | None = None,
        accept: Callable[[str], bool] | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        keepalive: int = 30,
        validate_on_publish: bool = True,
        retry: RetryPolicy | None = None,
        deadletter_max_bytes: int | None = None,
        identity: str | None = None,
        inbox_limit: int = INBOX_LIMIT,
        inbox_limit_bytes: int = INBOX_LIMIT_BYTES,
        dedup_full: bool = False,
    ) -> None:
        """``var``: the runtime-state directory the caller resolved (dead letters go to
        ``var/deadletter/{service_name}.jsonl``). ``identity``: who to connect as on a broker
        with ACLs (default ``service_name``); its password comes from the ``credentials`` file
        (``engine.bus.acl``) unless the URL names a user, which wins. No URL user and no
        credentials: anonymous. ``inbox_limit``: QoS 0 messages left waiting for the dispatcher
        beyond this are dropped and counted (``inbox_dropped``); a display that only shows the
        latest values keeps it small, so a starved process holds seconds of telemetry, not
        tens of megabytes. ``inbox_limit_bytes``: the same bound on what they hold
        (``INBOX_LIMIT_BYTES``). ``dedup_full``: the dedup window starts full of placeholders of a
        digest's size (``DEDUP_WINDOW`` of them, ~0.7 MiB), so it takes its memory at start
        instead of over the hour in which real digests fill it (the TUI: memory flat from the
        start); a service leaves it off and pays only for what it has seen."""
        self.url = url
        self.address = parse_broker_url(url)
        self.client_id = client_id
        self.service_name = service_name
        self.counters = Counters()
        self.deadletters = DeadLetterLog(
            var / "deadletter" / f"{service_name}.jsonl",
            service_name,
            **({"max_bytes": deadletter_max_bytes} if deadletter_max_bytes else {}),
        )
        self.retry = retry or RetryPolicy()
        self._retrying: RetryState | None = None
        self._halt = threading.Event()
        self._unsent_qos0 = 0
        self._out_cv = threading.Condition()
        self._gone = threading.Event()
        """Set by ``_on_disconnect``: the DISCONNECT was written (or the connection dropped)."""
        """Set by ``stop()``: a retry in progress is abandoned, its message left unacked."""
        self._accept = accept
        self._on_event = on_event
        self._validate_on_publish = validate_on_publish
        self._subs: dict[str, tuple[int, list[Route]]] = {}
        self._subs_lock = threading.Lock()
        self._routes: dict[str, list[Route]] = {}
        self._batched: dict[BatchHandler, _Batched] = {}
        """One ``_Batched`` per batch handler, shared by every filter it is subscribed with."""
        self._held: dict[int, tuple[_Batched, list[tuple[Any, str, bytes | None]]]] = {}
        """Messages collected for batch handlers during one dispatcher pass."""
        self._inbox: queue.SimpleQueue[_Inbound | None] = queue.SimpleQueue()
        self._pending = 0
        self._pending_bytes = 0
        self._inbox_limit = inbox_limit
        self._inbox_limit_bytes = inbox_limit_bytes
        self._pending_cv = threading.Condition()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        """Digests of the last ``DEDUP_WINDOW`` valid QoS 1 messages (with ``dedup_full``,
        placeholders until real ones push them out: no blake2b digest is a small integer)."""
        if dedup_full:
            # Twice the window, as turnover does: a dict whose keys come and go is rebuilt at
            # twice the table a dict filled once has (16,384 slots for 4,096 keys, not 8,192).
            for i in range(2 * DEDUP_WINDOW):
                self._remember(i.to_bytes(16, "big"))
        self._generation = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._sub_mids: set[int] = set()
        self._worker: threading.Thread | None = None
        self._unacked: list[Publication] = []
        self._unacked_prune_at = UNACKED_PRUNE_MIN
        self._barrier_lock = threading.Lock()
        self._barrier_started = 0
        self._barrier_done = 0
        self._barrier_done_gen = 0
        self._barrier_wanted = 0
        self._barrier_info: mqtt.MQTTMessageInfo | None = None
        self._puback_gens: OrderedDict[int, int] = OrderedDict()
        self._unacked_lock = threading.Lock()
        self._last_connect_error: str | None = None
        self._stopping = False

        self._mqtt = FastClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        user, password = credentials_for(identity or service_name, url, credentials) or (
            self.address.username,
            self.address.password,
        )
        self.username = user
        if user is not None:
            self._mqtt.username_pw_set(user, password)
        if self.address.tls:
            tls = tls or TlsOptions()
            if tls.insecure and not _insecure_warned.is_set():
                _insecure_warned.set()
                log.warning(
                    "TLS certificate checks are OFF for %s (--insecure): anyone on the path "
                    "can impersonate the broker; use it for test brokers only",
                    redact_url(url),
                )
            self._mqtt.tls_set(
                ca_certs=tls.ca_file,
                certfile=tls.cert_file,
                keyfile=tls.key_file,
                cert_reqs=ssl.CERT_NONE if tls.insecure else ssl.CERT_REQUIRED,
            )
            self._mqtt.tls_insecure_set(tls.insecure)
        self._mqtt.reconnect_delay_set(min_delay=0.25, max_delay=10)  # type: ignore[arg-type]  # paho types it int; it takes floats
        self._mqtt.max_inflight_messages_set(100)
        self._mqtt.max_queued_messages_set(0)
        self._mqtt.on_connect = self._on_connect
        self._mqtt.on_disconnect = self._on_disconnect
        self._mqtt.on_message = self._on_message
        self._mqtt.on_connect_fail = self._on_connect_fail
        self._mqtt.on_subscribe = self._on_subscribe
        self._mqtt.on_publish = self._on_publish
        self._sync_topic = f"sync/{identity or service_name}"
        self._keepalive = keepalive

    # ---------------------------------------------------------------- lifecycle

    def start(self, wait: float | None = None) -> BusClient:
        """Connect in the background (retrying until the broker is there). With ``wait``,
        block up to that many seconds for the first connection (TimeoutError if none)."""
        if self._worker is None:
            self._halt.clear()
            self._stopping = False
            self._worker = threading.Thread(
                target=self._dispatch_loop, name=f"bus-{self.service_name}", daemon=True
            )
            self._worker.start()
            self._mqtt.connect_async(self.address.host, self.address.port, self._keepalive)
            self._mqtt.loop_start()
        if wait is not None and not self.wait_ready(wait):
            raise TimeoutError(
                f"{self.service_name}: no connection to {redact_url(self.url)} after {wait:.0f}s"
                + (f" ({self._last_connect_error})" if self._last_connect_error else "")
            )
        return self

    def stop(self, drain: float = 5.0) -> None:
        """Finish queued work (up to ``drain`` s), flush QoS 1 publishes, disconnect."""
        if self._worker is None:
            return
        self._stopping = True
        self._halt.set()
        self.wait_idle(drain)
        self.flush(drain)
        self._inbox.put(None)
        self._worker.join(timeout=drain)
        connected = self._connected.is_set()
        self._mqtt.disconnect()
        if connected and not self._gone.wait(STOP_WRITE_S):
            # paho's loop ends only once its send queue is written: a broker that stopped
            # reading would hold this stop for ever. Closing the socket ends the loop.
            sock = self._mqtt.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._mqtt.loop_stop()
        self._worker = None
        self._connected.clear()

    def __enter__(self) -> BusClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def subscribed(self) -> bool:
        """Every subscription of this connection acknowledged by the broker (SUBACK). Until
        then a QoS 1 message for a first-time persistent subscriber is not yet queued for it, so
        a service is not ready before this is true."""
        return self._subscribed.is_set()

    @property
    def ready(self) -> bool:
        return self.connected and self.subscribed

    @property
    def last_error(self) -> str | None:
        """Why the last connection attempt failed (refused, unreachable), until one succeeds."""
        return self._last_connect_error

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until connected with every subscription acknowledged."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not self._connected.wait(left):
                return False
            self._subscribed.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every received message has been handled (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._pending_cv:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._pending_cv.wait(left)
        return True

    def wait_writable(self, timeout: float) -> bool:
        """Wait until fewer than ``OUT_LIMIT`` QoS 0 messages wait to be written (True), or
        ``timeout`` (False). A publisher that can go slower (the simulator) waits here instead
        of growing paho's unbounded send queue; while disconnected it does not wait (a QoS 0
        publish is then dropped and counted)."""
        with self._out_cv:
            return self._out_cv.wait_for(
                lambda: (
                    self._unsent_qos0 < OUT_LIMIT
                    or not self._connected.is_set()
                    or self._halt.is_set()
                ),
                timeout,
            )

    @property
    def unsent(self) -> int:
        """QoS 0 messages handed to paho and not yet written to the socket."""
        return self._unsent_qos0

    def flush(self, timeout: float) -> bool:
        """Wait until every QoS 1 message published so far is durable at the broker."""
        deadline = time.monotonic() + timeout
        while True:
            with self._unacked_lock:
                self._unacked = [i for i in self._unacked if not i.durable()]
                if not self._unacked:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    @property
    def queue_depth(self) -> int:
        return self._pending

    @property
    def queue_bytes(self) -> int:
        """What the messages waiting for the dispatcher hold (``INBOX_LIMIT_BYTES`` bounds
        the QoS 0 ones)."""
        return self._pending_bytes

    # ---------------------------------------------------------------- subscribe / publish

    def subscribe(self, pattern: str, handler: Callable[[M], None], qos: int | None = None) -> None:
        """Call ``handler(message)`` with each valid message on topics matching ``pattern``
        (typed by the model the pattern's topic kind carries, e.g. ``Feedback`` for
        ``feedback/+``).

        The subscription survives reconnects (restored on every connect) and, for QoS 1, the
        persistent session keeps messages for it while the process is down. Default QoS follows
        the topic kind (telemetry 0, the rest 1)."""
        if qos is None:
            qos = QOS_BY_KIND.get(_kind_of(_plain_filter(pattern)), 1)
        with self._subs_lock:
            old_qos, handlers = self._subs.get(pattern, (qos, []))
            self._subs[pattern] = (max(old_qos, qos), [*handlers, cast(Handler, handler)])
            self._routes = {}
            if self.connected:
                self._track_subscribe(self._mqtt.subscribe(pattern, qos))

    def subscribe_batch(self, pattern: str, handler: BatchHandler) -> None:
        """Like ``subscribe`` for telemetry, but ``handler(samples)`` gets every consecutive
        sample the dispatcher has queued for it at once (in arrival order; the samples of a
        TelemetryBatch message and of up to ``DISPATCH_BATCH`` single messages), so a
        vectorised consumer pays its per-call cost once per burst. Telemetry only (QoS 0): a
        failed call is dead-lettered sample by sample, never retried.

        A handler subscribed with several filters (a replica's one filter per bucket it owns)
        still gets one call per pass with the samples of all of them, in arrival order, and a
        sample whose topic matches several of them once: a call per filter would cut each
        burst into one slice per bucket, ~1/32 of it for a replica of 2 at 64 buckets, and
        a vectorised monitor would step a few assets at a time instead of all of its own."""
        if _kind_of(_plain_filter(pattern)) != "telemetry":
            raise ValueError(f"subscribe_batch: {pattern!r} is not a telemetry filter")
        with self._subs_lock:
            route = self._batched.setdefault(handler, _Batched(handler))
            old_qos, handlers = self._subs.get(pattern, (0, []))
            self._subs[pattern] = (old_qos, [*handlers, route])
            self._routes = {}
            if self.connected:
                self._track_subscribe(self._mqtt.subscribe(pattern, 0))

    def _track_subscribe(self, result: tuple[Any, int | None]) -> None:
        """Remember a SUBSCRIBE's mid until its SUBACK (call with ``_subs_lock`` held, which
        ``_on_subscribe`` also takes, so the ack cannot be seen before the mid is recorded)."""
        rc, mid = result
        if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._sub_mids.add(mid)
            self._subscribed.clear()

    def publish(
        self, message: WireModel, qos: int | None = None, retain: bool = False
    ) -> Publication:
        """Validate and publish on ``topic_for(message)``; stamps ``wall_time`` if unset.

        A message that fails validation is dead-lettered, counted and raised as WireError (the
        caller built something invalid: a bug to see, not to hide). QoS 1 messages published
        while disconnected are queued by paho and sent on reconnect; QoS 0 ones are dropped and
        counted (``publish_dropped``)."""
        topic = topic_for(message)
        message = stamped(message)
        payload = message.to_bytes()
        if self._validate_on_publish:
            try:
                fast_decode(topic, payload)
            except WireError as exc:
                self.counters.inc("rejected_on_publish")
                self._dead_letter(topic, f"rejected on publish: {exc.reason}", payload)
                raise
        kind = _kind_of(topic)
        if qos is None:
            qos = QOS_BY_KIND.get(kind, 1)
        info = self._mqtt.publish(topic, payload, qos=qos, retain=retain)
        publication = Publication(self, info, topic, payload, qos)
        if info.rc == mqtt.MQTT_ERR_NO_CONN and qos == 0:
            self.counters.inc("publish_dropped")
        elif info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self.counters.inc("publish_dropped")
            log.warning("%s: publish on %s failed: %s", self.service_name, topic, info.rc)
        else:
            c = self.counters
            with c._lock:
                c.values["published"] += 1
                c.published_by_kind[kind] += 1
                c.last_published_at = time.time()
            if qos == 0:
                with self._out_cv:
                    self._unsent_qos0 += 1
            if qos > 0:
                with self._unacked_lock:
                    self._unacked.append(publication)
                    if len(self._unacked) >= self._unacked_prune_at:
                        self._unacked = [i for i in self._unacked if not i.durable()]
                        self._unacked_prune_at = max(UNACKED_PRUNE_MIN, 2 * len(self._unacked))
        return publication

    # ---------------------------------------------------------------- durability barrier

    def _barrier_after_now(self) -> int:
        """The number of a barrier round trip that starts after this call (started now if
        none is in flight, else right after the one in flight)."""
        with self._barrier_lock:
            self._poll_barrier()
            want = self._barrier_started + 1
            self._barrier_wanted = max(self._barrier_wanted, want)
            self._poll_barrier()
            return want

    def _barrier_state(self) -> tuple[int, int]:
        """(last barrier completed, connection generation it completed on)."""
        with self._barrier_lock:
            self._poll_barrier()
            return self._barrier_done, self._barrier_done_gen

    def _poll_barrier(self) -> None:
        info = self._barrier_info
        if info is not None and paho_compat.delivered(info):
            self._barrier_done = self._barrier_started
            self._barrier_done_gen = self._puback_generation(info.mid)
            self._barrier_info = None
        if self._barrier_info is None and self._barrier_wanted > self._barrier_started:
            self._barrier_info = self._mqtt.publish(self._sync_topic, b"", qos=1)
            self._barrier_started += 1

    def _puback_generation(self, mid: int) -> int:
        """The connection a PUBACK for ``mid`` arrived on (recorded by ``_on_publish``)."""
        return self._puback_gens.pop(mid, self._generation)

    def publish_batch(
        self, samples: Sequence[Telemetry], source: str, max_samples: int = MAX_BATCH_SAMPLES
    ) -> int:
        """Publish telemetry as TelemetryBatch messages, one per bucket (more when a bucket
        has over ``max_samples`` samples or ``MAX_PAYLOAD_BYTES``), on
        ``telemetry/{bucket}/batch/{source}``; stamps ``wall_time`` where unset. Validated like
        ``publish`` (each payload decoded as a receiver would: any rejected sample is a
        WireError here). QoS 0. Returns how many messages were sent."""
        now = time.time()
        stamped_samples = [
            t if t.wall_time is not None else t.model_copy(update={"wall_time": now})
            for t in samples
        ]
        sent = 0
        c = self.counters
        for bucket, payloads in batch_payloads(stamped_samples, max_samples).items():
            topic = batch_topic(bucket, source)
            for payload in payloads:
                if self._validate_on_publish:
                    try:
                        _, rejected = decode_batch(topic, payload)
                        if rejected:
                            raise WireError(rejected[0].reason)
                    except WireError as exc:
                        c.inc("rejected_on_publish")
                        self._dead_letter(topic, f"rejected on publish: {exc.reason}", payload)
                        raise
                info = self._mqtt.publish(topic, payload, qos=0)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    c.inc("publish_dropped")
                    continue
                with self._out_cv:
                    self._unsent_qos0 += 1
                sent += 1
                with c._lock:
                    c.values["published"] += 1
                    c.published_by_kind["telemetry"] += 1
                    c.last_published_at = now
        return sent

    # ---------------------------------------------------------------- paho callbacks
    # (network thread: no blocking, no exceptions)

    @_never_raises
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc.is_failure:
            self._set_error(f"broker refused the connection: {rc}")
            return
        self._generation += 1
        self._gone.clear()
        with self._subs_lock:
            subs = [(p, q) for p, (q, _) in self._subs.items()]
            self._sub_mids.clear()
            if subs:
                self._track_subscribe(client.subscribe(subs))
            else:
                self._subscribed.set()
        self._last_connect_error = None
        self.counters.inc("connects")
        self._connected.set()
        self._emit(
            "bus_connected",
            broker=redact_url(self.url),
            session_present=bool(getattr(flags, "session_present", False)),
            subscriptions=[p for p, _ in subs],
        )

    @_never_raises
    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        self._gone.set()
        with self._out_cv:  # paho drops the QoS 0 sends still queued at a reconnect
            self._unsent_qos0 = 0
            self._out_cv.notify_all()
        if was:
            self.counters.inc("disconnects")
            if not self._stopping:
                self._emit("bus_disconnected", reason=str(rc))

    @_never_raises
    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, props: Any
    ) -> None:
        failed = [str(rc) for rc in reason_codes or () if getattr(rc, "is_failure", False)]
        if failed:
            self._set_error(f"broker refused a subscription: {', '.join(failed)}")
        with self._subs_lock:
            self._sub_mids.discard(mid)
            if not self._sub_mids:
                self._subscribed.set()

    @_never_raises
    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        if paho_compat.published_qos(client, mid) == 0:
            with self._out_cv:  # written to the socket: room for a waiting publisher
                self._unsent_qos0 = max(0, self._unsent_qos0 - 1)
                if self._unsent_qos0 < OUT_LIMIT:
                    self._out_cv.notify_all()
            return
        gens = self._puback_gens
        gens[mid] = self._generation
        if len(gens) > 65_536:  # entries nobody asked about (QoS 1 publishes not tracked)
            gens.popitem(last=False)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        where = f"{self.address.host}:{self.address.port}"
        why = getattr(client, "socket_error", None) or "no answer"
        self._set_error(f"cannot connect to {where}: {why}")

    def _set_error(self, error: str) -> None:
        """Remember a connection error; log it once, not at every retry."""
        if error != self._last_connect_error:
            log.warning("%s: %s", self.service_name, error)
        self._last_connect_error = error

    @_never_raises
    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        qos, payload, topic = msg.qos, msg.payload, message_topic(msg)
        refused = ""
        try:
            check_size(len(payload))
        except WireError as exc:
            # Junk past the size limit waits cut to what its dead letter will show: whole, a
            # 300 KB one took 450 samples' room under INBOX_LIMIT_BYTES and held it for as long
            # as the dispatcher was behind. The dispatcher still writes the dead letter, in its
            # turn (paho's thread does no file I/O), and a QoS 1 one is acknowledged in order.
            refused, payload = exc.reason, payload[:OVERSIZE_KEPT]
        cost = len(payload) + len(topic) + INBOX_ITEM_BYTES
        with self._pending_cv:
            if qos == 0 and (
                self._pending >= self._inbox_limit
                or self._pending_bytes + cost > self._inbox_limit_bytes
            ):
                self.counters.inc("inbox_dropped")
                return
            self._pending += 1
            self._pending_bytes += cost
        self._inbox.put(
            _Inbound(
                topic,
                payload if isinstance(payload, bytes) else bytes(payload),
                qos,
                msg.mid,
                self._generation,
                time.time(),
                cost,
                refused,
            )
        )

    # ---------------------------------------------------------------- dispatcher thread

    def _dispatch_loop(self) -> None:
        inbox = self._inbox
        while True:
            item = inbox.get()
            if item is None:
                return
            # Take what else is queued (bounded): batch handlers then get it in one call.
            items, last = [item], False
            while len(items) < DISPATCH_BATCH:
                try:
                    more = inbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    last = True
                    break
                items.append(more)
            try:
                for one in items:
                    try:
                        self._dispatch(one)
                    except Exception:  # the dispatcher itself must never die
                        log.exception("%s: dispatch failed", self.service_name)
                self._flush_held()
            except Exception:
                log.exception("%s: dispatch failed", self.service_name)
            finally:
                cost = sum(one.cost for one in items)
                with self._pending_cv:
                    self._pending -= len(items)
                    self._pending_bytes -= cost
                    if self._pending == 0:
                        self._pending_cv.notify_all()
            if last:
                return

    def _dispatch(self, item: _Inbound) -> None:
        try:
            done = self._handle(item)
        except Exception as exc:  # a bug of ours: never acknowledge what was not handled
            self.counters.inc("handler_failures")
            log.exception("%s: message on %r not handled", self.service_name, item.topic)
            self._dead_letter(
                _topic_text(item.topic), f"not handled: {type(exc).__name__}: {exc}", item.payload
            )
            done = False
        # Acknowledge once handled (or given up on). A mid from an earlier connection is not
        # ours to ack any more: the broker redelivers that message and the dedup window skips
        # it. A message left unacked (the client is stopping mid-retry) comes back on restart.
        if done and item.qos > 0 and item.generation == self._generation:
            self._mqtt.ack(item.mid, item.qos)

    def _handle(self, item: _Inbound) -> bool:
        """Decode, deduplicate and hand one message to its handlers. True when it may be
        acknowledged: handled, rejected (dead-lettered) or given up on."""
        c = self.counters
        if isinstance(item.topic, bytes):
            c.inc("received")
            self._dead_letter(repr(item.topic), "topic is not UTF-8", item.payload)
            return True
        topic, payload = item.topic, item.payload
        kind = _kind_of(topic)
        with c._lock:
            c.values["received"] += 1
            c.received_by_kind[kind] += 1
            c.last_message_at = item.received
        if item.refused:
            if self._mine(topic):
                self._dead_letter(topic, item.refused, payload)
            else:
                c.inc("not_mine")
            return True
        if kind == "telemetry" and _is_batch(topic):
            return self._handle_batch(topic, payload)
        if not self._mine(topic):
            c.inc("not_mine")
            return True
        try:
            message = fast_decode(topic, payload)
        except WireError as exc:
            self._dead_letter(topic, exc.reason, payload)
            return True
        except Exception as exc:  # the decoder's own limits failed: still junk, still counted
            self._dead_letter(topic, f"cannot decode: {type(exc).__name__}: {exc}"[:500], payload)
            return True
        key = b""
        if item.qos > 0:
            # Only valid messages: they carry unique ids and a publish time, so identical bytes
            # mean the same message delivered again. Junk is dead-lettered every time it comes.
            key = hashlib.blake2b(topic.encode() + b"\0" + payload, digest_size=16).digest()
            if key in self._seen:
                c.inc("duplicates")
                return True
        if kind == "telemetry":
            c.inc("samples")
            handlers = self._handlers_for(topic)
            if len(handlers) == 1 and isinstance(handlers[0], _Batched):
                self._hold(handlers[0]).append((message, topic, payload))  # the fast path
                c.inc("handled")
                return True
        if not self._run_handlers(topic, message, payload, item.qos):
            return False
        if key:
            self._remember(key)
        c.inc("handled")
        return True

    def _mine(self, topic: str) -> bool:
        """False for a message another replica owns. The old one-level layout
        (``{kind}/{asset}``): the owner is decided by the topic's asset, before paying for
        decoding; a payload whose asset disagrees with its topic is invalid, and its owner
        dead-letters it. Bucketed telemetry needs no check: a replica subscribes to its own
        buckets only, and decoding refuses an asset filed in the wrong bucket."""
        if self._accept is None or topic.count("/") != 1:
            return True
        asset = topic.partition("/")[2]
        return not asset or self._accept(asset)

    def _remember(self, key: bytes) -> None:
        """Into the dedup window; the oldest digest out once it holds ``DEDUP_WINDOW``."""
        self._seen[key] = None
        if len(self._seen) > DEDUP_WINDOW:
            self._seen.popitem(last=False)

    def _handle_batch(self, topic: str, payload: bytes) -> bool:
        """A TelemetryBatch: each valid sample goes on as if it had come alone; each invalid
        one is dead-lettered alone (with ``samples[i]`` in its reason); a batch that cannot be
        read at all is dead-lettered whole. Telemetry is QoS 0: nothing to acknowledge."""
        c = self.counters
        try:
            samples, rejected = decode_batch(topic, payload)
        except WireError as exc:
            self._dead_letter(topic, exc.reason, payload)
            return True
        except Exception as exc:
            self._dead_letter(topic, f"cannot decode: {type(exc).__name__}: {exc}"[:500], payload)
            return True
        c.inc("batches")
        for r in rejected:
            self._dead_letter(topic, r.reason, r.sample)
        c.inc("samples", len(samples))
        handlers = self._handlers_for(topic)
        batched = [h for h in handlers if isinstance(h, _Batched)]
        if handlers and len(batched) == len(handlers):
            for h in batched:  # the common case, without a call per sample
                self._hold(h).extend((t, topic, None) for t in samples)
        else:
            for sample in samples:
                self._run_handlers(topic, sample, None, 0, handlers)
        c.inc("handled")
        return True

    def _run_handlers(
        self,
        topic: str,
        message: PlantMessage,
        payload: bytes | None,
        qos: int,
        handlers: list[Route] | None = None,
    ) -> bool:
        """Every handler once, retrying failures per ``self.retry`` (QoS 1 only: a QoS 0
        sample is superseded by the next). False: stopped mid-retry, leave it unacked.
        Batch handlers only collect the message here (``_flush_held`` calls them); plain
        handlers run after whatever batch handlers hold, so arrival order is kept.
        ``payload`` None: the message's own JSON (a sample of a batch)."""
        c = self.counters
        if handlers is None:
            handlers = self._handlers_for(topic)
        plain: list[Handler] = []
        for h in handlers:
            if isinstance(h, _Batched):
                self._hold(h).append((message, topic, payload))
            else:
                plain.append(h)
        if handlers and not plain:
            return True
        self._flush_held()
        i = attempt = 0
        since = time.time()
        while i < len(plain):
            handler = plain[i]
            try:
                handler(message)
            except Exception as exc:
                attempt += 1
                c.inc("handler_failures")
                name = getattr(handler, "__qualname__", repr(handler))
                error = f"handler {name} raised {type(exc).__name__}: {exc}"
                transient = isinstance(exc, RetryLater)
                if qos == 0 or (not transient and attempt >= self.retry.attempts):
                    c.inc("handler_errors")
                    log.error("%s: %s (given up after %d attempt(s))", self.service_name, error,
                              attempt)  # fmt: skip
                    self._dead_letter(
                        topic,
                        f"{error} (after {attempt} attempt(s))",
                        payload if payload is not None else message.to_bytes(),
                    )
                    i, attempt = i + 1, 0
                    continue
                self._retrying = RetryState(topic, attempt, since, error[:300])
                if attempt == 1:
                    log.warning("%s: %s; retrying", self.service_name, error)
                if self._halt.wait(self.retry.delay(attempt)):
                    self._retrying = None
                    return False
                continue
            i, attempt = i + 1, 0
        self._retrying = None
        return True

    def _hold(self, h: _Batched) -> list[tuple[Any, str, bytes | None]]:
        entry = self._held.get(id(h))
        if entry is None:
            entry = self._held[id(h)] = (h, [])
        return entry[1]

    def _flush_held(self) -> None:
        """Call each batch handler with the samples collected for it (in arrival order). A
        failed call is a bug or a poison sample: every sample of it is dead-lettered and
        counted (telemetry is QoS 0; the next samples supersede them)."""
        if not self._held:
            return
        held, self._held = self._held, {}
        c = self.counters
        for h, entries in held.values():
            try:
                h.handler([m for m, _, _ in entries])
            except Exception as exc:
                c.inc("handler_failures")
                c.inc("handler_errors", len(entries))
                error = f"handler {h.name()} raised {type(exc).__name__}: {exc}"
                log.error("%s: %s (%d samples given up)", self.service_name, error, len(entries))
                for m, topic, payload in entries:
                    self._dead_letter(
                        topic, f"{error} (batch of {len(entries)})", payload or m.to_bytes()
                    )

    @property
    def retrying(self) -> RetryState | None:
        """The message being retried now (its handler's effect is not durable yet), if any."""
        return self._retrying

    def _handlers_for(self, topic: str) -> list[Route]:
        routes = self._routes
        found = routes.get(topic)
        if found is None:
            with self._subs_lock:
                subs = list(self._subs.items())
            found = []
            for pattern, (_, hs) in subs:
                if mqtt.topic_matches_sub(_plain_filter(pattern), topic):
                    # A batch handler collects a sample once, however many filters match.
                    found += [h for h in hs if not (isinstance(h, _Batched) and h in found)]
            if len(routes) > 10_000:  # junk topics must not grow it without bound
                routes.clear()
            routes[topic] = found
        return found

    def dead_letter(self, topic: str, reason: str, payload: bytes | str) -> None:
        """Reject a message a handler found bad after decoding (a duplicate or late sample, a
        value past a learned limit): written to the dead-letter file, counted, logged."""
        self._dead_letter(topic, reason, payload)

    def _dead_letter(self, topic: str, reason: str, payload: bytes | str) -> None:
        self.counters.inc("dead_letters")
        try:
            self.deadletters.write(topic, reason, payload)
        except Exception:  # a full disk must not take the service down; the counter still moves
            log.exception("%s: cannot write dead letter", self.service_name)
        self._emit("dead_letter", topic=topic[:200], reason=reason[:300])

    def _emit(self, event: str, **fields: Any) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event, fields)
            except Exception:
                log.exception("%s: event sink failed", self.service_name)
        elif event != "dead_letter":
            log.info("%s: %s %s", self.service_name, event, json.dumps(fields, default=str))


def _topic_text(topic: str | bytes) -> str:
    return topic if isinstance(topic, str) else repr(topic)


def stamped(message: M) -> M:
    """The message with ``wall_time`` set to now if it has that field and it is unset (stamp
    before publishing when you also log the message, so both carry the same time)."""
    if "wall_time" in type(message).model_fields and getattr(message, "wall_time", 0) is None:
        return message.model_copy(update={"wall_time": time.time()})
    return message


def fast_decode(topic: str, payload: bytes) -> PlantMessage:
    """``schemas.decode`` with one parse instead of two on the happy path (the monitor's
    budget is a few tens of microseconds per message); on any failure the canonical decoder
    produces the reason, so accepted and rejected sets are the same."""
    kind, _, asset = topic.partition("/")
    model = TOPIC_MODELS.get(kind)
    bucket, sep, rest = asset.partition("/")
    if sep:  # telemetry/{bucket}/{asset}: the asset must be filed in its own bucket
        if kind != "telemetry" or bucket != bucket_level(telemetry_bucket(rest)):
            return decode(topic, payload)
        asset = rest
    if model is None or not asset or "/" in asset or len(payload) > MAX_PAYLOAD_BYTES:
        return decode(topic, payload)
    try:
        msg = model.model_validate_json(payload)
    except ValidationError:
        return decode(topic, payload)
    if msg.asset != asset:
        return decode(topic, payload)
    return msg
