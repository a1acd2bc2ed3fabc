"""The MQTT adapter against real brokers: validation both ways, dead letters, persistent
sessions, reconnects, sharding."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from engine.bus.acl import credentials_path
from engine.bus.broker import (
    AmqttBroker,
    BrokerError,
    ensure_broker,
    parse_broker_url,
    port_is_free,
    probe_mqtt,
    redact_url,
)
from engine.bus.client import (
    DEDUP_WINDOW,
    OUT_LIMIT,
    UNACKED_PRUNE_MIN,
    BusClient,
    RetryLater,
    RetryPolicy,
)
from engine.paths import var_dir
from engine.schemas import AlertEvent, Telemetry, WireError, topic_for
from engine.services.settings import Shard


def alert(n: int, asset: str = "pump01") -> AlertEvent:
    return AlertEvent(
        alert_id=f"a{n}",
        asset=asset,
        ts=float(n),
        onset_ts=float(n),
        severity="high",
        score=4.2,
        signals=["vibration"],
        detector="robust_z",
    )


def raw_client(url: str) -> mqtt.Client:
    addr = parse_broker_url(url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:8]}")
    c.connect(addr.host, addr.port)
    c.loop_start()
    return c


def subscribed(
    url: str,
    client_id: str,
    service_name: str,
    handler: Callable[[AlertEvent], None],
    **options: Any,
) -> BusClient:
    """A started client whose handler gets every alert (what most tests here subscribe to)."""
    c = BusClient(url, client_id, service_name, **options, var=var_dir(os.environ))
    c.subscribe("alerts/+", handler)
    return c.start(wait=10)


@pytest.fixture(params=["mosquitto", "amqtt"])
def any_broker(request, broker, amqtt_broker):
    if request.param == "mosquitto" and broker.kind != "mosquitto":
        pytest.skip("mosquitto is not installed")
    return broker if request.param == "mosquitto" else amqtt_broker


def test_roundtrip_stamps_wall_time_and_preserves_order(any_broker, bus_client, wait_for):
    got: list[AlertEvent] = []
    sub = bus_client(any_broker.url, "sub")
    sub.subscribe("alerts/+", got.append)
    wait_for(lambda: sub.connected, what="subscriber connected")
    pub = bus_client(any_broker.url, "pub")
    # subscription is acknowledged asynchronously: publish until the first one arrives
    wait_for(lambda: pub.publish(alert(0)) and got, what="first alert")
    for i in range(1, 51):
        pub.publish(alert(i))
    wait_for(lambda: len(got) >= 51 and got[-1].alert_id == "a50", what="50 alerts")
    ids = [int(a.alert_id[1:]) for a in got if a.alert_id != "a0"]
    assert ids == list(range(1, 51))
    assert all(a.wall_time is not None for a in got)


def test_invalid_input_is_dead_lettered_and_counted(broker, bus_client, wait_for):
    got: list[object] = []
    sub = bus_client(broker.url, "dl")
    sub.subscribe("#", got.append)
    raw = raw_client(broker.url)
    wait_for(lambda: raw.publish("alerts/pump01", alert(0).to_bytes(), qos=1) and got, what="probe")
    good = alert(1).to_bytes()
    nan = json.loads(good)
    nan["score"] = "NaN"
    bad = {
        "alerts/pump01": b"{not json",
        "diagnosis/pump01": b'{"diagnosis_id": "x"}',
        "tickets/pump01": b"[1, 2]",
        "feedback/pump01": b"\xff\xfe",
        "telemetry/pump01": b'{"msg_id":"m","asset":"pump01","seq":0,"ts":0,"signals":{"x":NaN}}',
        "alerts/pump02": good,  # asset in payload disagrees with topic
        "alerts/pump03": b"x" * 300_000,  # oversize
        "nonsense/pump01": good,  # unknown topic
    }
    for topic, payload in bad.items():
        raw.publish(topic, payload, qos=1).wait_for_publish(5)
    raw.publish("alerts/pump01", good, qos=1).wait_for_publish(5)
    wait_for(lambda: any(getattr(m, "alert_id", "") == "a1" for m in got), what="good alert")
    assert sub.wait_idle(5)
    assert sub.counters.snapshot()["dead_letters"] == len(bad)
    lines = [
        json.loads(x)
        for x in (var_dir(os.environ) / "deadletter" / "dl.jsonl").read_text().splitlines()
    ]
    assert {x["topic"] for x in lines} == set(bad)
    reasons = {x["topic"]: x["reason"] for x in lines}
    assert "bad JSON" in reasons["alerts/pump01"]
    assert "oversize" in reasons["alerts/pump03"]
    assert "does not match topic" in reasons["alerts/pump02"]
    assert "UTF-8" in reasons["feedback/pump01"]
    assert "signals.x" in reasons["telemetry/pump01"]
    assert "unknown topic" in reasons["nonsense/pump01"]
    raw.loop_stop()


def test_handler_error_is_dead_lettered_and_next_message_flows(broker, bus_client, wait_for):
    seen: list[str] = []

    def handler(a: AlertEvent) -> None:
        seen.append(a.alert_id)
        if a.alert_id == "a1":
            raise RuntimeError("boom")

    sub = bus_client(broker.url, "boom")
    sub.subscribe("alerts/+", handler)
    pub = bus_client(broker.url, "boompub")
    wait_for(lambda: pub.publish(alert(0)) and seen, what="probe")
    pub.publish(alert(1))
    pub.publish(alert(2))
    wait_for(lambda: "a2" in seen, what="message after the failing one")
    c = sub.counters.snapshot()
    assert c["handler_errors"] == 1 and c["dead_letters"] == 1


def test_publish_rejects_invalid_message(broker, bus_client):
    pub = bus_client(broker.url, "badpub")
    bogus = Telemetry.model_construct(
        msg_id="m",
        asset="pump01",
        seq=0,
        ts=0.0,
        signals={"flow": float("nan")},
        scenario=None,
        truth=None,
        wall_time=None,
    )
    with pytest.raises(WireError, match=r"signals\.flow"):
        pub.publish(bogus)
    assert pub.counters.snapshot()["rejected_on_publish"] == 1
    assert (
        "rejected on publish" in (var_dir(os.environ) / "deadletter" / "badpub.jsonl").read_text()
    )


def _delivered_after_downtime(
    url: str,
    wait_for,
    name: str,
    n: int,
    meanwhile: Callable[[], object] = lambda: None,
    still_connected: Callable[[str], bool] | None = None,
) -> list[str]:
    """A persistent consumer gets the probe a0 and stops; a1..an are published (each one
    acknowledged by the broker), then ``meanwhile()`` runs; the consumer comes back under the
    same client id. Returns what it got after the probe, once an has come.

    ``still_connected(client_id)``: the broker's own view, awaited before publishing where the
    broker loses what it sends to a client that is disconnecting (amqtt)."""
    cid = f"{name}-{uuid.uuid4().hex[:8]}"
    got: list[str] = []
    consumer = subscribed(url, cid, name, lambda a: got.append(a.alert_id))
    pub = BusClient(url, f"p-{cid}", f"{name}-pub", var=var_dir(os.environ)).start(wait=10)
    wait_for(lambda: pub.publish(alert(0)) and got, what="probe")
    consumer.stop()
    if still_connected is not None:
        wait_for(lambda: not still_connected(cid), what="the broker to see the consumer leave")
    for i in range(1, n + 1):
        pub.publish(alert(i))
    assert pub.flush(5)
    meanwhile()
    again = subscribed(url, cid, name, lambda a: got.append(a.alert_id))
    wait_for(lambda: f"a{n}" in got, what=f"the {n} alerts published while it was down")
    again.stop()
    pub.stop(drain=1)
    return [x for x in got if x != "a0"]


def test_persistent_session_delivers_what_was_published_while_down(
    any_broker, make_broker, wait_for
):
    """A consumer that stops (or dies) gets the QoS 1 messages published meanwhile. amqtt drops
    a message it sends to a client it still counts as connected (CI lost a1 that way), so there
    the publishing waits for the broker to see the consumer leave."""
    if any_broker.kind == "amqtt":
        own = make_broker("amqtt")
        assert isinstance(own, AmqttBroker)
        got = _delivered_after_downtime(
            own.url, wait_for, "persist", 5, still_connected=own.client_connected
        )
    else:
        got = _delivered_after_downtime(any_broker.url, wait_for, "persist", 5)
    assert got == [f"a{i}" for i in range(1, 6)]


def test_durable_publications_are_not_kept_with_their_payloads(broker, bus_client, wait_for):
    """``flush`` needs the QoS 1 publications not yet durable; those already durable must not
    stay behind with their payloads (a service publishing kilobyte ticket snapshots grew by
    megabytes until a thousand of them were held)."""
    pub = bus_client(broker.url, "keep")
    for i in range(5 * UNACKED_PRUNE_MIN):
        p = pub.publish(alert(i))
        wait_for(p.durable, timeout=10, what=f"publication {i} durable")
    assert len(pub._unacked) <= UNACKED_PRUNE_MIN
    late = [pub.publish(alert(1000 + i)) for i in range(3 * UNACKED_PRUNE_MIN)]
    assert pub.flush(10) and all(p.durable() for p in late)


def test_reconnects_and_restores_subscriptions_after_broker_restart(make_broker, wait_for):
    b = make_broker()
    got: list[str] = []
    sub = subscribed(b.url, "restart-sub", "rsub", lambda a: got.append(a.alert_id))
    pub = BusClient(b.url, "restart-pub", "rpub", var=var_dir(os.environ)).start(wait=10)
    wait_for(lambda: pub.publish(alert(0)) and got, what="probe")
    b.restart(kill=True)
    wait_for(lambda: sub.counters.snapshot()["connects"] >= 2, timeout=20, what="reconnect")
    wait_for(lambda: pub.connected, timeout=20, what="publisher reconnect")
    wait_for(
        lambda: pub.publish(alert(9)) and "a9" in got, timeout=10, what="delivery after restart"
    )
    sub.stop()
    pub.stop()


def test_shards_split_assets_disjointly_and_stably():
    assets = [f"pump{i:02d}" for i in range(60)]
    shards = [Shard.parse(f"{i}/3") for i in (1, 2, 3)]
    owners = [[s.owns(a) for s in shards] for a in assets]
    assert all(sum(o) == 1 for o in owners)
    assert all(any(o[i] for o in owners) for i in range(3))
    assert Shard.parse("2/3").owns("pump07") == Shard(2, 3).owns("pump07")
    with pytest.raises(ValueError):
        Shard.parse("4/3")


def test_broker_urls_and_redaction():
    a = parse_broker_url("mqtts://op:s3cret@broker.example:8884")
    assert (a.host, a.port, a.tls, a.username, a.password) == (
        "broker.example",
        8884,
        True,
        "op",
        "s3cret",
    )
    assert parse_broker_url("mqtt://h").port == 1883
    assert parse_broker_url("mqtts://h").port == 8883
    assert "s3cret" not in redact_url("mqtt://op:s3cret@h:1") and "op:***@h:1" in redact_url(
        "mqtt://op:s3cret@h:1"
    )
    info, handle = ensure_broker(
        "mqtt://op:s3cret@h:1", credentials_file=credentials_path(os.environ)
    )
    assert info.kind == "external" and "s3cret" not in repr(info) + str(info)
    handle.stop()
    with pytest.raises(BrokerError, match="scheme"):
        parse_broker_url("http://h:1")


def test_embedded_broker_starts_answers_and_frees_its_port():
    from engine.bus.broker import connack_code

    info, handle = ensure_broker("embedded", credentials_file=credentials_path(os.environ))
    assert info.kind in ("mosquitto", "amqtt")
    assert probe_mqtt(info.host, info.port)
    assert connack_code(info.host, info.port) == 5, "anonymous clients are refused"
    handle.stop()
    assert port_is_free(info.port)


def _certs(tmp_path):
    """A throwaway CA and a localhost server certificate (EC keys: fast)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
        "-subj", "/CN=controlroom-test-ca")  # fmt: skip
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    return tmp_path / "ca.crt", tmp_path / "server.crt", tmp_path / "server.key"


