"""Routing by topic (issue 14): telemetry carries its asset's bucket, replicas subscribe to their
buckets only, the old layout is still read, and several samples can travel in one batch message
with the same validation as single ones."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from engine.bus.broker import parse_broker_url
from engine.bus.routing import ALL_TELEMETRY, buckets_of, owns, telemetry_route
from engine.schemas import (
    MAX_BATCH_SAMPLES,
    TELEMETRY_BUCKETS,
    Telemetry,
    WireError,
    batch_payloads,
    batch_topic,
    decode,
    decode_batch,
    parse_topic,
    read_topic,
    telemetry_bucket,
    telemetry_topic,
    topic_for,
)
from engine.services.settings import Shard


def sample(asset: str, seq: int = 0, **signals: float) -> Telemetry:
    return Telemetry(
        msg_id=f"{asset}-{seq}",
        asset=asset,
        seq=seq,
        ts=float(seq),
        signals=signals or {"flow": 100.0, "vibration": 2.0},
    )


def batch_body(*samples: str) -> str:
    return '{"samples":[' + ",".join(samples) + "]}"


def in_bucket(bucket: int, n: int, prefix: str = "p") -> list[str]:
    """``n`` asset ids that hash to ``bucket``."""
    out, k = [], 0
    while len(out) < n:
        a = f"{prefix}{k}"
        if telemetry_bucket(a) == bucket:
            out.append(a)
        k += 1
    return out


# ------------------------------------------------------------------------------ topics (pure)


def test_telemetry_topics_carry_a_stable_bucket_and_both_layouts_parse():
    t = sample("pump01")
    bucket = telemetry_bucket("pump01")
    assert 0 <= bucket < TELEMETRY_BUCKETS
    assert topic_for(t) == telemetry_topic("pump01") == f"telemetry/{bucket:02d}/pump01"
    assert parse_topic(topic_for(t)) == ("telemetry", "pump01")
    assert parse_topic("telemetry/pump01") == ("telemetry", "pump01")  # the old layout
    assert read_topic("telemetry/pump01").legacy and not read_topic(topic_for(t)).legacy
    assert parse_topic("alerts/pump01") == ("alerts", "pump01")
    # Both layouts decode to the same message.
    body = t.to_bytes()
    assert decode(topic_for(t), body) == decode("telemetry/pump01", body) == t


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        ("telemetry/00/pump01", "belongs in bucket"),  # filed in another replica's bucket
        ("telemetry/7/pump01", "bucket '7'"),
        ("telemetry/64/pump01", "bucket '64'"),
        ("alerts/07/pump01", "unknown topic"),
        ("telemetry/07/batch", "belongs in bucket"),
        ("telemetry/07/batch/a b", "is not an id"),
        ("telemetry//pump01", "unknown topic"),
        ("telemetry/07/x/y", "unknown topic"),
    ],
)
def test_malformed_topics_are_refused_naming_them(topic, why):
    if topic == "telemetry/00/pump01" and telemetry_bucket("pump01") == 0:
        topic = "telemetry/01/pump01"
    if topic == "telemetry/07/batch" and telemetry_bucket("batch") == 7:
        topic = "telemetry/08/batch"
    with pytest.raises(WireError, match=why) as err:
        read_topic(topic)
    assert topic in str(err.value) or why in str(err.value)


def test_a_batch_topic_names_no_asset():
    topic = batch_topic(5, "gw1")
    assert topic == "telemetry/05/batch/gw1"
    r = read_topic(topic)
    assert (r.kind, r.asset, r.bucket, r.source, r.batch) == ("telemetry", None, 5, "gw1", True)
    with pytest.raises(WireError, match="batch"):
        parse_topic(topic)
    with pytest.raises(WireError, match="batch"):
        decode(topic, b'{"samples":[]}')


# ------------------------------------------------------------------------------ batches (pure)


BAD_SAMPLES = {
    "nan": '{"msg_id":"x","asset":"%s","seq":1,"ts":1.0,"signals":{"flow":NaN}}',
    "huge": '{"msg_id":"x","asset":"%s","seq":1,"ts":1.0,"signals":{"other":1e13}}',
    "implausible": '{"msg_id":"x","asset":"%s","seq":1,"ts":1.0,"signals":{"flow":-500.0}}',
    "extra field": '{"msg_id":"x","asset":"%s","seq":1,"ts":1.0,"signals":{"a":1},"x":1}',
    "no signals": '{"msg_id":"x","asset":"%s","seq":1,"ts":1.0,"signals":{}}',
    "bad asset": '{"msg_id":"x","asset":"a/b","seq":1,"ts":1.0,"signals":{"a":1}}',
}


@pytest.mark.parametrize("kind", sorted(BAD_SAMPLES))
def test_a_bad_sample_is_rejected_alone_with_the_single_message_reason(kind):
    assets = in_bucket(9, 3)
    good = [sample(a, 1) for a in assets]
    bad = BAD_SAMPLES[kind] % assets[1] if "%s" in BAD_SAMPLES[kind] else BAD_SAMPLES[kind]
    body = batch_body(good[0].to_json(), bad, good[2].to_json())
    samples, rejected = decode_batch(batch_topic(9, "gw"), body.encode())
    assert samples == [good[0], good[2]]
    assert [r.index for r in rejected] == [1]
    # The same sample alone on its own topic is refused by the single-message decoder, for the
    # same field: one validation, whichever way the sample came.
    with pytest.raises(WireError) as single:
        decode(f"telemetry/{assets[1]}", bad)
    field = single.value.reason.split("invalid: ", 1)[1].split(":")[0]
    assert rejected[0].reason.startswith(f"samples[1]: {field}")
    assert json.loads(rejected[0].sample.replace("NaN", "null"))["msg_id"] == "x"


def test_a_sample_filed_in_the_wrong_bucket_is_rejected():
    mine, other = in_bucket(3, 1)[0], in_bucket(4, 1)[0]
    body = batch_body(sample(mine).to_json(), sample(other).to_json())
    samples, rejected = decode_batch(batch_topic(3, "gw"), body)
    assert [s.asset for s in samples] == [mine]
    assert "belongs in bucket 04" in rejected[0].reason


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "bad JSON"),
        (b'{"samples":[]}', "non-empty 'samples'"),
        (b'{"samples":{}}', "non-empty 'samples'"),
        (b'{"samples":[{"a":1}],"more":1}', "unexpected field 'more'"),
        (b"[1,2]", "JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"samples":' + b"[" * 40 + b"]" * 40 + b"}", "nested"),
    ],
)
def test_an_unreadable_batch_is_refused_whole(body, why):
    with pytest.raises(WireError, match=why):
        decode_batch(batch_topic(1, "gw"), body)


def test_batches_are_bounded_in_samples_and_bytes():
    assets = in_bucket(2, 5)
    too_many = batch_body(*[sample(assets[0], i).to_json() for i in range(MAX_BATCH_SAMPLES + 1)])
    with pytest.raises(WireError, match=f"> {MAX_BATCH_SAMPLES}"):
        decode_batch(batch_topic(2, "gw"), too_many)
    # The packer splits by count and by size, keeps order within a bucket and loses nothing.
    fleet = [sample(a, seq) for seq in range(40) for a in [*assets, *in_bucket(3, 2)]]
    packed = batch_payloads(fleet, max_samples=16, max_bytes=4000)
    assert set(packed) == {2, 3}
    back: list[Telemetry] = []
    for bucket, payloads in packed.items():
        for p in payloads:
            assert len(p) <= 4000
            got, rejected = decode_batch(batch_topic(bucket, "gw"), p)
            assert not rejected and 0 < len(got) <= 16
            back += got
    assert sorted(back, key=lambda t: (t.asset, t.seq)) == sorted(
        fleet, key=lambda t: (t.asset, t.seq)
    )
    for a in assets:
        assert [t.seq for t in back if t.asset == a] == list(range(40))


# ------------------------------------------------------------------------------ routes (pure)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_replicas_split_the_buckets_and_the_assets_disjointly(count):
    owned = [set(buckets_of(i, count)) for i in range(1, count + 1)]
    assert set().union(*owned) == set(range(TELEMETRY_BUCKETS))
    assert sum(len(b) for b in owned) == TELEMETRY_BUCKETS
    assets = [f"pump{k:04d}" for k in range(1000)]
    for a in assets:
        owners = [i for i in range(1, count + 1) if owns(i, count, a)]
        assert len(owners) == 1
        assert Shard(owners[0], count).owns(a)  # the services' Shard agrees with the routes
        assert telemetry_bucket(a) in owned[owners[0] - 1]


def test_a_replica_subscribes_only_to_its_buckets():
    route = telemetry_route(2, 4, legacy=False)
    mine = buckets_of(2, 4)
    assert route.filters == tuple(
        f for b in mine for f in (f"telemetry/{b:02d}/+", f"telemetry/{b:02d}/batch/+")
    )
    assert all(mqtt.topic_matches_sub(f, "telemetry/pump01") is False for f in route.filters)
    legacy = telemetry_route(2, 4)
    assert legacy.filters[-1] == "telemetry/+" and legacy.accept is not None
    assert telemetry_route().filters == (ALL_TELEMETRY,)
    with pytest.raises(ValueError, match="at most 64 replicas"):
        telemetry_route(1, TELEMETRY_BUCKETS + 1)


def test_shared_subscription_is_one_filter_and_the_broker_decides():
    route = telemetry_route(1, 2, share_group="monitor")
    assert route.filters == ("$share/monitor/telemetry/#",) and route.accept is None
    with pytest.raises(ValueError, match="share group"):
        telemetry_route(share_group="a/b")


# ------------------------------------------------------------------------------ on a broker


def _raw_publisher(url: str) -> mqtt.Client:
    a = parse_broker_url(url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:8]}")
    if a.username:
        c.username_pw_set(a.username, a.password)
    c.connect(a.host, a.port)
    c.loop_start()
    return c


class Collector:
    """What a client's handlers were given, batch handler or plain."""

    def __init__(self) -> None:
        self.samples: list[Telemetry] = []
        self.calls = 0
        self.lock = threading.Lock()

    def batch(self, msgs: list[Telemetry]) -> None:
        with self.lock:
            self.calls += 1
            self.samples += msgs

    def one(self, msg: Telemetry) -> None:
        self.batch([msg])


