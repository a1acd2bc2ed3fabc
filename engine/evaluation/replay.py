"""Accelerated replay: simulator → monitor → diagnosis in simulated time, no broker, no clock.

The same agent objects the live services run, fed in the order a live bus would deliver: each
tick's telemetry, then the alerts it triggered, then any diagnosis those (or the history they
waited for) produced. At the end of the scenario the diagnosis agent is flushed, so an alert
raised near the end still gets a diagnosis from the history there is.

A fleet (``replay_fleet``) plays several assets in lock-step, one tick of every asset at a time
(the order a 1 Hz plant publishes in), through one monitor and one diagnosis agent — as one
replica of each would see them live. When the monitor offers a batch entry point
(``feed_batch``: one tick of many assets at once, the vectorised monitor), the fleet replay uses
it; otherwise it feeds the samples one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from engine.agents.diagnosis import DiagnosisAgent
from engine.agents.diagnosis_rules import Rule
from engine.agents.monitor import Monitor, MonitorConfig
from engine.plant.fleet_simulator import FleetSimulator
from engine.plant.scenario import Scenario
from engine.plant.simulator import Simulator
from engine.schemas import AlertEvent, PlantMessage, Telemetry, Tuning, WireModel, topic_for


def envelope_line(message: WireModel) -> str:
    """The message as one JSONL line ``{"topic": ..., "payload": ...}`` — byte-identical to
    ``Envelope.of(message).to_json()`` without re-validating the payload (replay hot path)."""
    return f'{{"topic":"{topic_for(message)}","payload":{message.to_json()}}}'


def _agents(
    id_prefix: str,
    tuning: Tuning | None,
    monitor_config: MonitorConfig | None,
    rules: Sequence[Rule] | None,
    diagnose: bool,
) -> tuple[Monitor, DiagnosisAgent | None]:
    monitor = Monitor(monitor_config, id_prefix=id_prefix, tuning=tuning)
    if not diagnose:
        return monitor, None
    if rules is None:
        from engine.agent_files import load_rules

        rules = load_rules()
    return monitor, DiagnosisAgent(rules, tuning=tuning, monitor_config=monitor_config)


def replay(
    scenario: Scenario,
    seed: int | None = None,
    *,
    tuning: Tuning | None = None,
    monitor_config: MonitorConfig | None = None,
    rules: Sequence[Rule] | None = None,
    diagnose: bool = True,
    rate_hz: float = 1.0,
) -> Iterator[PlantMessage]:
    """Yield every message of the run: Telemetry (with truth), AlertEvent, DiagnosisReport.

    Alert and diagnosis ids are derived from the scenario seed, so a replay is reproducible
    message for message. (A fleet of one: ``replay_fleet([scenario])``.)"""
    if seed is not None:
        scenario = scenario.model_copy(update={"seed": int(seed)})
    yield from replay_fleet(
        [scenario],
        tuning=tuning,
        monitor_config=monitor_config,
        rules=rules,
        diagnose=diagnose,
        rate_hz=rate_hz,
    )


def replay_fleet(
    scenarios: Sequence[Scenario],
    *,
    tuning: Tuning | None = None,
    monitor_config: MonitorConfig | None = None,
    rules: Sequence[Rule] | None = None,
    diagnose: bool = True,
    rate_hz: float = 1.0,
    telemetry: bool = True,
) -> Iterator[PlantMessage]:
    """Play one scenario per asset (each with its own seed and asset id, e.g. from
    ``engine.plant.fleet``) in lock-step and yield every message, tick by tick: the tick's
    telemetry of every asset, then the alerts and diagnoses it caused. Assets whose scenario is
    shorter stop publishing at its end; the run ends with the longest.

    ``telemetry=False`` leaves the telemetry out of the output (a large fleet's stream is mostly
    telemetry and the caller may not want to hold it); the agents get it all the same."""
    assets = [s.asset for s in scenarios]
    if len(set(assets)) != len(assets):
        raise ValueError("every scenario of a fleet needs its own asset id (see as_fleet)")
    ticks = fleet_ticks(scenarios, rate_hz)
    seed = scenarios[0].seed
    prefix = f"r{seed}" if len(scenarios) == 1 else f"f{seed}n{len(scenarios)}"
    monitor, agent = _agents(prefix, tuning, monitor_config, rules, diagnose)
    batch = getattr(monitor, "feed_batch", None)
    for tick in ticks:
        if telemetry:
            yield from tick
        alerts: list[AlertEvent] = []
        if batch is not None:
            alerts = batch(tick)
            if agent is not None:
                yield from agent.feed_batch(tick)
        else:
            for t in tick:
                alerts += monitor.feed(t)
                if agent is not None:
                    yield from agent.feed(t)
        for a in alerts:
            yield a
            if agent is not None:
                yield from agent.feed(a)
    if agent is not None:
        yield from agent.flush()


FLEET_SIMULATOR_FROM = 16
"""From this many pumps the fleet is simulated as one numpy computation (``FleetSimulator``:
the same bytes, 2-3x less CPU at 1,000 pumps); below it, numpy's per-call overhead would cost
more than it saves, so each pump steps its own ``Simulator``."""


def fleet_ticks(scenarios: Sequence[Scenario], rate_hz: float) -> Iterator[Sequence[Telemetry]]:
    """Each tick's telemetry of every pump still running its scenario (from
    ``FLEET_SIMULATOR_FROM`` pumps a ``FleetTick``: its messages are built only if read)."""
    if len(scenarios) >= FLEET_SIMULATOR_FROM:
        fleet = FleetSimulator(scenarios, rate_hz=rate_hz)
        while fleet_tick := fleet.step_tick():
            yield fleet_tick
        return
    running = [Simulator(s, rate_hz=rate_hz) for s in scenarios]
    while running:
        tick = [m for m in (sim.step() for sim in running) if m is not None]
        running = [s for s in running if not s.done]
        yield tick
