"""The simulator service's HTTP API, as a real process on a real broker."""

from __future__ import annotations

import json
import os
import signal
import uuid

import httpx
import pytest
from probes import health

from engine.bus.client import BusClient
from engine.bus.routing import ALL_TELEMETRY
from engine.paths import var_dir
from engine.plant.fleet import fleet_scenarios
from engine.plant.scenario import load_scenario
from engine.plant.simulator import Simulator
from engine.schemas import Telemetry
from engine.services.stack import CODE_ROOT


@pytest.fixture
def simulator(tmp_path, broker, wait_for, serve_process):
    env = {
        **os.environ,
        "PYTHONPATH": CODE_ROOT,
        "CONTROLROOM_VAR": str(tmp_path / "var"),
        "CONTROLROOM_ENV_FILE": str(tmp_path / "none.env"),
        "CONTROLROOM_BROKER": broker.url,
    }
    proc, url = serve_process(["simulator"], env)
    http = httpx.Client(base_url=url, timeout=10)
    wait_for(lambda: health(url), timeout=30, what="simulator healthy")
    yield http
    http.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)


def test_api_plays_several_assets_deterministically(simulator, broker, wait_for):
    http = simulator
    got: list[Telemetry] = []
    watch = BusClient(
        broker.url,
        f"simw-{uuid.uuid4().hex[:6]}",
        "simwatch",
        persistent=False,
        var=var_dir(os.environ),
    )
    watch.subscribe(ALL_TELEMETRY, got.append)
    watch.start(wait=10)
    wait_for(lambda: watch.counters.snapshot()["connects"], what="watcher subscribed")

    assert http.post("/scenario/start").status_code == 409  # nothing loaded
    r = http.post("/scenario/load", json={"name": "sudden_clog_and_drift", "assets": 3, "seed": 5})
    assert r.status_code == 200, r.text
    st = r.json()
    fleet = fleet_scenarios(load_scenario("sudden_clog_and_drift"), 3, 5)  # contract C7
    assert st["assets"] == ["pump01", "pump02", "pump03"]
    assert st["seeds"] == [s.seed for s in fleet] and st["seeds"][0] == 5
    assert st["running"] is False and st["duration"] == 14400.0

    assert http.post("/scenario/start", json={"speed": 200}).json()["running"] is True
    wait_for(lambda: len({t.asset for t in got}) == 3 and len(got) >= 30, what="3 assets")
    stopped = http.post("/scenario/stop").json()
    assert stopped["running"] is False and stopped["sim_time"] > 0
    assert http.get("/scenario/status").json()["sim_time"] == stopped["sim_time"]  # paused

    # Same scenario + seed -> the same telemetry as a replay (wall_time aside).
    expected = Simulator(fleet[1], seed=fleet[1].seed).step()
    first = next(t for t in got if t.asset == "pump02")
    assert first.wall_time is not None
    assert first.model_copy(update={"wall_time": None}) == expected

    r = http.post("/operator", json={"asset": "pump02", "action": "valve", "pct": 50})
    assert r.status_code == 200
    assert http.post("/operator", json={"asset": "nope", "action": "stop"}).status_code == 404
    watch.stop()


def test_api_rejects_bad_input_with_the_field_named(simulator, wait_for):
    http = simulator
    r = http.post("/scenario/load", json={"name": "no_such_scenario"})
    assert r.status_code == 422 and "no such scenario" in r.json()["detail"]
    r = http.post("/scenario/load", json={"duration_s": 100, "faults": [{"type": "clogging"}]})
    assert r.status_code == 422 and "faults[0]" in r.json()["detail"]
    r = http.post("/scenario/load", json={"name": "normal", "assets": 0})
    assert r.status_code == 422 and "assets" in r.json()["detail"]
    r = http.post("/scenario/start", json={"speed": -1})
    assert r.status_code == 422
    # an uploaded scenario plays to its end
    r = http.post("/scenario/load", json={"name": "tiny", "asset": "tank7", "duration_s": 30})
    assert r.status_code == 200 and r.json()["assets"] == ["tank7"]
    http.post("/scenario/start", json={"speed": 1000})
    st = wait_for(
        lambda: (s := http.get("/scenario/status").json())["done"] and s,
        what="uploaded scenario played to its end",
    )
    assert st["published"] == 30 and st["sim_time"] == 30.0
    assert http.post("/scenario/start").status_code == 409  # finished: load again to replay


def test_load_resolves_names_only_inside_scenarios_and_reads_nothing_else(simulator, tmp_path):
    """Paths, traversals and devices are unknown names: a 4xx that reads nothing and quotes
    nothing but the list of shipped scenarios."""
    http = simulator
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"api_key_name": 1, "duration_s": 5}))
    for name in (
        "/etc/shadow",
        "/dev/zero",
        str(secret),
        "../../../etc/passwd",
        "chronic_wear/../../secret",
        "scenarios/../README",
    ):
        for body in ({"name": name}, {"names": ["normal", name]}):
            r = http.post("/scenario/load", json=body)
            assert r.status_code == 422, (name, r.text)
            detail = r.json()["detail"]
            assert "no such scenario" in detail or "at most 64 characters" in detail, detail
            assert "api_key_name" not in detail
            assert "root:" not in detail and "shadow" not in detail
    assert http.post("/scenario/load", json={"name": "chronic_wear"}).status_code == 200


def test_stop_is_prompt_with_many_assets_at_full_speed(simulator):
    """The run thread holds the lock for one tick at a time: stop waits for at most the tick
    in progress, not for a batch of thousands of ticks × every asset."""
    http = simulator
    r = http.post("/scenario/load", json={"name": "normal", "assets": 256})
    assert r.status_code == 200, r.text
    assert http.post("/scenario/start", json={"speed": 1_000_000}).json()["running"]
    stopped = http.post("/scenario/stop").json()
    assert stopped["running"] is False
    after = http.get("/scenario/status").json()
    assert after["ticks"] == stopped["ticks"] and after["published"] == stopped["published"]
    asset = r.json()["assets"][6]
    op = http.post("/operator", json={"asset": asset, "action": "valve", "pct": 40})
    assert op.status_code == 200


def test_request_bodies_are_bounded(simulator, post_oversize):
    """Over the limit with a Content-Length (refused before a byte is read) or streamed
    (refused once the count passes it). The server may close while the client still writes:
    either way its own counter shows the refusal."""
    http = simulator
    where = (http.base_url.host, http.base_url.port)
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = post_oversize(where, "/scenario/load", big)
    assert r.status in (413, None), r
    if r.status:
        assert "over this service's limit" in json.loads(r.body)["detail"]
    assert http.get("/health").json()["http"]["bodies_refused"] == 1

    r = post_oversize(where, "/scenario/load", (b"y" * 65536 for _ in range(40)))
    assert r.status in (413, None), r
    h = http.get("/health").json()
    assert (h["http"]["bodies_refused"], h["http"]["max_body_bytes"]) == (2, 1024 * 1024)
    assert http.post("/scenario/load", json={"name": "normal"}).status_code == 200