def _replica(bus_client, url: str, index: int, count: int, legacy: bool, sink: Collector):
    route = telemetry_route(index, count, legacy=legacy)
    client = bus_client(url, f"rep{index}of{count}", persistent=False, accept=route.accept)
    for f in route.filters:
        client.subscribe_batch(f, sink.batch)
    assert client.wait_ready(10)
    return client


def test_a_replica_receives_none_of_another_replicas_telemetry(broker, bus_client, wait_for):
    """Counted where the client receives (``received``: every PUBLISH paho handed over), not
    where the agent keeps: the other replica's traffic never reaches this process."""
    sinks = [Collector(), Collector()]
    reps = [_replica(bus_client, broker.url, i, 2, False, sinks[i - 1]) for i in (1, 2)]
    pub = bus_client(broker.url, "pub", persistent=False)
    assets = [f"route{uuid.uuid4().hex[:4]}-{k}" for k in range(40)]
    singles = [sample(a, 1) for a in assets]
    for t in singles:
        pub.publish(t)
    batched = [sample(a, 2) for a in assets]
    messages = pub.publish_batch(batched, source="sim1")
    expected = [{a for a in assets if owns(i, 2, a)} for i in (1, 2)]
    assert expected[0] and expected[1]
    for i, (rep, sink) in enumerate(zip(reps, sinks, strict=True)):
        wait_for(lambda s=sink, i=i: len(s.samples) >= 2 * len(expected[i]), what="telemetry")
        own_batches = len({telemetry_bucket(a) for a in expected[i]})
        assert messages == len({telemetry_bucket(a) for a in assets})
        c = rep.counters.snapshot()
        assert rep.wait_idle(5)
        assert c["received"] == len(expected[i]) + own_batches  # its messages and no others
        assert c["not_mine"] == 0 and c["dead_letters"] == 0
        assert c["samples"] == 2 * len(expected[i]) and c["batches"] == own_batches
        assert {t.asset for t in sink.samples} == expected[i]
        for a in expected[i]:  # per-asset order kept: the single sample, then the batched one
            assert [t.seq for t in sink.samples if t.asset == a] == [1, 2]


