"""The pump's instruments: names, units, display ranges and how each transmitter misbehaves.

One table that every part reads: the simulator (noise, resolution, how far a drift at severity 1
goes), scenario validation (which names a sensor fault may target), the monitor (which names
mean "this is our pump") and the TUI (units and a fixed, sensible range for each sparkline).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass


@dataclass(frozen=True)
class SignalSpec:
    name: str
    unit: str
    lo: float
    """Fixed display range (TUI sparklines, reports): what a healthy-to-failing pump spans."""
    hi: float
    label: str
    description: str
    decimals: int
    """Resolution of the transmitter as published (digits after the point)."""
    noise_sd: float
    """Measurement noise, one standard deviation per 1 Hz sample (multiplicative when
    ``relative_noise``: a fraction of the reading)."""
    drift_full: float = 0.0
    """Offset a ``sensor_drift`` of severity 1 adds (engineering units); 0 = not a sensor."""
    relative_noise: bool = False
    floor: float = 0.0
    """Physical lower bound of the reading (a current or a flow meter does not read negative)."""
    plausible: tuple[float, float] = (-1e9, 1e9)
    """What the transmitter can possibly report (its range with margin; contract C4). A reading
    outside it is not a process value but a broken or forged one: pump telemetry carrying it is
    rejected at the schema and dead-lettered, so it never reaches a detector."""
    limit: float | None = None
    """Engineering limit the work order names (an alarm past it is CRITICAL): ISO 10816-3 zone
    C/D for vibration, the bearing's trip temperature. None: the signal has no such limit."""

    @property
    def is_sensor(self) -> bool:
        """True for transmitters that can drift, stick or get noisy (not commands)."""
        return self.drift_full > 0.0


# One row per instrument, in telemetry order. Columns: unit, label, display lo and hi, decimals,
# noise sd, drift at severity 1 (0: a command, not a sensor), plausible (lo, hi).
_TABLE: dict[str, tuple[str, str, float, float, int, float, float, tuple[float, float]]] = {
    "flow": ("m³/h", "Flow", 0.0, 140.0, 2, 0.5, 30.0, (-10.0, 1000.0)),
    "suction_pressure": ("bar", "Suction P", 0.0, 3.0, 3, 0.01, 1.5, (-1.1, 25.0)),
    "discharge_pressure": ("bar", "Discharge P", 0.0, 9.0, 3, 0.02, 3.0, (-1.1, 60.0)),
    "bearing_temp": ("°C", "Bearing T", 20.0, 100.0, 2, 0.1, 25.0, (-50.0, 300.0)),
    "ambient_temp": ("°C", "Ambient T", 0.0, 45.0, 2, 0.05, 20.0, (-60.0, 80.0)),
    "vibration": ("mm/s", "Vibration", 0.0, 8.0, 3, 0.03, 4.0, (0.0, 100.0)),
    "motor_current": ("A", "Current", 0.0, 50.0, 2, 0.15, 12.0, (-1.0, 500.0)),
    "power": ("kW", "Power", 0.0, 30.0, 3, 0.08, 6.0, (-5.0, 250.0)),
    "speed": ("rpm", "Speed", 0.0, 3300.0, 1, 1.5, 300.0, (-100.0, 6000.0)),
    "valve_cmd": ("%", "Valve cmd", 0.0, 100.0, 1, 0.0, 0.0, (-5.0, 105.0)),
}
_DESCRIPTIONS = {
    "flow": "Discharge flow (magnetic flow meter, 1 s damping)",
    "suction_pressure": "Pump suction pressure, gauge",
    "discharge_pressure": "Pump discharge pressure, gauge (upstream of the control valve)",
    "bearing_temp": "Drive-end bearing temperature (RTD)",
    "ambient_temp": "Pump-room air temperature",
    "vibration": "Bearing housing vibration, broadband RMS velocity (ISO 10816-3)",
    "motor_current": "Motor phase current (VFD output)",
    "power": "Electrical input power (VFD input)",
    "speed": "Motor speed (VFD feedback)",
    "valve_cmd": "Discharge control valve opening command from the DCS (no position feedback)",
}
_RELATIVE_NOISE = {"vibration"}
"""Vibration noise scales with the reading (a fraction of it), the others are absolute."""
_LIMITS = {"bearing_temp": 85.0, "vibration": 4.5}
"""ISO 10816-3 zone C/D for vibration; the bearing's trip temperature."""

_SPECS = tuple(
    SignalSpec(
        name,
        unit,
        lo,
        hi,
        label,
        _DESCRIPTIONS[name],
        decimals=decimals,
        noise_sd=noise_sd,
        drift_full=drift_full,
        relative_noise=name in _RELATIVE_NOISE,
        plausible=plausible,
        limit=_LIMITS.get(name),
    )
    for name, (unit, label, lo, hi, decimals, noise_sd, drift_full, plausible) in _TABLE.items()
)

SIGNALS: dict[str, SignalSpec] = {s.name: s for s in _SPECS}
PLAUSIBLE: dict[str, tuple[float, float]] = {s.name: s.plausible for s in _SPECS}
"""Per-signal plausible ranges of the pump's instruments (contract C4)."""
LIMITS: dict[str, float] = {s.name: s.limit for s in _SPECS if s.limit is not None}
"""Engineering limits the work orders name: past one, an alert is CRITICAL."""
SIGNAL_ORDER: tuple[str, ...] = tuple(SIGNALS)
"""The order signals appear in every telemetry message (stable, so output is byte-identical)."""
SENSORS: tuple[str, ...] = tuple(s.name for s in _SPECS if s.is_sensor)
"""Channels an instrument fault (drift / stuck / noise burst) may target."""


def is_pump(signal_names: object) -> bool:
    """True when a message carries every pump signal, so physics-aware checks apply."""
    try:
        if not isinstance(signal_names, Container):
            return False
        return all(name in signal_names for name in SIGNAL_ORDER)
    except TypeError:  # a container that refuses str keys
        return False
