"""paho-mqtt internals we rely on (engine/bus/paho_compat.py): an upgrade that moves one fails
here, loudly, before it misbehaves in a service."""

from __future__ import annotations

import gc
import os
import re
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from engine.bus import paho_compat
from engine.bus.client import BusClient, delivered
from engine.paths import ROOT, var_dir
from engine.schemas import AlertEvent


def test_paho_is_the_pinned_version_with_every_internal_we_use():
    pin = re.search(r'"paho-mqtt==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pin and pin.group(1) == paho_compat.PINNED_VERSION == paho_compat.PAHO_VERSION
    assert paho_compat.missing_internals() == []


def test_a_missing_internal_fails_loudly(monkeypatch):
    monkeypatch.delattr(mqtt.Client, "_packet_read")
    try:
        paho_compat.check()
    except paho_compat.PahoCompatError as exc:
        assert "Client._packet_read" in str(exc) and paho_compat.PINNED_VERSION in str(exc)
    else:
        raise AssertionError("check() accepted a paho without _packet_read")


def test_raw_topic_bytes_when_not_utf8():
    msg = mqtt.MQTTMessage(0, b"alerts/\xff")
    assert paho_compat.message_topic(msg) == b"alerts/\xff"
    assert paho_compat.message_topic(mqtt.MQTTMessage(0, b"alerts/p1")) == "alerts/p1"


def _alert(alert_id: str, n: int) -> AlertEvent:
    return AlertEvent(alert_id=alert_id, asset="pump01", ts=n, onset_ts=n, severity="low",
                      score=1.0, signals=["flow"], detector="t")  # fmt: skip


def _alerts_pair(broker: Any, name: str) -> tuple[BusClient, BusClient, list[str]]:
    """A started subscriber to ``alerts/+`` recording alert ids, and a started publisher."""
    got: list[str] = []
    sub = BusClient(broker.url, f"{name}-{uuid.uuid4().hex[:6]}", name, var=var_dir(os.environ))
    sub.subscribe("alerts/+", lambda a: got.append(a.alert_id))
    sub.start(wait=10)
    pub = BusClient(
        broker.url, f"{name}p-{uuid.uuid4().hex[:6]}", f"{name}p", var=var_dir(os.environ)
    ).start(wait=10)
    return sub, pub, got


def test_buffered_reads_bursts_and_acks_of_messages_sent_while_disconnected(make_broker, wait_for):
    b = make_broker()
    sub, pub, got = _alerts_pair(b, "compat")
    assert sub._mqtt.buffered()

    def alert(n: int) -> AlertEvent:
        return _alert(f"a{n}", n)

    wait_for(lambda: pub.publish(alert(0)) and got, what="probe")
    for n in range(1, 2001):  # a burst: many packets per read
        pub.publish(alert(n))
    wait_for(lambda: "a2000" in got, timeout=30, what="burst delivered")
    assert [x for x in got if x != "a0"] == [f"a{n}" for n in range(1, 2001)]

    b.stop()
    wait_for(lambda: not pub.connected, what="publisher notices the broker is gone")
    publication = pub.publish(alert(9999))  # queued by paho while disconnected
    assert not paho_compat.delivered(publication.info) and not delivered(publication)
    b.start()
    wait_for(
        lambda: paho_compat.delivered(publication.info), timeout=20, what="PUBACK after reconnect"
    )
    wait_for(lambda: delivered(publication), what="durable: the round trip after the PUBACK")
    sub.stop()
    pub.stop()


def test_only_qos1_pubacks_are_remembered_with_their_connection(make_broker, wait_for):
    """A publisher of QoS 0 telemetry must not fill the PUBACK table (it grew for an hour)."""
    b = make_broker()
    pub = BusClient(
        b.url, f"compatq-{uuid.uuid4().hex[:6]}", "compatq", var=var_dir(os.environ)
    ).start(wait=10)
    before = len(pub._puback_gens)
    for _ in range(300):
        pub._mqtt.publish("compat/qos0", b"x", qos=0)
    acked = pub._mqtt.publish("compat/qos1", b"x", qos=1)
    wait_for(lambda: paho_compat.delivered(acked), what="the QoS 1 PUBACK")
    assert acked.mid in pub._puback_gens
    assert len(pub._puback_gens) == before + 1
    pub.stop()


def test_a_received_message_leaves_no_garbage_and_filters_still_match(make_broker, wait_for):
    """paho's filter matching made a reference cycle per message received; the services run
    the cyclic collector rarely, so it piled up by the megabyte (seen in the soak)."""
    sub, pub, got = _alerts_pair(make_broker(), "compatg")

    def alert(n: int) -> AlertEvent:
        return _alert(f"g{n}", n)

    wait_for(lambda: pub.publish(alert(0)) and got, what="probe")
    gc.collect()
    gc.disable()
    try:
        for n in range(1, 301):
            pub.publish(alert(n))
        wait_for(lambda: "g300" in got, timeout=30, what="300 alerts received")
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable < 30, f"{unreachable} objects of garbage for 300 messages"
    # a filter added through paho's public API is still matched (and only its topics)
    filtered: list[str] = []
    sub._mqtt.message_callback_add("alerts/pump02", lambda c, u, m: filtered.append(m.topic))
    pub.publish(alert(301).model_copy(update={"asset": "pump02"}))
    pub.publish(alert(302))
    wait_for(lambda: filtered and "g302" in got, what="the filtered and the plain message")
    assert filtered == ["alerts/pump02"] and "g301" not in got
    sub.stop()
    pub.stop()
