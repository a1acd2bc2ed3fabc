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


_SPECS = (
    SignalSpec(
        "flow",
        "m³/h",
        0.0,
        140.0,
        "Flow",
        "Discharge flow (magnetic flow meter, 1 s damping)",
        decimals=2,
        noise_sd=0.5,
        drift_full=30.0,
        floor=0.0,
        plausible=(-10.0, 1000.0),
    ),
    SignalSpec(
        "suction_pressure",
        "bar",
        0.0,
        3.0,
        "Suction P",
        "Pump suction pressure, gauge",
        decimals=3,
        noise_sd=0.01,
        drift_full=1.5,
        plausible=(-1.1, 25.0),
    ),
    SignalSpec(
        "discharge_pressure",
        "bar",
        0.0,
        9.0,
        "Discharge P",
        "Pump discharge pressure, gauge (upstream of the control valve)",
        decimals=3,
        noise_sd=0.02,
        drift_full=3.0,
        plausible=(-1.1, 60.0),
    ),
    SignalSpec(
        "bearing_temp",
        "°C",
        20.0,
        100.0,
        "Bearing T",
        "Drive-end bearing temperature (RTD)",
        decimals=2,
        noise_sd=0.1,
        drift_full=25.0,
        plausible=(-50.0, 300.0),
        limit=85.0,
    ),
    SignalSpec(
        "ambient_temp",
        "°C",
        0.0,
        45.0,
        "Ambient T",
        "Pump-room air temperature",
        decimals=2,
        noise_sd=0.05,
        drift_full=20.0,
        plausible=(-60.0, 80.0),
    ),
    SignalSpec(
        "vibration",
        "mm/s",
        0.0,
        8.0,
        "Vibration",
        "Bearing housing vibration, broadband RMS velocity (ISO 10816-3)",
        decimals=3,
        noise_sd=0.03,
        drift_full=4.0,
        relative_noise=True,
        floor=0.0,
        plausible=(0.0, 100.0),
        limit=4.5,
    ),
    SignalSpec(
        "motor_current",
        "A",
        0.0,
        50.0,
        "Current",
        "Motor phase current (VFD output)",
        decimals=2,
        noise_sd=0.15,
        drift_full=12.0,
        floor=0.0,
        plausible=(-1.0, 500.0),
    ),
    SignalSpec(
        "power",
        "kW",
        0.0,
        30.0,
        "Power",
        "Electrical input power (VFD input)",
        decimals=3,
        noise_sd=0.08,
        drift_full=6.0,
        floor=0.0,
        plausible=(-5.0, 250.0),
    ),
    SignalSpec(
        "speed",
        "rpm",
        0.0,
        3300.0,
        "Speed",
        "Motor speed (VFD feedback)",
        decimals=1,
        noise_sd=1.5,
        drift_full=300.0,
        floor=0.0,
        plausible=(-100.0, 6000.0),
    ),
    SignalSpec(
        "valve_cmd",
        "%",
        0.0,
        100.0,
        "Valve cmd",
        "Discharge control valve opening command from the DCS (no position feedback)",
        decimals=1,
        noise_sd=0.0,
        plausible=(-5.0, 105.0),
    ),
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
