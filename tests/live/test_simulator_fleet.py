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

        def healthy() -> bool:
            try:
                return http.get("/health").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60, what="simulator healthy")
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
    assert out.returncode == 2 and "at most 400 pumps" in out.stderr


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