def test_mqtts_with_a_ca_file_and_refusal_without(tmp_path, broker, wait_for):
    from engine.bus.broker import MosquittoBroker
    from engine.bus.client import TlsOptions

    if broker.kind != "mosquitto":
        pytest.skip("mosquitto is not installed")
    ca, cert, key = _certs(tmp_path)
    b = MosquittoBroker(workdir=tmp_path / "b", tls=(str(cert), str(key))).start()
    try:
        url = f"mqtts://localhost:{b.port}"
        got: list[AlertEvent] = []
        sub = subscribed(url, "tls-sub", "tls-sub", got.append, tls=TlsOptions(ca_file=str(ca)))
        pub = BusClient(
            url, "tls-pub", "tls-pub", tls=TlsOptions(ca_file=str(ca)), var=var_dir(os.environ)
        ).start(wait=10)
        wait_for(lambda: pub.publish(alert(1)) and got, what="alert over TLS")
        # an unknown CA is refused; --insecure accepts it (test brokers only)
        with pytest.raises(TimeoutError):
            BusClient(url, "tls-bad", "tls-bad", var=var_dir(os.environ)).start(wait=1.5)
        BusClient(
            url, "tls-x", "tls-x", tls=TlsOptions(insecure=True), var=var_dir(os.environ)
        ).start(wait=10).stop()
        sub.stop()
        pub.stop()
    finally:
        b.cleanup()


