"""What the running scenario is about to show, for the scenario line ("bearing wear developing;
first alarm expected in ~15 s").

The simulator is deterministic (same scenario and seed, same telemetry) and the live monitor is
the same object replay runs, so the first alarm's simulated time is *computed*, not guessed:
the scenario is replayed (simulator + monitor only, no diagnosis) until the first alert. That
takes well under a second for a fault in the first hours; the TUI runs it in a worker thread
once per (scenario, seed). A scenario this host does not have (the simulator may run elsewhere)
or one without faults gives no forecast.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

HORIZON_S = 6 * 3600.0
"""Replay at most this much plant time looking for the first alarm."""


class Hint(NamedTuple):
    long: str
    """E.g. 'bearing wear developing; first alarm expected in ~15 s'."""
    short: str
    """E.g. 'bearing wear: alarm in ~15 s' (for an 80-column line)."""


@dataclass(frozen=True)
class Forecast:
    fault: str
    """The first injected fault's type (``bearing_wear``)."""
    onset_ts: float
    first_alarm_ts: float | None
    """Simulated time of the first alert the monitor raises (None: none within the horizon)."""

    def hint(self, sim_time: float, speed: float) -> Hint | None:
        """What to show while the alarm is still ahead (None once it is due)."""
        fault = self.fault.replace("_", " ")
        if self.first_alarm_ts is None or sim_time >= self.first_alarm_ts or speed <= 0:
            return None
        eta = max((self.first_alarm_ts - sim_time) / speed, 0.0)
        state = "developing" if sim_time >= self.onset_ts else "due"
        return Hint(
            f"{fault} {state}; first alarm expected in ~{eta:.0f} s",
            f"{fault}: alarm in ~{eta:.0f} s",
        )


def forecast(name: str, seed: int | None) -> Forecast | None:
    """Replay scenario ``name`` (a name under scenarios/ or a file on this host) with ``seed``
    (None: the scenario's own) until its first alert. None when the scenario cannot be read
    here or injects no fault. Cached: ``controlroom demo`` calls it while the stack starts, so
    the TUI has the answer for its first frame."""
    from engine.plant.scenario import load_scenario

    try:
        scenario = load_scenario(name)
    except Exception:  # not on this host, or unreadable: no forecast, not an error
        return None
    return _forecast(name, scenario.seed if seed is None else seed)


@functools.lru_cache(maxsize=16)
def _forecast(name: str, seed: int | None) -> Forecast | None:
    from engine.agents.monitor import Monitor
    from engine.plant.scenario import load_scenario
    from engine.plant.simulator import Simulator
    from engine.schemas import AlertEvent

    scenario = load_scenario(name)
    if not scenario.faults:
        return None
    first = min(scenario.faults, key=lambda f: f.onset_s)
    sim = Simulator(scenario, seed=seed)
    monitor = Monitor(id_prefix="forecast")
    for t in sim.run():
        if t.ts > HORIZON_S:
            break
        if any(isinstance(a, AlertEvent) for a in monitor.feed(t)):
            return Forecast(first.type, first.onset_s, t.ts)
    return Forecast(first.type, first.onset_s, None)