def test_the_old_layout_is_still_read_during_a_migration(broker, bus_client, wait_for):
    sinks = {True: [Collector(), Collector()], False: [Collector()]}
    migrating = [_replica(bus_client, broker.url, i, 2, True, sinks[True][i - 1]) for i in (1, 2)]
    migrated = _replica(bus_client, broker.url, 1, 2, False, sinks[False][0])
    old = _raw_publisher(broker.url)
    try:
        assets = [f"old{uuid.uuid4().hex[:4]}-{k}" for k in range(20)]
        for a in assets:  # an old publisher: telemetry/{asset}, no bucket
            old.publish(f"telemetry/{a}", sample(a, 1).to_bytes(), qos=0)
        for i in (1, 2):
            mine = {a for a in assets if owns(i, 2, a)}
            sink = sinks[True][i - 1]
            wait_for(lambda s=sink, m=mine: len(s.samples) >= len(m), what="old-layout samples")
            assert migrating[i - 1].wait_idle(5)
            c = migrating[i - 1].counters.snapshot()
            # The old layout cannot be routed by the broker: each replica still receives all of
            # it and drops the other's assets before decoding — the migration's price.
            assert c["received"] == len(assets) and c["not_mine"] == len(assets) - len(mine)
            assert {t.asset for t in sink.samples} == mine
        # A replica that no longer reads the old layout receives none of it.
        assert migrated.counters.snapshot()["received"] == 0 and not sinks[False][0].samples
    finally:
        old.disconnect()
        old.loop_stop()


