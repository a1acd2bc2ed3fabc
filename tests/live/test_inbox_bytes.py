"""The bus client's inbox is bounded by what it holds, not only by how many messages: a service
that falls behind keeps at most ``INBOX_LIMIT_BYTES`` of QoS 0 traffic, however large each
message is, and never drops a QoS 1 message (acknowledged only once handled)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from engine.bus.client import INBOX_ITEM_BYTES, INBOX_LIMIT_BYTES, OVERSIZE_KEPT, BusClient
from engine.schemas import MAX_PAYLOAD_BYTES, AlertEvent, Telemetry, topic_for
from tests.live.test_bus import alert, raw_client

JUNK = b"x" * 250_000
"""Junk of the soak's kind (300 KB there): 100 of them are 25 MB, far under the 100,000-message
bound and over the byte bound."""


def stuck_on_telemetry(
    sub: BusClient, wait_for: Callable[..., None]
) -> tuple[threading.Event, list[int], list[str]]:
    """Subscribe ``sub`` with a telemetry handler that blocks until released (its dispatcher
    stuck) and an alert handler that keeps the ids: (release, seqs handled, alert ids)."""
    release = threading.Event()
    seen: list[int] = []
    alerts: list[str] = []

    def stuck(t: Telemetry) -> None:
        release.wait(60)
        seen.append(t.seq)

    sub.subscribe("telemetry/#", stuck)
    sub.subscribe("alerts/+", lambda a: alerts.append(a.alert_id))
    wait_for(lambda: sub.subscribed, what="subscribed")
    return release, seen, alerts


def test_a_stuck_service_holds_a_bounded_number_of_bytes_and_every_alert(
    broker, bus_client, wait_for
):
    sub = bus_client(broker.url, "byte-inbox", persistent=False)
    release, seen, alerts = stuck_on_telemetry(sub, wait_for)
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


OVERSIZE = b"z" * (MAX_PAYLOAD_BYTES + 40_000)
"""The soak's 300 KB junk: past the size limit, so refused whatever it says."""


def test_oversize_junk_is_refused_on_arrival_and_holds_no_inbox_room(broker, wait_for, tmp_path):
    """Junk past ``MAX_PAYLOAD_BYTES`` waits cut to ``OVERSIZE_KEPT`` bytes while the
    dispatcher is stuck: 60 of the soak's kind (18 MB, past ``INBOX_LIMIT_BYTES`` whole) take
    little room under the byte bound, so no telemetry is dropped for them; each is still
    dead-lettered in its turn, and a QoS 1 one acknowledged in order (a new session with the
    same id gets nothing again)."""

    def client() -> BusClient:
        return BusClient(broker.url, "test-oversize", "oversize", var=tmp_path).start(wait=10)

    sub = client()
    try:
        release, seen, alerts = stuck_on_telemetry(sub, wait_for)
        raw = raw_client(broker.url)
        sample = lambda n: Telemetry(  # noqa: E731
            msg_id=f"over-{n}", asset="over01", seq=n, ts=float(n), signals={"flow": 1.0}
        )
        raw.publish("telemetry/over01", sample(0).to_bytes(), qos=0)
        wait_for(lambda: sub.counters.snapshot()["samples"] == 1, what="the dispatcher stuck")
        for _ in range(60):  # 18 MB: past INBOX_LIMIT_BYTES if it were queued
            raw.publish("telemetry/over01", OVERSIZE, qos=0)
        sent = [alert(i, asset="over01") for i in range(3)]
        raw.publish(topic_for(sent[0]), sent[0].to_bytes(), qos=1)
        raw.publish("alerts/over01", OVERSIZE, qos=1)
        for a in sent[1:]:
            raw.publish(topic_for(a), a.to_bytes(), qos=1)
        raw.publish("telemetry/over01", sample(1).to_bytes(), qos=0)
        letters = lambda: sub.counters.snapshot()["dead_letters"]  # noqa: E731
        wait_for(lambda: sub.queue_depth == 66, what="everything queued")
        assert not release.is_set() and seen == [] and letters() == 0  # the dispatcher stuck
        assert sub.counters.snapshot()["inbox_dropped"] == 0
        each = OVERSIZE_KEPT + len("telemetry/over01") + INBOX_ITEM_BYTES
        assert sub.queue_bytes < 61 * each + 64 * 1024  # the junk cut, six small messages
        release.set()
        wait_for(lambda: len(alerts) == 3 and seen == [0, 1], what="the rest handled")
        assert sub.wait_idle(10) and sub.queue_bytes == 0
        letters_kept = [json.loads(x) for x in sub.deadletters.path.read_text().splitlines()]
        assert len(letters_kept) == 61
        assert all(x["reason"].startswith("oversize payload: 302") for x in letters_kept)
        assert all(x["payload"] == "z" * OVERSIZE_KEPT for x in letters_kept)
        assert alerts == [a.alert_id for a in sent] and letters() == 61  # not refused twice
        raw.loop_stop()
        raw.disconnect()
    finally:
        sub.stop(drain=1)
    again = client()  # the same persistent session: the QoS 1 junk was acknowledged
    try:
        probe = alert(9, asset="over01")
        again.subscribe("alerts/+", lambda a: alerts.append(a.alert_id))
        wait_for(lambda: again.subscribed, what="subscribed again")
        raw = raw_client(broker.url)
        raw.publish(topic_for(probe), probe.to_bytes(), qos=1)
        wait_for(lambda: alerts[-1:] == [probe.alert_id], what="the probe")
        assert again.counters.snapshot()["dead_letters"] == 0 and alerts.count("a0") == 1
        raw.loop_stop()
        raw.disconnect()
    finally:
        again.stop(drain=1)
