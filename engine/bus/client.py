"""The one MQTT adapter every service, test and the TUI use (paho-mqtt 2.x underneath).

Guarantees, and how they are kept:

- **Validated both ways.** ``publish`` serialises and re-parses the message with the schema
  before it leaves; every received payload is parsed by the model its topic names before a
  handler sees it. Anything invalid (bad JSON, wrong schema, NaN, oversize, unknown topic, a
  handler that raised) is appended to a dead-letter JSONL file with topic, reason and payload and
  counted; the client keeps going.
- **Nothing lost.** Alerts, diagnoses, tickets and feedback travel at QoS 1 on a persistent
  session (MQTT 3.1.1 ``clean_session=False`` with a stable client id, which Mosquitto and amqtt
  both honour), so what is published while a service is down waits for it at the broker.
  Received QoS 1 messages are acknowledged only *after* their handler returned (paho manual
  ack), so a crash mid-handling means redelivery, not loss. Telemetry is QoS 0.
- **Nothing doubled by the bus.** A redelivered QoS 1 message (a valid message with the same
  topic and bytes as one of the last few thousand) is acknowledged and skipped. Across process
  restarts the consumers' own idempotency keys (diagnosis_id in the ticket store) take over.
- **paho's network thread is never blocked and never sees an exception**: ``on_message`` only
  enqueues; one dispatcher thread decodes and runs handlers in arrival order, which keeps the
  per-asset order the monitor's and diagnosis' windows need.
- Reconnects with exponential backoff (0.25 s doubling to 10 s); subscriptions are restored on
  every connect.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import ssl
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from engine.bus.broker import parse_broker_url, redact_url
from engine.paths import var_dir
from engine.schemas import (
    MAX_PAYLOAD_BYTES,
    TOPIC_MODELS,
    DeadLetter,
    PlantMessage,
    WireError,
    WireModel,
    decode,
    topic_for,
    utc_now,
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
DEADLETTER_PAYLOAD_CHARS = 64 * 1024

Handler = Callable[[PlantMessage], None]
M = TypeVar("M", bound=WireModel)


@dataclass(frozen=True)
class TlsOptions:
    """For ``mqtts://`` brokers. ``insecure`` skips certificate and host-name checks (a
    self-signed test broker); say so loudly if you use it."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


class DeadLetterLog:
    """Append-only JSONL of rejected messages, one ``DeadLetter`` per line."""

    def __init__(self, path: Path, service: str) -> None:
        self.path = path
        self.service = service
        self._lock = threading.Lock()

    def write(self, topic: str, reason: str, payload: bytes | str) -> None:
        raw = payload if isinstance(payload, bytes) else payload.encode("utf-8", "replace")
        text = raw[: DEADLETTER_PAYLOAD_CHARS * 4].decode("utf-8", "replace")
        record = DeadLetter(
            at=utc_now(),
            service=self.service,
            topic=topic[:500],
            reason=reason[:500],
            payload=text[:DEADLETTER_PAYLOAD_CHARS],
            size=len(raw),
        )
        line = record.to_json() + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)


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
    "handler_errors",
    "duplicates",
    "not_mine",
    "publish_dropped",
    "connects",
    "disconnects",
)


READ_CHUNK = 256 * 1024
READ_BURST = 256
COALESCE_S = 0.0005