def test_a_bad_batch_is_dead_lettered_and_counted_without_losing_the_others(
    broker, bus_client, wait_for
):
    sink = Collector()
    sub = bus_client(broker.url, "batchsub", persistent=False)
    sub.subscribe_batch(ALL_TELEMETRY, sink.batch)
    assert sub.wait_ready(10)
    raw = _raw_publisher(broker.url)
    try:
        assets = in_bucket(11, 3, prefix=f"b{uuid.uuid4().hex[:4]}-")
        good = [sample(a, 1) for a in assets]
        topic = batch_topic(11, "gw")
        with_bad = batch_body(good[0].to_json(), BAD_SAMPLES["nan"] % assets[1], good[2].to_json())
        raw.publish(topic, with_bad.encode(), qos=0)
        raw.publish(topic, b'{"samples": [', qos=0)  # unreadable: dead-lettered whole
        later = [sample(a, 2) for a in assets]
        raw.publish(topic, batch_body(*(t.to_json() for t in later)), qos=0)
        wait_for(lambda: len(sink.samples) >= 5, what="the valid samples")
        assert sub.wait_idle(5)
        assert sink.samples == [good[0], good[2], *later]
        c = sub.counters.snapshot()
        assert c["dead_letters"] == 2 and c["batches"] == 2 and c["samples"] == 5
        letters = [json.loads(x) for x in sub.deadletters.path.read_text().splitlines()]
        reasons = Counter(x["reason"].split(":")[0] for x in letters)
        assert reasons == Counter({"samples[1]": 1, "bad JSON": 1})
        assert all(x["topic"] == topic for x in letters)
    finally:
        raw.disconnect()
        raw.loop_stop()


def test_a_batch_handler_gets_bursts_and_a_plain_handler_each_message(broker, bus_client, wait_for):
    burst, each = Collector(), Collector()
    sub = bus_client(broker.url, "burst", persistent=False)
    sub.subscribe_batch(ALL_TELEMETRY, burst.batch)
    sub.subscribe(ALL_TELEMETRY, each.one)
    assert sub.wait_ready(10)
    pub = bus_client(broker.url, "burstpub", persistent=False)
    asset = f"burst{uuid.uuid4().hex[:4]}"
    n = 300
    for seq in range(n):
        pub.publish(sample(asset, seq))
    wait_for(lambda: len(each.samples) >= n and len(burst.samples) >= n, what="all samples")
    assert [t.seq for t in burst.samples] == [t.seq for t in each.samples] == list(range(n))
    assert each.calls == n and burst.calls <= n