def test_replicas_split_assets_without_overlap(broker, wait_for):
    seen: dict[int, list[str]] = {1: [], 2: []}
    replicas = []
    for i in (1, 2):
        c = BusClient(broker.url, f"shard{i}-{uuid.uuid4().hex[:6]}", f"shard{i}",
                      accept=Shard(i, 2).owns, var=var_dir(os.environ))  # fmt: skip
        c.subscribe("alerts/+", lambda a, i=i: seen[i].append(a.asset))
        replicas.append(c.start(wait=10))
    pub = BusClient(
        broker.url, f"shardpub-{uuid.uuid4().hex[:6]}", "shardpub", var=var_dir(os.environ)
    ).start(wait=10)
    probes = {
        i: next(f"probe{n}" for n in range(99) if Shard(i, 2).owns(f"probe{n}")) for i in (1, 2)
    }
    for i, probe in probes.items():
        wait_for(
            lambda i=i, probe=probe: pub.publish(alert(0, probe)) and probe in seen[i],
            what=f"replica {i}",
        )
    assets = [f"pump{n:02d}" for n in range(12)]
    for n, asset in enumerate(assets, 1):
        pub.publish(alert(n, asset))
    done = set(assets)
    wait_for(lambda: done <= set(seen[1]) | set(seen[2]), what="all alerts")
    got1, got2 = set(seen[1]) & done, set(seen[2]) & done
    assert not got1 & got2 and got1 and got2
    assert got1 == {a for a in assets if Shard(1, 2).owns(a)}
    assert all(seen[i].count(a) == 1 for i in (1, 2) for a in assets if a in seen[i])
    for c in (*replicas, pub):
        c.stop()


