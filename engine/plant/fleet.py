"""Fleets: one scenario per pump, with the faults spread across the pumps (contract C7).

``fleet_scenarios(base, n_assets, seed)`` is what ``replay``/``eval --assets N``, ``demo --assets
N`` and the simulator service play. Pure and deterministic in (base, N, seed):

- pump 1 plays ``base`` itself (with ``seed`` as its seed), so a fleet of one is the scenario;
- pumps 2..N are other units of the same plant on the same shift: the base's length and ambient
  temperature, each its own seed (its own unit tolerances), its own starting point and operator
  manoeuvres (as in the random suites), and the faults spread across them: every fifth pump runs
  fault-free, the others get one fault each, the six fault types in turn, at random onsets,
  severities and ramps (the suite's ranges, ``engine.plant.suite``);
- pump k is the same pump whatever N is (a fleet of 100 is the fleet of 10 plus 90 pumps);
- asset ids are the base asset's letters plus a number zero-padded to the width of N (at least
  two digits): ``pump01..pump10``, ``pump0001..pump1000``.

``as_fleet(scenarios)`` gives a list of scenarios (a suite, say) distinct asset ids, so they can
play as one fleet.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from engine.plant.scenario import FaultSpec, Scenario
from engine.plant.suite import _fault, _manoeuvres, _r, _unstick_move, _valve_at
from engine.schemas import FAULTS

FAULT_FREE_EVERY = 5
"""Every fifth pump of a fleet runs without a fault (20 %, as in the random suites)."""
_STREAM = 0xF1EE7


def asset_ids(n: int, prefix: str = "pump") -> list[str]:
    width = max(2, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def as_fleet(scenarios: Sequence[Scenario], prefix: str = "pump") -> list[Scenario]:
    """The same scenarios on distinct assets ``{prefix}01..``, in order."""
    ids = asset_ids(len(scenarios), prefix)
    return [s.model_copy(update={"asset": a}) for s, a in zip(scenarios, ids, strict=True)]


def fault_kind(k: int) -> str | None:
    """The fault pump ``k`` (1-based) of any fleet gets, None for a fault-free pump. Pump 1 plays
    the base scenario and is not asked."""
    if k % FAULT_FREE_EVERY == 0:
        return None
    return FAULTS[(k - 2 - k // FAULT_FREE_EVERY) % len(FAULTS)]


def fleet_scenarios(base: Scenario, n_assets: int, seed: int | None = None) -> list[Scenario]:
    """``n_assets`` scenarios, one per pump; see the module docstring."""
    if n_assets < 1:
        raise ValueError("a fleet needs at least one asset")
    seed = base.seed if seed is None else int(seed)
    first = base if seed == base.seed else base.model_copy(update={"seed": seed})
    if n_assets == 1:
        return [first]
    others = [_pump(base, seed, k) for k in range(2, n_assets + 1)]
    prefix = re.sub(r"[0-9_.\-]+$", "", base.asset) or "pump"
    return as_fleet([first, *others], prefix)


def _pump(base: Scenario, seed: int, k: int) -> Scenario:
    rng = np.random.default_rng([seed, _STREAM, k])
    duration = base.duration_s
    kind = fault_kind(k)
    faults: list[FaultSpec] = []
    if kind is not None:
        lo = min(2700.0, 0.3 * duration)
        hi = max(lo + 1.0, duration - min(3600.0, 0.3 * duration))
        faults.append(_fault(rng, kind, _r(rng, lo, hi), duration))
    initial = {
        "running": True,
        "speed_pct": round(_r(rng, 85, 100)),
        "valve_pct": round(_r(rng, 60, 95)),
    }
    moves = _manoeuvres(rng, duration, faults)
    for f in faults:
        if f.type == "valve_stuck":
            moves.append(_unstick_move(rng, f, _valve_at(initial, moves, f.onset_s)))
    moves.sort(key=lambda m: m.at_s)
    label = kind or "normal"
    return Scenario(
        name=f"{base.name}-f{seed}-{k:04d}-{label}"[:64],
        description=f"Pump {k} of a fleet around {base.name!r} (seed {seed}).",
        duration_s=duration,
        seed=int(rng.integers(0, 2**31 - 1)),
        ambient_c=base.ambient_c,
        initial=initial,
        manoeuvres=moves,
        faults=faults,
    )
