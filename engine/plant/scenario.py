"""Scenario scripts: what the operator does and which faults strike when (JSON in ``scenarios/``).

A scenario is data, validated here before anything runs, so a typo fails with the file and the
field (``faults[1].sensor: unknown sensor 'flw'``) instead of silently producing a healthy run.

Fault semantics (``severity`` is the peak, 0 < s ≤ 1, 1 = failure; it is reached ``ramp_s`` after
``onset_s``, linearly, and the fault disappears ``duration_s`` after onset, or never):

- ``bearing_wear``: wear d = s — bearing-defect vibration (8 mm/s at s = 1), friction power
  (2.5 kW) and friction heat (+40 °C at the bearing).
- ``clogging``: discharge strainer fouling — extra resistance that cuts the reference flow by
  55 %·s (flow down, discharge pressure up, power and current down).
- ``valve_stuck``: valve stiction — the plug stays put until the command moves more than
  100·s %-points away (s = 1: it never moves). Only observable when the command moves.
- ``sensor_drift``: offset ``s × drift_full`` on ``sensor`` (see ``engine.plant.signals``).
- ``sensor_stuck``: ``sensor`` freezes at its value at onset; s is the scenario's consequence
  rating (the channel is frozen whatever s is).
- ``noise_burst``: extra noise of (19·s) × the sensor's normal noise on ``sensor``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.paths import SCENARIOS_DIR, read_small_file
from engine.plant.signals import SENSORS
from engine.schemas import AssetId, FaultName

if TYPE_CHECKING:
    from engine.plant.pump import PumpDesign

SENSOR_FAULTS = ("sensor_drift", "sensor_stuck", "noise_burst")
SUDDEN_RAMP_S = 120.0
"""A fault that reaches its peak within this many seconds counts as *sudden*, otherwise
*gradual* (the evaluation reports latency for the first, severity at detection for the second)."""
MAX_DURATION_S = 30 * 86400.0

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FaultSpec(_Model):
    type: FaultName
    onset_s: float = Field(ge=0.0)
    severity: float = Field(gt=0.0, le=1.0)
    ramp_s: float = Field(default=0.0, ge=0.0)
    """Seconds from onset to peak severity (0 = step)."""
    duration_s: float | None = Field(default=None, gt=0.0)
    """Seconds the fault lasts from onset (None: until the end)."""
    sensor: str | None = None
    note: str = Field(default="", max_length=500)

    @field_validator("sensor")
    @classmethod
    def _known_sensor(cls, v: str | None) -> str | None:
        if v is not None and v not in SENSORS:
            raise ValueError(f"unknown sensor {v!r} (known: {', '.join(SENSORS)})")
        return v

    @model_validator(mode="after")
    def _sensor_iff_instrument(self) -> FaultSpec:
        if self.type in SENSOR_FAULTS and self.sensor is None:
            raise ValueError(f"sensor: required for {self.type} (one of: {', '.join(SENSORS)})")
        if self.type not in SENSOR_FAULTS and self.sensor is not None:
            raise ValueError(f"sensor: not allowed for {self.type} (a process fault)")
        return self

    @property
    def end_s(self) -> float:
        return float("inf") if self.duration_s is None else self.onset_s + self.duration_s

    @property
    def sudden(self) -> bool:
        return self.ramp_s <= SUDDEN_RAMP_S

    def severity_at(self, t: float) -> float:
        if t < self.onset_s or t >= self.end_s:
            return 0.0
        if self.ramp_s <= 0.0:
            return self.severity
        return self.severity * min(1.0, (t - self.onset_s) / self.ramp_s)


class Manoeuvre(_Model):
    """A normal operator action (never a fault): the monitor must stay quiet through it."""

    at_s: float = Field(ge=0.0)
    kind: Literal["valve", "speed", "demand", "start", "stop"]
    target_pct: float | None = Field(default=None, ge=0.0, le=110.0)
    """valve: opening command %, speed: % of rated speed."""
    flow_m3h: float | None = Field(default=None, gt=0.0, le=150.0)
    """demand: the flow the operator sets the valve for (on the design curves)."""
    ramp_s: float = Field(default=10.0, ge=0.0, le=3600.0)
    note: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _params(self) -> Manoeuvre:
        if self.kind == "valve":
            if self.target_pct is None or not 5.0 <= self.target_pct <= 100.0:
                raise ValueError("target_pct: a valve move needs target_pct in 5..100")
        elif self.kind == "speed":
            if self.target_pct is None or not 40.0 <= self.target_pct <= 110.0:
                raise ValueError("target_pct: a speed change needs target_pct in 40..110")
        elif self.kind == "demand":
            if self.flow_m3h is None:
                raise ValueError("flow_m3h: a demand change needs flow_m3h")
        elif self.target_pct is not None or self.flow_m3h is not None:
            raise ValueError(f"{self.kind} takes no target_pct / flow_m3h")
        return self


class InitialState(_Model):
    running: bool = True
    speed_pct: float = Field(default=100.0, ge=40.0, le=110.0)
    valve_pct: float = Field(default=80.0, ge=5.0, le=100.0)


Factor = Annotated[float, Field(ge=0.5, le=1.5)]


class Datasheet(_Model):
    """Another pump model than the nominal one (``apply``): multipliers on its head, rated
    flow, best efficiency, bearing thermal time constant and bearing rise. The monitor is not
    told; it must learn the pump from its warm-up."""

    head: Factor = 1.0
    flow: Factor = 1.0
    efficiency: Factor = 1.0
    thermal_tau: Factor = 1.0
    bearing_rise: Factor = 1.0

    def apply(self, design: PumpDesign) -> PumpDesign:
        """``design`` (the nominal ``DESIGN``) as this pump model in the same loop: its curve's
        head (shut-off and rated) and rated flow, its best efficiency (at most 92 %) and its
        bearing's thermal time constant and temperature rise multiplied by these factors. The
        loop's losses stay the losses of the same pipework at the pump's rated flow (the plant
        was laid out for the pump it has)."""
        return replace(
            design,
            rated_head_m=design.rated_head_m * self.head,
            shutoff_head_m=design.shutoff_head_m * self.head,
            rated_flow_m3h=design.rated_flow_m3h * self.flow,
            bep_efficiency=min(0.92, design.bep_efficiency * self.efficiency),
            thermal_tau_s=design.thermal_tau_s * self.thermal_tau,
            bearing_rise_c=design.bearing_rise_c * self.bearing_rise,
        )


class Scenario(_Model):
    name: Name = "unnamed"
    description: str = Field(default="", max_length=2000)
    asset: AssetId = "pump01"
    duration_s: float = Field(gt=0.0, le=MAX_DURATION_S)
    seed: int = Field(default=0, ge=0)
    """Seed used when the caller gives none."""
    ambient_c: float = Field(default=25.0, ge=-20.0, le=50.0)
    datasheet: Datasheet | None = None
    """The pump model, when it is not the nominal datasheet (perturbed-pump suites)."""
    initial: InitialState = Field(default_factory=InitialState)
    manoeuvres: list[Manoeuvre] = Field(default_factory=list, max_length=10_000)
    faults: list[FaultSpec] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _within_run(self) -> Scenario:
        for i, f in enumerate(self.faults):
            if f.onset_s >= self.duration_s:
                raise ValueError(
                    f"faults[{i}].onset_s: onset {f.onset_s:g} s is past the end "
                    f"(duration_s {self.duration_s:g})"
                )
        for i, m in enumerate(self.manoeuvres):
            if m.at_s > self.duration_s:
                raise ValueError(
                    f"manoeuvres[{i}].at_s: {m.at_s:g} s is past the end "
                    f"(duration_s {self.duration_s:g})"
                )
        return self


# -------------------------------------------------------------------------------------------
# Loading
# -------------------------------------------------------------------------------------------


def format_validation_error(where: str, exc: ValidationError) -> str:
    """``where: faults[1].sensor: unknown sensor 'flw' ...`` — one line per problem."""
    lines = []
    for e in exc.errors(include_url=False):
        loc = ""
        for part in e.get("loc", ()):
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{where}: {loc}: {msg}" if loc else f"{where}: {msg}")
    return "\n".join(lines) or f"{where}: invalid scenario"


def resolve_scenario_path(path_or_name: str | Path) -> Path:
    p = Path(path_or_name)
    if p.suffix == ".json" or p.exists() or "/" in str(path_or_name):
        return p
    return SCENARIOS_DIR / f"{path_or_name}.json"


def parse_scenario(data: object, where: str, default_name: str | None = None) -> Scenario:
    if isinstance(data, dict) and "name" not in data and default_name:
        data = {**data, "name": default_name}
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(where, exc)) from None


def load_scenario(path_or_name: str | Path) -> Scenario:
    """A scenario from a JSON file, or by bare name from ``scenarios/`` ("chronic_wear")."""
    path = resolve_scenario_path(path_or_name)
    if not path.exists():
        known = ", ".join(list_scenarios()) or "none"
        raise ScenarioError(f"{path_or_name}: no such scenario file (known names: {known})")
    try:
        text = read_small_file(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ScenarioError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a JSON object, got {type(data).__name__}")
    return parse_scenario(data, str(path), default_name=path.stem)


def list_scenarios() -> list[str]:
    """Names of the pump scenarios shipped in ``scenarios/`` (factory configs excluded)."""
    if not SCENARIOS_DIR.is_dir():
        return []
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.json"))


def save_scenario(scenario: Scenario, path: Path) -> None:
    path.write_text(scenario.model_dump_json(indent=2, exclude_defaults=False) + "\n", "utf-8")