def test_credentials_work_and_never_leak(tmp_path, broker, caplog):
    import logging
    import shutil
    import subprocess

    from engine.bus.broker import MosquittoBroker

    if broker.kind != "mosquitto" or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto / mosquitto_passwd not installed")
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "op", "s3cret!"], check=True)
    b = MosquittoBroker(workdir=tmp_path / "b", password_file=str(pw)).start()
    caplog.set_level(logging.DEBUG)
    try:
        good = BusClient(
            f"mqtt://op:s3cret%21@127.0.0.1:{b.port}", "auth-ok", "auth-ok", var=var_dir(os.environ)
        )
        good.start(wait=10).stop()
        bad = BusClient(
            f"mqtt://op:wrong-pw@127.0.0.1:{b.port}",
            "auth-bad",
            "auth-bad",
            var=var_dir(os.environ),
        )
        with pytest.raises(TimeoutError) as err:
            bad.start(wait=2)
        assert "not authorized" in str(err.value).lower() or "refused" in str(err.value)
        assert "refused" in (bad.last_error or "")
        bad.stop(drain=0.5)
        text = caplog.text + str(err.value) + repr(bad.address)
        assert "wrong-pw" not in text and "s3cret" not in text
    finally:
        b.cleanup()


@pytest.mark.parametrize("kill", [False, True], ids=["SIGTERM", "SIGKILL"])
def test_queued_messages_survive_a_broker_restart(make_broker, wait_for, kill):
    """Messages waiting for an offline consumer are on disk as soon as the broker acknowledged
    them (autosave on every change): a restart keeps them, even after a SIGKILL at once."""
    b = make_broker("mosquitto")
    # the restart does not wait: the last PUBACK has just arrived
    got = _delivered_after_downtime(b.url, wait_for, "offline", 200, lambda: b.restart(kill=kill))
    assert got == [f"a{i}" for i in range(1, 201)]


