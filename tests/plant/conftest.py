"""Shared fixtures of the plant tests: replays are computed once per session (they are the slow
part) and reused by the tests that read them."""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.evaluation.replay import replay
from engine.plant.scenario import Scenario, load_scenario
from engine.schemas import AlertEvent, DiagnosisReport, PlantMessage, Telemetry


class Run:
    def __init__(self, messages: list[PlantMessage]) -> None:
        self.messages = messages
        self.telemetry = [m for m in messages if isinstance(m, Telemetry)]
        self.alerts = [m for m in messages if isinstance(m, AlertEvent)]
        self.active = [a for a in self.alerts if a.status == "active" and a.revision == 0]
        """Alerts as raised (revision 0); escalations are later revisions of the same id."""
        self.all_diagnoses = [m for m in messages if isinstance(m, DiagnosisReport)]
        self.diagnoses = [d for d in self.all_diagnoses if d.stage == "final"]
        self.provisional = [d for d in self.all_diagnoses if d.stage == "provisional"]


def _replayed(name: str, shared: Path) -> list[PlantMessage]:
    """The replay of scenario ``name``, computed once per test run: under xdist each worker
    has its own session, and three files (monitor, diagnosis, diagnosis lifecycle) replay
    the same demo scenarios, 3-5 s of CPU each. The first worker to ask computes it, under a
    lock, into this run's base temp dir (shared by the workers, fresh each run); the others
    wait and load it (~0.2 s)."""
    path = shared / f"demo_run-{name}.pickle"
    with (shared / f"demo_run-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            messages: list[PlantMessage] = pickle.loads(path.read_bytes())
            return messages
        messages = list(replay(load_scenario(name)))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)
        return messages


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    cache: dict[str, Run] = {}
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base

    def get(name: str) -> Run:
        if name not in cache:
            cache[name] = Run(_replayed(name, shared))
        return cache[name]

    return get


def short(scenario: Scenario, seconds: float) -> Scenario:
    """The same scenario cut to its first ``seconds``."""
    return scenario.model_copy(
        update={
            "duration_s": seconds,
            "faults": [f for f in scenario.faults if f.onset_s < seconds],
            "manoeuvres": [m for m in scenario.manoeuvres if m.at_s <= seconds],
        }
    )
