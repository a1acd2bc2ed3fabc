"""Every use of paho-mqtt's private internals, in one place, checked against the pinned version.

Why each one exists (public API first wherever paho has one):

- ``_create_socket`` + ``loop_read`` + ``_packet_read`` + ``_loop_rc_handle``: paho 2.2 reads
  each packet with three or more ``recv`` calls (command byte, length bytes, body) and one
  ``select`` per packet, and its public ``loop_read(max_packets)`` ignores ``max_packets``. At
  thousands of messages per second those syscalls, not our code, are the ceiling. We serve the
  small reads from one large ``recv`` and read up to ``READ_BURST`` packets per pass.
- ``MQTTMessageInfo._condition`` / ``_published``: the public ``is_published()`` raises for a
  message published while disconnected even after paho re-sent it and got the PUBACK (its
  ``rc`` stays NO_CONN), so "was this QoS 1 message acknowledged?" reads the flag paho sets.
- ``MQTTMessage._topic``: the public ``topic`` property decodes UTF-8 and raises on anything
  else; the raw bytes are read only then, to dead-letter such a message with its topic.
- ``Client._out_messages``: ``on_publish`` gets only a mid, for QoS 0 sends as for QoS 1
  PUBACKs. The bus remembers which connection each PUBACK came on; recording every QoS 0 send
  too filled that table with tens of thousands of entries nobody reads (memory that climbs for
  the first hour of any publisher). paho holds a QoS 1 message there while ``on_publish``
  runs, and never a QoS 0 one.
- ``Client._on_message_filtered`` / ``MQTTMatcher._root``: paho matches every message received
  against the ``message_callback_add`` filters with a recursive closure, a reference cycle left
  for the cyclic collector per message, even with no filter (we add none). The services run
  that collector rarely (``engine.services.base.tune_gc``), so the garbage of thousands of
  messages piled up between collections: megabytes read as growth in the soak. With no filter
  there is nothing to match and no closure is made.

``check()`` runs at import: a paho whose internals moved fails loudly at start, naming what is
missing, instead of misbehaving later. ``tests/live/test_paho_compat.py`` pins the version and
exercises every hook against a real broker, so an upgrade that breaks one fails there first.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.matcher import MQTTMatcher

log = logging.getLogger("controlroom.bus")

PINNED_VERSION = "2.2.0"
"""The paho-mqtt these hooks were written and tested against (pyproject pins it)."""
PAHO_VERSION = importlib.metadata.version("paho-mqtt")

READ_CHUNK = 256 * 1024
READ_BURST = 256
COALESCE_S = 0.0005


class PahoCompatError(RuntimeError):
    """The installed paho-mqtt lacks an internal this module relies on."""


def missing_internals() -> list[str]:
    """The private attributes we use that this paho does not have (empty when all are there)."""
    missing = [
        f"Client.{name}"
        for name in ("_create_socket", "_packet_read", "_loop_rc_handle", "loop_read")
        if not callable(getattr(mqtt.Client, name, None))
    ]
    info = mqtt.MQTTMessageInfo(0)
    missing += [
        f"MQTTMessageInfo.{name}"
        for name in ("_condition", "_published")
        if not hasattr(info, name)
    ]
    if not hasattr(mqtt.MQTTMessage(0, b"t"), "_topic"):
        missing.append("MQTTMessage._topic")
    root = getattr(MQTTMatcher(), "_root", None)  # type: ignore[no-untyped-call]  # paho: untyped
    if not hasattr(root, "_children") or not hasattr(root, "_content"):
        missing.append("MQTTMatcher._root")
    return missing


def check() -> None:
    """Fail loudly if the internals are gone; warn once if paho is not the pinned version."""
    missing = missing_internals()
    if missing:
        raise PahoCompatError(
            f"paho-mqtt {PAHO_VERSION} lacks {', '.join(missing)}, which "
            f"engine/bus/paho_compat.py uses (written for {PINNED_VERSION}): "
            f"pin paho-mqtt=={PINNED_VERSION} or port the hooks"
        )
    if PAHO_VERSION != PINNED_VERSION:
        log.warning(
            "paho-mqtt %s is not the pinned %s: engine/bus/paho_compat.py relies on its internals",
            PAHO_VERSION,
            PINNED_VERSION,
        )


class BufferedSocket:
    """A socket whose small reads are served from one large ``recv``; ``pending()`` reports the
    buffered bytes, which paho already consults (for TLS) to skip waiting in ``select``."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        if self._pos >= len(self._buf):
            data: bytes = self._sock.recv(max(n, READ_CHUNK))
            if len(data) <= n:
                return data
            self._buf, self._pos = data, 0
        chunk = self._buf[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buf) - self._pos + int(inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class FilterMatcher(MQTTMatcher):
    """paho's matcher of ``message_callback_add`` filters, which matches nothing without
    building its recursive closure (a reference cycle per message) when no filter is added."""

    def iter_match(self, topic: str) -> Any:
        if not self._root._children and self._root._content is None:
            return iter(())
        return super().iter_match(topic)  # type: ignore[no-untyped-call]  # paho: untyped


class FastClient(mqtt.Client):
    """paho's client with buffered reads and up to ``READ_BURST`` packets per loop pass, and
    no garbage per message received (``FilterMatcher``)."""

    socket_error: str | None = None
    """Why the last socket could not be opened (refused, TLS verification, DNS)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(getattr(self, "_on_message_filtered", None), MQTTMatcher):
            raise PahoCompatError(
                f"paho-mqtt {PAHO_VERSION} has no Client._on_message_filtered matcher, which "
                f"engine/bus/paho_compat.py replaces (written for {PINNED_VERSION})"
            )
        self._on_message_filtered = FilterMatcher()  # type: ignore[no-untyped-call]  # paho base

    def _create_socket(self) -> Any:
        try:
            sock = super()._create_socket()
        except OSError as exc:
            self.socket_error = f"{type(exc).__name__}: {exc}"
            raise
        self.socket_error = None
        return BufferedSocket(sock)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        for n in range(READ_BURST):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                if n and COALESCE_S:
                    # Traffic is flowing: let a few more packets arrive before the next
                    # wake-up instead of paying select + recv for each one.
                    time.sleep(COALESCE_S)
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def buffered(self) -> bool:
        """Whether the open connection reads through ``BufferedSocket`` (for the compat test)."""
        return isinstance(self._sock, BufferedSocket)


def delivered(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker acknowledged a QoS 1 publish (see the module docstring)."""
    condition = getattr(info, "_condition", None)
    if condition is None:
        return bool(info.is_published())
    with condition:
        return bool(getattr(info, "_published", False))


def published_qos(client: mqtt.Client, mid: int) -> int:
    """The QoS of the message ``on_publish`` is reporting. paho keeps a QoS 1 message in
    ``_out_messages`` until after the callback and never puts a QoS 0 one there; without the
    table (another paho) say 1, so the caller keeps the record, the safe side."""
    messages = getattr(client, "_out_messages", None)
    if messages is None:
        return 1
    message = messages.get(mid)
    return 0 if message is None else int(message.qos)


def message_topic(msg: mqtt.MQTTMessage) -> str | bytes:
    """The topic as text, or its raw bytes when they are not UTF-8 (to dead-letter it)."""
    try:
        return msg.topic
    except UnicodeDecodeError:
        return bytes(msg._topic)


check()