def _nested(depth: int) -> bytes:
    return b'{"alert_id": ' + b"[" * depth + b"]" * depth + b"}"


def test_deeply_nested_json_is_rejected_at_decode_dead_lettered_and_acked(broker, wait_for):
    """130,000 levels fit in the size limit: Python's json module raised RecursionError, which
    escaped the dead-letter path while the message was still acknowledged."""
    cid = f"deep-{uuid.uuid4().hex[:6]}"
    got: list[str] = []
    sub = subscribed(broker.url, cid, "deep", lambda a: got.append(a.alert_id))
    raw = raw_client(broker.url)
    wait_for(lambda: raw.publish("alerts/pump01", alert(0).to_bytes(), qos=1) and got, what="probe")
    deep = {"shallow-but-too-deep": _nested(40), "past-the-parser": _nested(120_000)}
    assert all(len(p) < 256 * 1024 for p in deep.values())
    for payload in deep.values():
        raw.publish("alerts/pump01", payload, qos=1).wait_for_publish(5)
    raw.publish("alerts/pump01", alert(1).to_bytes(), qos=1).wait_for_publish(5)
    wait_for(lambda: "a1" in got, what="the alert after the deep ones")
    assert sub.wait_idle(5)
    assert sub.counters.snapshot()["dead_letters"] == 2
    reasons = [
        json.loads(x)["reason"]
        for x in (var_dir(os.environ) / "deadletter" / "deep.jsonl").read_text().splitlines()
    ]
    assert "nested 41 levels deep (limit 32)" in reasons[0]
    assert "recursion limit exceeded" in reasons[1]
    sub.stop()
    # acknowledged: the same persistent session gets nothing again
    again = subscribed(broker.url, cid, "deep-again", lambda a: got.append(a.alert_id))
    raw.publish("alerts/pump01", alert(2).to_bytes(), qos=1).wait_for_publish(5)
    wait_for(lambda: "a2" in got, what="a fresh alert")
    assert again.wait_idle(5) and again.counters.snapshot()["dead_letters"] == 0
    again.stop()
    raw.loop_stop()


FAST_RETRY = RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05)
"""Retries in milliseconds; a failing handler is given up on after 4 attempts, a ``RetryLater``
one never."""


