"""Shared fixtures of the plant tests: replays are computed once per session (they are the slow
part) and reused by the tests that read them."""

from __future__ import annotations

from collections.abc import Callable

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


@pytest.fixture(scope="session")
def demo_run() -> Callable[[str], Run]:
    cache: dict[str, Run] = {}

    def get(name: str) -> Run:
        if name not in cache:
            cache[name] = Run(list(replay(load_scenario(name))))
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
