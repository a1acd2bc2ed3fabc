"""Display range, unit and label of each signal, from the plant's signal table.

``engine.plant.signals.SIGNALS`` gives every known signal a fixed, sensible range (what the
sparkline's bottom and top mean). A signal the table does not know (another plant publishing on
the same bus) still gets a stable scale: the first values seen, widened by half their spread on
each side, and then kept, so it does not rescale with every sample.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.plant.signals import SIGNALS
from tui.format import decimals_for


@dataclass(frozen=True)
class SignalDisplay:
    name: str
    label: str
    unit: str
    lo: float
    hi: float
    decimals: int
    known: bool = True


_learned: dict[str, SignalDisplay] = {}


def display_for(name: str, values: tuple[float, ...] = ()) -> SignalDisplay:
    spec = SIGNALS.get(name)
    if spec is not None:
        return SignalDisplay(
            name=name,
            label=spec.label,
            unit=spec.unit,
            lo=spec.lo,
            hi=spec.hi,
            decimals=min(spec.decimals, decimals_for(spec.lo, spec.hi)),
        )
    learned = _learned.get(name)
    if learned is not None or not values:
        return learned or SignalDisplay(name, name, "", 0.0, 1.0, 2, known=False)
    lo, hi = min(values), max(values)
    spread = max(hi - lo, abs(hi) * 0.1, 1e-6)
    lo, hi = lo - spread / 2, hi + spread / 2
    learned = SignalDisplay(name, name, "", lo, hi, decimals_for(lo, hi), known=False)
    if len(_learned) < 256:
        _learned[name] = learned
    return learned


_DERIVED = {"head": ("discharge_pressure", "suction_pressure")}
"""Derived quantities an alert may name, and the measured signals they come from."""


def measured_signals(name: str) -> set[str]:
    """The plant signals behind a name an alert uses: the name itself, or for a derived one
    such as the monitor's residual ``res.bearing_temp`` / ``res.current`` / ``res.head``, the
    measured signal(s) it is computed from, so those sparklines are marked."""
    if name in SIGNALS:
        return {name}
    base = name.rsplit(".", 1)[-1]
    if base in SIGNALS:
        return {base}
    if base in _DERIVED:
        return set(_DERIVED[base])
    return {s for s in SIGNALS if s.endswith("_" + base)} or {name}


def signal_order() -> list[str]:
    """Known signals in the plant table's order (process first, as the plant defines them)."""
    return list(SIGNALS)


def limits_for(name: str) -> tuple[tuple[float, str, str], ...]:
    """The engineering limit a trend draws for ``name`` (value, label, "warn" | "alarm"): the one
    declared with the signal (``SignalSpec.limit``: past it the monitor's alert goes CRITICAL
    and the work order names it). The monitor's own decisions are learned per asset; its
    episodes are marked on the trend."""
    spec = SIGNALS.get(name)
    if spec is None or spec.limit is None:
        return ()
    return ((spec.limit, "limit", "alarm"),)