class _FailsOnA1(NamedTuple):
    cid: str
    tries: list[str]
    handler: Callable[[AlertEvent], None]
    sub: BusClient
    pub: BusClient


def _fails_on_a1(url: str, wait_for, name: str, fail: Callable[[], Exception]) -> _FailsOnA1:
    """The set-up of the retry tests: a persistent subscriber whose handler records each try
    and raises ``fail()`` on a1 (retried as FAST_RETRY says), and a publisher that has sent
    the probe a0, then a1 and a2."""
    cid = f"{name}-{uuid.uuid4().hex[:6]}"
    tries: list[str] = []

    def handler(a: AlertEvent) -> None:
        tries.append(a.alert_id)
        if a.alert_id == "a1":
            raise fail()

    sub = subscribed(url, cid, name, handler, retry=FAST_RETRY)
    pub = BusClient(url, f"p-{cid}", f"{name}-pub", var=var_dir(os.environ)).start(wait=10)
    wait_for(lambda: pub.publish(alert(0)) and "a0" in tries, what="probe")
    pub.publish(alert(1))
    pub.publish(alert(2))
    return _FailsOnA1(cid, tries, handler, sub, pub)


def test_a_message_whose_effect_is_not_durable_stays_unacked_and_comes_back(broker, wait_for):
    """The store is down: the handler raises RetryLater. The bus retries it in place and never
    acknowledges it; a stop meanwhile leaves it with the broker, which redelivers it. (Mosquitto
    only: amqtt 0.12 forgets a message whose PUBACK has not come within 5 s — docs/live.md.)"""
    t = _fails_on_a1(broker.url, wait_for, "durable", lambda: RetryLater("database is locked"))
    wait_for(lambda: t.tries.count("a1") >= 5, what="a1 retried past the 4 attempts")
    c = t.sub.counters.snapshot()
    assert t.sub.retrying is not None and "database is locked" in t.sub.retrying.error
    assert "a2" not in t.tries, "order is kept: nothing overtakes the message being retried"
    assert c["dead_letters"] == 0 and c["handler_errors"] == 0 and c["handler_failures"] >= 5
    t.sub.stop(drain=1)  # abandons the retry: a1 stays unacked (a2, handled meanwhile, is acked)

    stored: list[str] = []
    again = subscribed(broker.url, t.cid, "durable", lambda a: stored.append(a.alert_id))
    wait_for(lambda: "a1" in stored, what="a1 redelivered")
    t.pub.publish(alert(3))
    wait_for(lambda: "a3" in stored, what="a fresh alert")
    assert stored == ["a1", "a3"], "a1 comes back once; a2 was acknowledged when handled"
    again.stop()
    t.pub.stop()


def test_a_poison_message_is_given_up_after_n_attempts_and_acked(broker, wait_for):
    t = _fails_on_a1(broker.url, wait_for, "poison", lambda: KeyError("no such thing"))
    wait_for(lambda: "a2" in t.tries, what="the message after the poison one")
    assert t.tries.count("a1") == 4
    c = t.sub.counters.snapshot()
    assert (c["handler_failures"], c["handler_errors"], c["dead_letters"]) == (4, 1, 1)
    letter = json.loads((var_dir(os.environ) / "deadletter" / "poison.jsonl").read_text())
    assert "KeyError" in letter["reason"] and "after 4 attempt(s)" in letter["reason"]
    t.sub.stop()
    again = subscribed(broker.url, t.cid, "poison", t.handler)
    t.pub.publish(alert(3))
    wait_for(lambda: "a3" in t.tries, what="a fresh alert")
    assert t.tries.count("a1") == 4, "acknowledged: not redelivered"
    again.stop()
    t.pub.stop()


