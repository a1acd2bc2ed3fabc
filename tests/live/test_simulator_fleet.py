"""The simulator service with a fleet (issue 14): thousands of pumps within an explicit bound,
telemetry in batches, a sampled telemetry log, and a prompt stop when saturated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from probes import health

from engine.bus.routing import ALL_TELEMETRY
from engine.schemas import Telemetry
from engine.services.stack import CODE_ROOT


class Sim:
    def __init__(self, proc: subprocess.Popen[bytes], http: httpx.Client, var: Path) -> None:
        self.proc, self.http, self.var = proc, http, var

    def events(self) -> list[dict]:
        log = self.var / "logs" / "simulator.jsonl"
        return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def _env(tmp_path: Path, broker_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": CODE_ROOT,
        "CONTROLROOM_VAR": str(tmp_path / "var"),
        "CONTROLROOM_ENV_FILE": str(tmp_path / "none.env"),
        "CONTROLROOM_BROKER": broker_url,
        "CONTROLROOM_CLIENT_PREFIX": f"fleet{uuid.uuid4().hex[:6]}",
        **extra,
    }


@pytest.fixture
def start_sim(tmp_path, broker, wait_for, serve_process) -> Iterator:
    started: list[Sim] = []

    def start(**extra: str) -> Sim:
        proc, url = serve_process(["simulator"], _env(tmp_path, broker.url, **extra))
        http = httpx.Client(base_url=url, timeout=30)
        wait_for(lambda: health(url), timeout=60, what="simulator healthy")
        sim = Sim(proc, http, tmp_path / "var")
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.http.close()
        if sim.proc.poll() is None:
            sim.proc.send_signal(signal.SIGTERM)
            sim.proc.wait(30)


def test_a_fleet_past_256_pumps_plays_within_an_explicit_bound(start_sim, tmp_path, broker):
    sim = start_sim(CONTROLROOM_SIM_MAX_ASSETS="400")
    r = sim.http.post("/scenario/load", json={"name": "normal", "assets": 300})
    assert r.status_code == 200, r.text
    assert len(r.json()["assets"]) == 300
    health = sim.http.get("/health").json()
    assert health["asset_count"] == 300
    r = sim.http.post("/scenario/load", json={"name": "normal", "assets": 401})
    assert r.status_code == 422
    assert "401" in r.json()["detail"] and "CONTROLROOM_SIM_MAX_ASSETS" in r.json()["detail"]
    # The command line says it before anything starts.
    out = subprocess.run(
        [sys.executable, "-m", "engine", "serve", "simulator", "--assets", "401"],
        env=_env(tmp_path, broker.url, CONTROLROOM_SIM_MAX_ASSETS="400"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "at most CONTROLROOM_SIM_MAX_ASSETS=400" in out.stderr


def test_batched_telemetry_arrives_sample_for_sample_and_the_log_is_sampled(
    start_sim, bus_client, broker, wait_for
):
    got: list[Telemetry] = []
    watch = bus_client(broker.url, "fleetwatch", persistent=False)
    watch.subscribe_batch(ALL_TELEMETRY, got.extend)
    assert watch.wait_ready(10)
    sim = start_sim(CONTROLROOM_TELEMETRY_BATCH="32", CONTROLROOM_TELEMETRY_LOG_EVERY="5")
    r = sim.http.post("/scenario/load", json={"name": "normal", "assets": 300})
    assert r.status_code == 200, r.text
    r = sim.http.post("/scenario/start", json={"speed": 200, "until": 12})
    assert r.status_code == 200, r.text
    status = wait_for(
        lambda: (s := sim.http.get("/scenario/status").json())["running"] is False and s,
        timeout=60,
        what="played to 12 s",
    )
    published = status["published"]
    assert published == 300 * status["ticks"] > 0
    wait_for(lambda: len(got) >= published, what="every sample received")
    c = watch.counters.snapshot()
    assert c["samples"] == published and c["dead_letters"] == 0
    # Batched: far fewer messages than samples (each bucket's share of a tick in one message).
    assert 0 < c["batches"] <= status["ticks"] * 64 < published
    seqs: dict[str, list[int]] = defaultdict(list)
    for t in got:
        seqs[t.asset].append(t.seq)
    assert len(seqs) == 300
    assert all(s == list(range(status["ticks"])) for s in seqs.values())  # order kept per pump
    logged = [e for e in sim.events() if e.get("event") == "telemetry"]
    assert logged and all(e["message"]["seq"] % 5 == 0 for e in logged)
    assert len(logged) == 300 * len(range(0, status["ticks"], 5))


def test_sigterm_stops_a_saturated_simulator(start_sim, wait_for):
    """Thousands of pumps as fast as it can go: SIGTERM ends the process on its own, mid-run,
    cleanly (the seconds it takes are measured by bench/fleet.py, not asserted here)."""
    sim = start_sim(CONTROLROOM_TELEMETRY_LOG_EVERY="0")
    r = sim.http.post("/scenario/load", json={"name": "normal", "assets": 2000})
    assert r.status_code == 200, r.text
    assert sim.http.post("/scenario/start", json={"speed": 1_000_000}).status_code == 200
    wait_for(
        lambda: sim.http.get("/health").json()["published"] > 4000, timeout=60, what="saturated"
    )
    sim.proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once it has shut down gracefully: -SIGTERM, not a kill.
    assert sim.proc.wait(60) in (0, -signal.SIGTERM)
    events = [e["event"] for e in sim.events()]
    assert events[-1] == "service_stop"  # the graceful path ran to its end
    assert "scenario_done" not in events  # it stopped mid-run, not because the run ended


def test_a_fleet_publishes_what_each_pump_alone_would_with_operator_moves(
    start_sim, bus_client, broker, wait_for
):
    """From 16 pumps the service steps the fleet as one numpy computation: every sample is
    still, value for value, what that pump's own Simulator publishes — operator moves included
    (a stop, a speed and a valve ramp on three pumps mid-run)."""
    from engine.plant.fleet import fleet_scenarios
    from engine.plant.scenario import load_scenario
    from engine.plant.simulator import Simulator

    got: list[Telemetry] = []
    watch = bus_client(broker.url, "fleeteq", persistent=False)
    watch.subscribe_batch(ALL_TELEMETRY, got.extend)
    assert watch.wait_ready(10)
    sim = start_sim(CONTROLROOM_TELEMETRY_BATCH="16")
    n, seed = 20, 9
    r = sim.http.post("/scenario/load", json={"name": "chronic_wear", "assets": n, "seed": seed})
    assert r.status_code == 200, r.text

    def play_to(t: int) -> None:
        assert sim.http.post("/scenario/start", json={"speed": 500, "until": t}).status_code == 200
        wait_for(lambda: sim.http.get("/scenario/status").json()["running"] is False, timeout=60)

    moves = {
        "pump03": {"action": "stop"},
        "pump07": {"action": "speed", "pct": 80, "ramp_s": 20},
        "pump18": {"action": "valve", "pct": 45, "ramp_s": 5},
    }
    play_to(40)
    for asset, move in moves.items():
        assert sim.http.post("/operator", json={"asset": asset, **move}).status_code == 200
    play_to(90)
    status = sim.http.get("/scenario/status").json()
    assert status["sim_time"] == 90 and status["published"] == n * 90
    wait_for(lambda: len(got) >= n * 90, what="every sample received")

    mine: dict[str, list[tuple]] = defaultdict(list)
    for t in got:
        mine[t.asset].append((t.seq, t.ts, t.signals, t.truth))
    for scn in fleet_scenarios(load_scenario("chronic_wear"), n, seed):
        alone = Simulator(scn)
        expected = [alone.step() for _ in range(40)]
        move = moves.get(scn.asset)
        if move == {"action": "stop"}:
            alone.stop_pump()
        elif move and move["action"] == "speed":
            alone.set_speed_setpoint(move["pct"], move["ramp_s"])
        elif move:
            alone.set_valve_command(move["pct"], move["ramp_s"])
        expected += [alone.step() for _ in range(50)]
        assert mine[scn.asset] == [(t.seq, t.ts, t.signals, t.truth) for t in expected], scn.asset
    speeds = [signals["speed"] for _, _, signals, _ in mine["pump03"]]
    assert speeds[-1] < 0.9 * speeds[39]  # the stop took effect
