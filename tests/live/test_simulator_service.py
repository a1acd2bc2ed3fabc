"""The simulator service's HTTP API, as a real process on a real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import httpx
import pytest

from engine.bus.broker import free_port
from engine.bus.client import BusClient
from engine.bus.routing import ALL_TELEMETRY
from engine.plant.scenario import load_scenario
from engine.plant.simulator import Simulator
from engine.schemas import Telemetry
from engine.services.stack import CODE_ROOT


@pytest.fixture
def simulator(tmp_path, broker, wait_for):
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": CODE_ROOT,
        "CONTROLROOM_VAR": str(tmp_path / "var"),
        "CONTROLROOM_ENV_FILE": str(tmp_path / "none.env"),
        "CONTROLROOM_BROKER": broker.url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "simulator", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def healthy() -> bool:
        try:
            return http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout=30, what="simulator healthy")
    yield http
    http.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)


def test_api_plays_several_assets_deterministically(simulator, broker, wait_for):
    http = simulator
    got: list[Telemetry] = []
    watch = BusClient(broker.url, f"simw-{uuid.uuid4().hex[:6]}", "simwatch", persistent=False)
    watch.subscribe(ALL_TELEMETRY, got.append)
    watch.start(wait=10)
    wait_for(lambda: watch.counters.snapshot()["connects"], what="watcher subscribed")

    assert http.post("/scenario/start").status_code == 409  # nothing loaded
    r = http.post("/scenario/load", json={"name": "sudden_clog_and_drift", "assets": 3, "seed": 5})
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["assets"] == ["pump01", "pump02", "pump03"] and st["seeds"] == [5, 6, 7]
    assert st["running"] is False and st["duration"] == 14400.0

    assert http.post("/scenario/start", json={"speed": 200}).json()["running"] is True
    wait_for(lambda: len({t.asset for t in got}) == 3 and len(got) >= 30, what="3 assets")
    stopped = http.post("/scenario/stop").json()
    assert stopped["running"] is False and stopped["sim_time"] > 0
    assert http.get("/scenario/status").json()["sim_time"] == stopped["sim_time"]  # paused

    # Same scenario + seed -> the same telemetry as a replay (wall_time aside).
    scn = load_scenario("sudden_clog_and_drift").model_copy(update={"asset": "pump02"})
    expected = Simulator(scn, seed=6).step()
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