def test_dead_letter_files_are_capped_and_rotated(tmp_path, broker, wait_for):
    from engine.bus.deadletter import DeadLetterLog

    log = DeadLetterLog(tmp_path / "dl" / "svc.jsonl", "svc", max_bytes=20_000, keep=2)
    for i in range(200):
        log.write("alerts/pump01", f"junk {i}", b"x" * 1000)
    files = log.files()
    assert [p.name for p in files] == ["svc.jsonl", "svc.jsonl.1", "svc.jsonl.2"]
    assert all(p.stat().st_size <= 20_000 for p in files)
    assert log.stats.written == 200 and log.stats.rotations > 5 and log.stats.files_dropped > 3
    newest = json.loads(files[0].read_text().splitlines()[-1])
    assert newest["reason"] == "junk 199"

    # through the bus: a flood of oversize junk costs a bounded amount of disk
    sub = subscribed(
        broker.url,
        f"cap-{uuid.uuid4().hex[:6]}",
        "cap",
        lambda a: None,
        deadletter_max_bytes=50_000,
    )
    raw = raw_client(broker.url)
    sent = [raw.publish("alerts/pump01", b"y" * 300_000, qos=1) for _ in range(40)]
    sent.append(raw.publish("alerts/pump01", b"{}", qos=1))

    def letters() -> int:
        return int(sub.counters.snapshot()["dead_letters"])

    # a stall bound, not a pace: 12 MB through a broker on a loaded machine takes its time
    wait_for(lambda: letters() >= 41, timeout=20, what="41 dead letters",
             progress=lambda: (letters(), sum(m.is_published() for m in sent)))  # fmt: skip
    assert letters() == 41 and sub.deadletters.stats.rotations >= 1
    total = sum(p.stat().st_size for p in sub.deadletters.files())
    assert total <= 50_000 * (sub.deadletters.keep + 1)
    sub.stop()
    raw.loop_stop()


def test_insecure_tls_warns_once_per_process(caplog):
    import logging

    from engine.bus import client as client_module
    from engine.bus.client import TlsOptions

    client_module._insecure_warned.clear()
    caplog.set_level(logging.WARNING, logger="controlroom.bus")
    for n in range(3):
        BusClient(f"mqtts://op:pw@127.0.0.1:{8883 + n}", f"insecure-{n}", "insecure",
                  tls=TlsOptions(insecure=True), var=var_dir(os.environ))  # fmt: skip
    warnings = [r for r in caplog.records if "TLS certificate checks are OFF" in r.getMessage()]
    assert len(warnings) == 1 and "pw" not in warnings[0].getMessage()


def test_a_failing_paho_callback_is_logged_and_never_raised_into_paho(caplog):
    import logging

    c = BusClient("mqtt://127.0.0.1:1", "cb-fail", "cb-fail", var=var_dir(os.environ))
    caplog.set_level(logging.ERROR, logger="controlroom.bus")
    c._on_message(c._mqtt, None, None)  # no message: it fails inside
    c._on_subscribe(c._mqtt, None, 1, 42, None)  # reason codes that are not a list
    failed = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert failed == [("cb-fail: on_message failed", True), ("cb-fail: on_subscribe failed", True)]


def test_a_small_inbox_drops_telemetry_past_its_limit_and_counts_it(broker, bus_client, wait_for):
    """The TUI's bus client keeps a few seconds of telemetry, not the services' 100,000 messages:
    while its dispatcher is stuck, QoS 0 beyond ``inbox_limit`` is dropped and counted, and what
    was kept is still delivered in order once it runs again."""
    release = threading.Event()
    got: list[int] = []

    def slow(t: Telemetry) -> None:
        release.wait(30)
        got.append(t.seq)

    sub = bus_client(broker.url, "small-inbox", persistent=False, inbox_limit=20)
    sub.subscribe("telemetry/#", slow)
    wait_for(lambda: sub.subscribed, what="subscribed")
    raw = raw_client(broker.url)
    for seq in range(200):
        t = Telemetry(msg_id=f"inbox-{seq}", asset="inbox01", seq=seq, ts=float(seq),
                      signals={"flow": 100.0})  # fmt: skip
        raw.publish(topic_for(t), t.to_bytes(), qos=0)
    dropped = lambda: sub.counters.snapshot()["inbox_dropped"]  # noqa: E731
    wait_for(lambda: dropped() >= 180, what="the overflow dropped")
    release.set()
    wait_for(lambda: len(got) + dropped() >= 200, what="every message delivered or dropped")
    assert got == list(range(20)) and dropped() == 180  # the first 20 kept, in order
    raw.loop_stop()
    raw.disconnect()


