"""Accelerated replay: simulator → monitor → diagnosis in simulated time, no broker, no clock.

The same agent objects the live services run, fed in the order a live bus would deliver: each
tick's telemetry, then the alerts it triggered, then any diagnosis those (or the history they
waited for) produced. At the end of the scenario the diagnosis agent is flushed, so an alert
raised near the end still gets a diagnosis from the history there is.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.agents.monitor import Monitor, MonitorConfig
from engine.plant.scenario import Scenario
from engine.plant.simulator import Simulator
from engine.schemas import PlantMessage, Tuning, WireModel, topic_for


def envelope_line(message: WireModel) -> str:
    """The message as one JSONL line ``{"topic": ..., "payload": ...}`` — byte-identical to
    ``Envelope.of(message).to_json()`` without re-validating the payload (replay hot path)."""
    return f'{{"topic":"{topic_for(message)}","payload":{message.to_json()}}}'


def replay(
    scenario: Scenario,
    seed: int | None = None,
    *,
    tuning: Tuning | None = None,
    monitor_config: MonitorConfig | None = None,
    rules: list | None = None,
    diagnose: bool = True,
    rate_hz: float = 1.0,
) -> Iterator[PlantMessage]:
    """Yield every message of the run: Telemetry (with truth), AlertEvent, DiagnosisReport.

    Alert and diagnosis ids are derived from the scenario seed, so a replay is reproducible
    message for message."""
    sim = Simulator(scenario, seed=seed, rate_hz=rate_hz)
    monitor = Monitor(monitor_config, id_prefix=f"r{sim.seed}", tuning=tuning)
    agent = None
    if diagnose:
        from engine.agents.diagnosis import DiagnosisAgent

        agent = DiagnosisAgent(rules, tuning=tuning)
    for t in sim.run():
        yield t
        alerts = monitor.feed(t)
        if agent is not None:
            yield from agent.feed(t)
        for a in alerts:
            yield a
            if agent is not None:
                yield from agent.feed(a)
    if agent is not None:
        yield from agent.flush()