class _BufferedSocket:
    """paho 2.2 reads each packet with three or more ``recv`` calls (command byte, length
    bytes, body) and one ``select`` per packet; at thousands of messages per second those
    syscalls, not our code, are the ceiling. This serves the small reads from one large
    ``recv`` and reports the buffered bytes through ``pending()``, which paho already consults
    (for TLS) to skip waiting in ``select``."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        if self._pos >= len(self._buf):
            data = self._sock.recv(max(n, READ_CHUNK))
            if len(data) <= n:
                return data
            self._buf, self._pos = data, 0
        chunk = self._buf[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buf) - self._pos + inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Client(mqtt.Client):
    """paho's client with buffered reads and up to ``READ_BURST`` packets per loop pass
    (paho reads one when nothing is in flight). Only private hooks of the pinned paho 2.2.0
    are touched; tests/live/test_bus.py exercises them on both brokers."""

    socket_error: str | None = None
    """Why the last socket could not be opened (refused, TLS verification, DNS)."""

    def _create_socket(self) -> Any:
        try:
            sock = super()._create_socket()
        except OSError as exc:
            self.socket_error = f"{type(exc).__name__}: {exc}"
            raise
        self.socket_error = None
        return _BufferedSocket(sock)

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        for n in range(READ_BURST):
            if self._sock is None:
                return mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == mqtt.MQTTErrorCode.MQTT_ERR_AGAIN:
                if n and COALESCE_S:
                    # Traffic is flowing: let a few more packets arrive before the next
                    # wake-up instead of paying select + recv for each one.
                    time.sleep(COALESCE_S)
                break
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS


def delivered(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker acknowledged a QoS 1 publish.

    paho 2.2.0's ``MQTTMessageInfo.is_published()`` raises for a message published while
    disconnected: its ``rc`` stays NO_CONN (or CONN_LOST for one in flight at a connection loss)
    even after paho re-sends it on reconnect and gets the PUBACK. So read the flag paho sets on
    acknowledgement, under the lock it sets it with."""
    condition = getattr(info, "_condition", None)
    if condition is None:
        return bool(info.is_published())
    with condition:
        return bool(getattr(info, "_published", False))