def test_a_message_delivered_twice_is_handled_once_within_a_bounded_window(broker, wait_for):
    """QoS 1 may deliver a message again (a reconnect before the PUBACK): the same topic and bytes
    within the last ``DEDUP_WINDOW`` valid messages are acknowledged and skipped; the window is a
    bound, so the same bytes long after are handled again."""
    got: list[str] = []
    sub = subscribed(broker.url, f"dedup-{uuid.uuid4().hex[:6]}", "dedup",
                     lambda a: got.append(a.alert_id))  # fmt: skip
    raw = raw_client(broker.url)
    first = alert(0).to_bytes()
    wait_for(lambda: raw.publish("alerts/pump01", first, qos=1) and got, what="probe")
    raw.publish("alerts/pump01", first, qos=1)  # the same bytes again: a redelivery
    raw.publish("alerts/pump01", alert(1).to_bytes(), qos=1)
    wait_for(lambda: "a1" in got, what="the alert after the repeat")
    assert sub.wait_idle(5)
    extra = got.count("a0") - 1  # probes the broker delivered before the first was handled
    assert sub.counters.snapshot()["duplicates"] >= 1 and extra == 0, got
    for i in range(2, DEDUP_WINDOW + 2):  # push the first out of the window
        raw.publish("alerts/pump01", alert(i).to_bytes(), qos=1)
    wait_for(lambda: f"a{DEDUP_WINDOW + 1}" in got, timeout=60, what="the window's worth")
    raw.publish("alerts/pump01", first, qos=1)
    wait_for(lambda: got.count("a0") == 2, what="the first bytes handled again")
    raw.loop_stop()
    raw.disconnect()
    sub.stop()


class _StalledBroker:
    """Accepts one client, answers its CONNECT, then never reads again: a broker that stopped
    reading (hung, or its host swapping)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"mqtt://127.0.0.1:{self.server.getsockname()[1]}"
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        conn.recv(4096)  # the CONNECT
        conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted
        self.done.wait(60)
        conn.close()

    def close(self) -> None:
        self.done.set()
        self.server.close()


def test_a_broker_that_stops_reading_bounds_the_send_queue_and_the_stop(wait_for):
    """paho's send queue has no bound: a publisher faster than the broker grew it without end,
    and ``stop`` waited for all of it to be written — for ever, if the broker had stopped
    reading. QoS 0 past ``OUT_LIMIT`` unsent now makes ``wait_writable`` say no (the simulator
    waits there), and ``stop`` closes the socket once ``STOP_WRITE_S`` has passed."""
    broker = _StalledBroker()
    pub = BusClient(broker.url, f"stalled-{uuid.uuid4().hex[:6]}", "stalled",
                    var=var_dir(os.environ), validate_on_publish=False).start(wait=10)  # fmt: skip
    try:
        sent = 0
        while pub.wait_writable(0.5) and sent < 500_000:
            for _ in range(1000):
                pub.publish(Telemetry(msg_id=f"s-{sent}", asset="pump01", seq=sent,
                                      ts=float(sent), signals={"flow": 1.0}))  # fmt: skip
                sent += 1
        assert not pub.wait_writable(0), f"still writable after {sent} messages"
        assert OUT_LIMIT <= pub.unsent <= OUT_LIMIT + 1000
        stopped = threading.Thread(target=pub.stop, kwargs={"drain": 1.0}, daemon=True)
        stopped.start()
        stopped.join(30)
        assert not stopped.is_alive(), "stop() hung on a broker that does not read"
    finally:
        broker.close()
