"""The bus client's inbox is bounded by what it holds, not only by how many messages: a service
that falls behind keeps at most ``INBOX_LIMIT_BYTES`` of QoS 0 traffic, however large each
message is, and never drops a QoS 1 message (acknowledged only once handled)."""

from __future__ import annotations

import threading

from engine.bus.client import INBOX_ITEM_BYTES, INBOX_LIMIT_BYTES
from engine.schemas import AlertEvent, Telemetry, topic_for
from tests.live.test_bus import alert, raw_client

JUNK = b"x" * 250_000
"""Junk of the soak's kind (300 KB there): 100 of them are 25 MB, far under the 100,000-message
bound and over the byte bound."""


def test_a_stuck_service_holds_a_bounded_number_of_bytes_and_every_alert(
    broker, bus_client, wait_for
):
    release = threading.Event()
    seen: list[int] = []
    alerts: list[str] = []

    def stuck(t: Telemetry) -> None:
        release.wait(60)
        seen.append(t.seq)

    sub = bus_client(broker.url, "byte-inbox", persistent=False)
    sub.subscribe("telemetry/#", stuck)
    sub.subscribe("alerts/+", lambda a: alerts.append(a.alert_id))
    wait_for(lambda: sub.subscribed, what="subscribed")
    raw = raw_client(broker.url)
    first = Telemetry(msg_id="bytes-0", asset="bytes01", seq=0, ts=0.0, signals={"flow": 1.0})
    raw.publish(topic_for(first), first.to_bytes(), qos=0)
    wait_for(lambda: sub.counters.snapshot()["samples"] == 1, what="the dispatcher stuck")
    for _ in range(100):
        raw.publish("telemetry/bytes01", JUNK, qos=0)
    sent: list[AlertEvent] = [alert(i, asset="bytes01") for i in range(30)]
    for a in sent:
        raw.publish(topic_for(a), a.to_bytes(), qos=1)
    dropped = lambda: sub.counters.snapshot()["inbox_dropped"]  # noqa: E731
    wait_for(lambda: sub.queue_depth - 1 + dropped() == 130, what="every message queued or dropped")
    held = sub.queue_bytes
    kept = 100 - dropped()
    assert held <= INBOX_LIMIT_BYTES + 30 * 1024  # QoS 1 (the alerts) may pass the bound
    each = len(JUNK) + len("telemetry/bytes01") + INBOX_ITEM_BYTES
    assert kept == INBOX_LIMIT_BYTES // each and dropped() == 100 - kept
    release.set()
    wait_for(lambda: len(alerts) == 30, what="every alert handled")
    assert sub.wait_idle(10) and sub.queue_bytes == 0 and sub.queue_depth == 0
    assert alerts == [a.alert_id for a in sent] and seen == [0]
    assert sub.counters.snapshot()["dead_letters"] == kept  # the junk kept is still rejected
    raw.loop_stop()
    raw.disconnect()


def test_a_service_takes_its_inbox_bound_from_the_environment(tmp_path):
    """``CONTROLROOM_INBOX_MAX_BYTES`` reaches the service's bus client: what is received while
    its dispatcher is not running (not started here) is kept up to that bound, then dropped."""
    import paho.mqtt.client as mqtt

    from engine.services.registry import build_service
    from engine.services.settings import Settings

    environ = {"CONTROLROOM_VAR": str(tmp_path), "CONTROLROOM_INBOX_MAX_BYTES": "4000"}
    svc = build_service(Settings.from_env("monitor", environ))
    for _ in range(20):
        msg = mqtt.MQTTMessage(0, b"telemetry/bytes01")
        # 1,000 bytes with its topic (17) and INBOX_ITEM_BYTES
        msg.payload, msg.qos = b"y" * (1000 - 17 - INBOX_ITEM_BYTES), 0
        svc.bus._on_message(svc.bus._mqtt, None, msg)
    assert svc.bus.queue_depth == 4 and svc.bus.queue_bytes == 4000
    assert svc.bus.counters.snapshot()["inbox_dropped"] == 16
    assert svc.health().queue_bytes == 4000


def test_a_long_topic_counts_against_the_byte_bound(broker, bus_client, wait_for):
    """A queued message holds its topic as well as its payload, and MQTT allows a topic of
    64 KiB: a ``+`` level of the telemetry patterns takes it. Only the payload was counted, so
    messages with 60 KB topics and empty payloads each counted ``INBOX_ITEM_BYTES``: a stuck
    service kept 100 of them (6 MB) against a 100 KB bound, and with the default bounds
    65,536 of them (~4 GB) against 16 MiB. Any publisher of telemetry can (the simulator's
    identity may publish ``telemetry/#``)."""
    release = threading.Event()
    bound = 100_000
    sub = bus_client(broker.url, "topic-inbox", persistent=False, inbox_limit_bytes=bound)
    sub.subscribe("telemetry/#", lambda t: release.wait(60))
    wait_for(lambda: sub.subscribed, what="subscribed")
    raw = raw_client(broker.url)
    first = Telemetry(msg_id="topic-0", asset="topic01", seq=0, ts=0.0, signals={"flow": 1.0})
    raw.publish(topic_for(first), first.to_bytes(), qos=0)
    wait_for(lambda: sub.counters.snapshot()["samples"] == 1, what="the dispatcher stuck")
    long_topic = "telemetry/" + "p" * 60_000
    for _ in range(100):
        raw.publish(long_topic, b"", qos=0)
    dropped = lambda: sub.counters.snapshot()["inbox_dropped"]  # noqa: E731
    wait_for(lambda: sub.queue_depth - 1 + dropped() == 100, what="every message queued or dropped")
    held = sum(len(long_topic) for _ in range(sub.queue_depth - 1))
    try:
        assert held <= bound, f"{sub.queue_depth - 1} long topics held ({held} B), bound {bound}"
        assert sub.queue_bytes >= held
    finally:
        release.set()
        raw.loop_stop()
        raw.disconnect()
    assert sub.wait_idle(10) and sub.queue_bytes == 0 and sub.queue_depth == 0