def test_a_shared_subscription_reaches_its_handlers(broker, bus_client, wait_for):
    """``$share`` filters: messages arrive on their own topics and still find their handler.
    (Mosquitto shares round robin, so this is one member; see docs/live.md.)"""
    sink = Collector()
    route = telemetry_route(share_group=f"g{uuid.uuid4().hex[:6]}")
    sub = bus_client(broker.url, "share", persistent=False)
    for f in route.filters:
        sub.subscribe_batch(f, sink.batch)
    assert sub.wait_ready(10)
    pub = bus_client(broker.url, "sharepub", persistent=False)
    asset = f"share{uuid.uuid4().hex[:4]}"
    pub.publish(sample(asset, 0))
    pub.publish_batch([sample(asset, 1)], source="gw")
    wait_for(lambda: len(sink.samples) >= 2, what="shared delivery")
    assert [t.seq for t in sink.samples] == [0, 1]


def test_a_replica_gets_a_burst_of_all_its_buckets_in_one_call(broker, bus_client, wait_for):
    """A replica subscribes with one filter per bucket it owns, yet its batch handler gets what
    the dispatcher has queued in one call, in arrival order: a call per filter would hand a
    vectorised monitor one bucket's few assets at a time (~1/32 of its burst at 2 replicas),
    which cost a monitor replica of 2 its vectorisation. The first call is held until the rest
    is queued, so the second call's content is what one dispatcher pass took."""
    calls: list[list[Telemetry]] = []
    held, release = threading.Event(), threading.Event()

    def handler(msgs: list[Telemetry]) -> None:
        calls.append(list(msgs))
        held.set()
        release.wait(10)

    route = telemetry_route(1, 2, legacy=False)
    sub = bus_client(broker.url, "rep1of2burst", persistent=False, accept=route.accept)
    for f in route.filters:
        sub.subscribe_batch(f, handler)
    assert sub.wait_ready(10)
    pub = bus_client(broker.url, "burstpub2", persistent=False)
    tag = uuid.uuid4().hex[:4]
    first = sample(f"hold{tag}-{next(k for k in range(99) if owns(1, 2, f'hold{tag}-{k}'))}", 0)
    pub.publish(first)
    wait_for(held.is_set, what="the first call")
    mine = [a for a in (f"burst{tag}-{k}" for k in range(200)) if owns(1, 2, a)][:40]
    burst = [sample(a, 1) for a in mine]
    for t in burst:
        pub.publish(t)
    wait_for(lambda: sub.queue_depth >= 1 + len(burst), what="the burst queued")
    release.set()
    wait_for(lambda: sum(len(c) for c in calls) >= 1 + len(burst), what="the burst handled")
    assert len({telemetry_bucket(a) for a in mine}) > 5  # many filters ...
    ids = [[t.msg_id for t in c] for c in calls]
    assert ids == [[first.msg_id], [t.msg_id for t in burst]]  # ... one call, in order


def test_a_batch_handler_on_overlapping_filters_gets_each_sample_once(broker, bus_client, wait_for):
    sink = Collector()
    sub = bus_client(broker.url, "overlap", persistent=False)
    asset = f"ovl{uuid.uuid4().hex[:4]}"
    bucket = telemetry_bucket(asset)
    for f in (ALL_TELEMETRY, f"telemetry/{bucket:02d}/+", f"telemetry/{bucket:02d}/batch/+"):
        sub.subscribe_batch(f, sink.batch)
    assert sub.wait_ready(10)
    pub = bus_client(broker.url, "overlappub", persistent=False)
    pub.publish(sample(asset, 0))
    pub.publish_batch([sample(asset, 1)], source="gw")
    wait_for(lambda: sub.counters.snapshot()["handled"] >= 2, what="both messages")
    assert sub.wait_idle(5)
    assert [t.seq for t in sink.samples] == [0, 1]