def _kind_of(topic: str) -> str:
    return topic.split("/", 1)[0]


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
        deadletter_path: Path | None = None,
        accept: Callable[[str], bool] | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        keepalive: int = 30,
        validate_on_publish: bool = True,
    ) -> None:
        self.url = url
        self.address = parse_broker_url(url)
        self.client_id = client_id
        self.service_name = service_name
        self.counters = Counters()
        self.deadletters = DeadLetterLog(
            deadletter_path or var_dir() / "deadletter" / f"{service_name}.jsonl", service_name
        )
        self._accept = accept
        self._on_event = on_event
        self._validate_on_publish = validate_on_publish
        self._subs: dict[str, tuple[int, list[Handler]]] = {}
        self._subs_lock = threading.Lock()
        self._routes: dict[str, list[Handler]] = {}
        self._inbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._pending = 0
        self._pending_cv = threading.Condition()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._generation = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._sub_mids: set[int] = set()
        self._worker: threading.Thread | None = None
        self._unacked: list[mqtt.MQTTMessageInfo] = []
        self._unacked_lock = threading.Lock()
        self._last_connect_error: str | None = None
        self._stopping = False

        self._mqtt = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if self.address.username is not None:
            self._mqtt.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            tls = tls or TlsOptions()
            self._mqtt.tls_set(
                ca_certs=tls.ca_file,
                certfile=tls.cert_file,
                keyfile=tls.key_file,
                cert_reqs=ssl.CERT_NONE if tls.insecure else ssl.CERT_REQUIRED,
            )
            self._mqtt.tls_insecure_set(tls.insecure)
        self._mqtt.reconnect_delay_set(min_delay=0.25, max_delay=10)  # type: ignore[arg-type]
        self._mqtt.max_inflight_messages_set(100)
        self._mqtt.max_queued_messages_set(0)
        self._mqtt.on_connect = self._on_connect
        self._mqtt.on_disconnect = self._on_disconnect
        self._mqtt.on_message = self._on_message
        self._mqtt.on_connect_fail = self._on_connect_fail
        self._mqtt.on_subscribe = self._on_subscribe
        self._keepalive = keepalive

    # ---------------------------------------------------------------- lifecycle

    def start(self, wait: float | None = None) -> BusClient:
        """Connect in the background (retrying until the broker is there). With ``wait``,
        block up to that many seconds for the first connection (TimeoutError if none)."""
        if self._worker is None:
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
        self.wait_idle(drain)
        self.flush(drain)
        self._inbox.put(None)
        self._worker.join(timeout=drain)
        self._mqtt.disconnect()
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

    def flush(self, timeout: float) -> bool:
        """Wait until every QoS 1 message published so far is acknowledged by the broker."""
        deadline = time.monotonic() + timeout
        while True:
            with self._unacked_lock:
                self._unacked = [i for i in self._unacked if not delivered(i)]
                if not self._unacked:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    @property
    def queue_depth(self) -> int:
        return self._pending

    # ---------------------------------------------------------------- subscribe / publish

    def subscribe(self, pattern: str, handler: Handler, qos: int | None = None) -> None:
        """Call ``handler(message)`` with each valid message on topics matching ``pattern``.

        The subscription survives reconnects (restored on every connect) and, for QoS 1, the
        persistent session keeps messages for it while the process is down. Default QoS follows
        the topic kind (telemetry 0, the rest 1)."""
        if qos is None:
            qos = QOS_BY_KIND.get(_kind_of(pattern), 1)
        with self._subs_lock:
            old_qos, handlers = self._subs.get(pattern, (qos, []))
            self._subs[pattern] = (max(old_qos, qos), [*handlers, handler])
            self._routes = {}
            if self.connected:
                self._track_subscribe(self._mqtt.subscribe(pattern, qos))

    def _track_subscribe(self, result: tuple[Any, int | None]) -> None:
        """Remember a SUBSCRIBE's mid until its SUBACK (call with ``_subs_lock`` held, which
        ``_on_subscribe`` also takes, so the ack cannot be seen before the mid is recorded)."""
        rc, mid = result
        if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._sub_mids.add(mid)
            self._subscribed.clear()

    def publish(
        self, message: WireModel, qos: int | None = None, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
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
            if qos > 0:
                with self._unacked_lock:
                    self._unacked.append(info)
                    if len(self._unacked) > 1000:
                        self._unacked = [i for i in self._unacked if not delivered(i)]
        return info

    # ---------------------------------------------------------------- paho callbacks
    # (network thread: no blocking, no exceptions)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        try:
            if rc.is_failure:
                self._set_error(f"broker refused the connection: {rc}")
                return
            self._generation += 1
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
        except Exception:  # never raise into paho
            log.exception("%s: on_connect failed", self.service_name)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        try:
            was = self._connected.is_set()
            self._connected.clear()
            self._subscribed.clear()
            if was:
                self.counters.inc("disconnects")
                if not self._stopping:
                    self._emit("bus_disconnected", reason=str(rc))
        except Exception:
            log.exception("%s: on_disconnect failed", self.service_name)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, props: Any
    ) -> None:
        try:
            failed = [str(rc) for rc in reason_codes or () if getattr(rc, "is_failure", False)]
            if failed:
                self._set_error(f"broker refused a subscription: {', '.join(failed)}")
            with self._subs_lock:
                self._sub_mids.discard(mid)
                if not self._sub_mids:
                    self._subscribed.set()
        except Exception:
            log.exception("%s: on_subscribe failed", self.service_name)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        where = f"{self.address.host}:{self.address.port}"
        why = getattr(client, "socket_error", None) or "no answer"
        self._set_error(f"cannot connect to {where}: {why}")

    def _set_error(self, error: str) -> None:
        """Remember a connection error; log it once, not at every retry."""
        if error != self._last_connect_error:
            log.warning("%s: %s", self.service_name, error)
        self._last_connect_error = error

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            with self._pending_cv:
                self._pending += 1
            self._inbox.put(
                (msg._topic, msg.payload, msg.qos, msg.mid, self._generation, time.time())
            )
        except Exception:
            log.exception("%s: on_message failed", self.service_name)

    # ---------------------------------------------------------------- dispatcher thread

    def _dispatch_loop(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            try:
                self._dispatch(*item)
            except Exception:  # the dispatcher itself must never die
                log.exception("%s: dispatch failed", self.service_name)
            finally:
                with self._pending_cv:
                    self._pending -= 1
                    if self._pending == 0:
                        self._pending_cv.notify_all()

    def _dispatch(
        self, topic_b: bytes, payload: bytes, qos: int, mid: int, gen: int, received: float
    ) -> None:
        try:
            self._handle(topic_b, payload, qos, received)
        finally:
            # Acknowledge after handling. A mid from an earlier connection is not ours to ack
            # any more: the broker redelivers that message and the dedup window skips it.
            if qos > 0 and gen == self._generation:
                self._mqtt.ack(mid, qos)

    def _handle(self, topic_b: bytes, payload: bytes, qos: int, received: float) -> None:
        c = self.counters
        try:
            topic = topic_b.decode("utf-8")
        except UnicodeDecodeError:
            c.inc("received")
            self._dead_letter(repr(topic_b), "topic is not UTF-8", payload)
            return
        kind = _kind_of(topic)
        with c._lock:
            c.values["received"] += 1
            c.received_by_kind[kind] += 1
            c.last_message_at = received
        if self._accept is not None:
            # The owner is decided by the topic's asset, before paying for decoding; a payload
            # whose asset disagrees with its topic is invalid, and its owner dead-letters it.
            asset = topic.partition("/")[2]
            if asset and "/" not in asset and not self._accept(asset):
                c.inc("not_mine")
                return
        try:
            message = fast_decode(topic, payload)
        except WireError as exc:
            self._dead_letter(topic, exc.reason, payload)
            return
        if qos > 0:
            # Only valid messages: they carry unique ids and a publish time, so identical bytes
            # mean the same message delivered again. Junk is dead-lettered every time it comes.
            key = hashlib.blake2b(topic_b + b"\0" + payload, digest_size=16).digest()
            if key in self._seen:
                c.inc("duplicates")
                return
            self._seen[key] = None
            if len(self._seen) > DEDUP_WINDOW:
                self._seen.popitem(last=False)
        for handler in self._handlers_for(topic):
            try:
                handler(message)
            except Exception as exc:
                c.inc("handler_errors")
                name = getattr(handler, "__qualname__", repr(handler))
                reason = f"handler {name} raised {type(exc).__name__}: {exc}"
                log.exception("%s: %s", self.service_name, reason)
                self._dead_letter(topic, reason, payload)
        c.inc("handled")

    def _handlers_for(self, topic: str) -> list[Handler]:
        routes = self._routes
        found = routes.get(topic)
        if found is None:
            with self._subs_lock:
                subs = list(self._subs.items())
            found = [
                h for pattern, (_, hs) in subs if mqtt.topic_matches_sub(pattern, topic) for h in hs
            ]
            if len(routes) > 10_000:  # junk topics must not grow it without bound
                routes.clear()
            routes[topic] = found
        return found

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


def stamped(message: M) -> M:
    """The message with ``wall_time`` set to now if it has that field and it is unset (stamp
    before publishing when you also log the message, so both carry the same time)."""
    if "wall_time" in type(message).model_fields and message.wall_time is None:  # type: ignore[attr-defined]
        return message.model_copy(update={"wall_time": time.time()})
    return message


def fast_decode(topic: str, payload: bytes) -> PlantMessage:
    """``schemas.decode`` with one parse instead of two on the happy path (the monitor's
    budget is a few tens of microseconds per message); on any failure the canonical decoder
    produces the reason, so accepted and rejected sets are the same."""
    kind, _, asset = topic.partition("/")
    model = TOPIC_MODELS.get(kind)
    if model is None or not asset or "/" in asset or len(payload) > MAX_PAYLOAD_BYTES:
        return decode(topic, payload)
    try:
        msg = model.model_validate_json(payload)
    except ValidationError:
        return decode(topic, payload)
    if msg.asset != asset:  # type: ignore[attr-defined]
        return decode(topic, payload)
    return msg  # type: ignore[return-value]
