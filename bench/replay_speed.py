"""Replay speed: simulated seconds per wall second, one pump, one core.

Prints the figure for the simulator alone, for simulator + monitor + diagnosis (the chain
``controlroom replay`` and ``eval`` run), and for that chain plus JSONL encoding. Target: the full
chain at >= 10,000x real time, i.e. a simulated day in under 9 s.

    python bench/replay_speed.py            # one simulated day, 1 Hz
    python bench/replay_speed.py --hours 6  # shorter

The day has operator manoeuvres every ~45 min and a bearing that starts wearing at noon, so the
monitor's "episode active" path is exercised for half of it. CPU time is printed next to wall
time: on a shared machine the CPU figure is the one that measures the code.
"""

from __future__ import annotations

import argparse
import time

from engine.agent_files import load_rules
from engine.agents.diagnosis import DiagnosisAgent
from engine.agents.monitor import Monitor
from engine.evaluation.replay import envelope_line
from engine.plant.scenario import FaultSpec, Manoeuvre, Scenario
from engine.plant.simulator import Simulator


def bench_scenario(hours: float) -> Scenario:
    duration = hours * 3600.0
    moves = []
    t, i = 1800.0, 0
    kinds = [("valve", 65.0), ("speed", 90.0), ("valve", 85.0), ("speed", 100.0)]
    while t < duration - 600:
        kind, target = kinds[i % len(kinds)]
        moves.append(Manoeuvre(at_s=t, kind=kind, target_pct=target, ramp_s=30))  # type: ignore[arg-type]
        t += 2700.0
        i += 1
    fault = FaultSpec(
        type="bearing_wear", onset_s=duration / 2, ramp_s=duration / 2 - 600, severity=0.7
    )
    return Scenario(name="bench", duration_s=duration, seed=7, manoeuvres=moves, faults=[fault])


def run(scenario: Scenario, chain: bool, encode: bool) -> tuple[float, float, int, int]:
    sim = Simulator(scenario)
    monitor = Monitor(id_prefix="bench") if chain else None
    agent = DiagnosisAgent(load_rules()) if chain else None
    out = 0
    w0, c0 = time.perf_counter(), time.process_time()
    for t in sim.run():
        if encode:
            envelope_line(t)
        if monitor is None or agent is None:
            continue
        out += len(agent.feed(t))
        for a in monitor.feed(t):
            out += 1
            out += len(agent.feed(a))
    return time.perf_counter() - w0, time.process_time() - c0, sim.n_ticks, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=24.0)
    args = p.parse_args()
    scenario = bench_scenario(args.hours)
    sim_s = scenario.duration_s
    print(f"one pump, 1 Hz, {args.hours:g} simulated hours ({int(sim_s)} ticks)")
    for label, chain, encode in (
        ("simulator alone", False, False),
        ("simulator + monitor + diagnosis", True, False),
        ("  ... + JSONL encoding of telemetry", True, True),
    ):
        wall, cpu, _ticks, out = run(scenario, chain, encode)
        day = 86400.0 / sim_s
        print(
            f"{label:38} {sim_s / wall:9,.0f}x real time (wall)  {sim_s / cpu:9,.0f}x (CPU)  "
            f"simulated day in {wall * day:5.2f} s wall / {cpu * day:5.2f} s CPU"
            + (f"  [{out} alert/diagnosis messages]" if chain and not encode else "")
        )


if __name__ == "__main__":
    main()
