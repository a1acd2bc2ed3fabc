"""One consistent centrifugal pump in a loop: its datasheet and the physics that ties it together.

The plant: a single-stage end-suction pump, 100 m³/h at 50 m, 2950 rpm, driven through a VFD by a
22 kW 400 V 2-pole motor, lifting water from a supply tank into a header through a strainer,
piping and an equal-percentage control valve. Every signal comes from the same few equations:

- pump curve ``H = H0·n² − a·Q²`` (affinity laws: n is speed / rated speed);
- system curve ``P_dis = P_dest + (k_line + k_valve(x) + k_clog)·Q²`` (pressures in bar);
- suction ``P_suc = P_tank − k_s·Q²``;
- shaft power ``n³·P1(Q/n)`` with ``P1`` rising linearly with flow from 45 % at shut-off (a radial
  pump: power and current *fall* when throttled), plus bearing friction that grows with wear;
- motor current ``√(I_mag² + I_torque²)`` with the torque current ∝ power / speed (V/f drive);
- bearing temperature: first-order lag (10 min) towards ambient + load rise + friction heat;
- vibration RMS: running-speed vibration ∝ n², worse away from the best-efficiency point, plus
  bearing-defect vibration from wear, added in quadrature (ISO 10816-3 zones A/B 1.4, B/C 2.8,
  C/D 4.5 mm/s).

The simulator runs a *perturbed* copy of this design (each seed is a slightly different unit:
±1–25 % on the coefficients); the monitor and diagnosis know only the nominal datasheet and learn
the unit's offsets online. The functions accept floats or numpy arrays alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import Any

import numpy as np

BAR_PER_M = 1000.0 * 9.80665 / 1e5
"""Water: 1 m of head = 0.0981 bar."""
SQRT3 = math.sqrt(3.0)

Num = Any  # float or numpy array


def _floor(x: Num, lo: float) -> Num:
    return np.maximum(x, lo) if isinstance(x, np.ndarray) else max(x, lo)


@dataclass(frozen=True)
class PumpDesign:
    """Datasheet and design values (SI-ish plant units: m³/h, m, bar, kW, A, °C, mm/s)."""

    # Pump
    rated_speed_rpm: float = 2950.0
    """Speed at 100 % drive output, rpm: a 2-pole motor on 50 Hz (3000 rpm synchronous, less
    ~1.7 % slip). Every speed is a fraction ``n`` of it (the agents divide the ``speed`` signal
    by it)."""
    rated_flow_m3h: float = 100.0
    """The duty point's flow, m³/h, taken as the best-efficiency point: the losses below are
    quoted at it, and vibration grows with the distance from it (``vibration_mm_s``)."""
    rated_head_m: float = 50.0
    """Head at rated flow and speed, m; with ``shutoff_head_m`` it fixes the curve's droop
    ``a`` (50 m at 100 m³/h: the datasheet's duty point)."""
    shutoff_head_m: float = 65.0
    """Head at zero flow and rated speed (``H0``), m: 1.3 × the rated head, a typical radial
    impeller's rise to shut-off."""
    bep_efficiency: float = 0.78
    """Hydraulic power / shaft power at the rated point; sets the rated shaft power (13.6 kW
    hydraulic / 0.78 = 17.5 kW), and with it power and current at every point."""
    shutoff_power_frac: float = 0.45
    """Shaft power at zero flow as a fraction of the rated shaft power (same speed): a radial
    pump's power rises linearly with flow from here, so throttling lowers power and current."""
    # Motor and drive
    motor_rated_kw: float = 22.0
    """Nameplate rating, kW: ~80 % loaded at the rated point (17.5 kW shaft), with room for the
    power rising with flow (21.3 kW at 140 m³/h, the flow signal's top). No equation reads it."""
    motor_voltage_v: float = 400.0
    """Line voltage at rated speed, V (three-phase): every current is a power / (√3·V…), such
    as the rated 31.7 A = motor input power / (√3·V·PF)."""
    motor_efficiency: float = 0.925
    """Motor shaft power / electrical input, taken as constant (about IE3 class at 22 kW)."""
    vfd_efficiency: float = 0.97
    """Drive output / input, constant; the ``power`` signal is measured at the drive's input."""
    rated_pf: float = 0.86
    """Power factor at the rated point; sets the magnetising current, √(1 − PF²) of the rated
    current (16.2 of 31.7 A), which stays when the load falls (V/f drive)."""
    vfd_ramp_s: float = 10.0
    """Time for the drive to ramp 0 → 100 % speed."""
    # Loop
    tank_pressure_bar: float = 1.5
    """Supply tank pressure at the pump's suction, bar(g), before the suction-line loss; the
    simulator adds a slow wander (±0.03 bar) and each unit an offset (±0.1 bar)."""
    suction_loss_bar: float = 0.2
    """Suction-line loss at rated flow."""
    dest_pressure_bar: float = 3.0
    """Header pressure plus static lift the discharge line works against."""
    line_loss_bar: float = 1.6
    """Discharge-line loss at rated flow, valve excluded."""
    valve_loss_bar: float = 1.6
    """Valve loss at rated flow and ``valve_ref_open`` opening."""
    valve_ref_open: float = 0.8
    """The opening (0..1) at which ``valve_loss_bar`` is quoted: the normal operating point
    (80 % open gives 100 m³/h), also the reference for the strainer's clog severity."""
    valve_rangeability: float = 25.0
    """Equal-percentage valve: the flow coefficient goes as 25^(x − 1) of fully open at opening x
    (each 10 % of travel multiplies it by 25^0.1 ≈ 1.38), a usual globe-valve figure."""
    valve_slew_pct_s: float = 5.0
    """Actuator speed, % of travel per second: a 20 s full stroke, so a valve command is
    followed within seconds."""
    fluid_tau_s: float = 1.0
    """Time constant, s, with which the flow approaches the steady operating point (the
    water's inertia in the loop); the monitor's model lags its prediction the same."""
    # Bearing
    ambient_c: float = 25.0
    """The room the bearing rise is quoted for, °C (≈ 53 °C bearing at rated speed). Not read
    by the physics: a run takes its ambient from the scenario (same default)."""
    bearing_rise_c: float = 28.0
    """Bearing temperature above ambient at rated speed, healthy."""
    wear_rise_c: float = 40.0
    """Extra rise at wear 1 (failure) and rated speed."""
    thermal_tau_s: float = 600.0
    """The bearing temperature's first-order lag, s (10 min): why a worn bearing's temperature
    trails its vibration by minutes; the monitor's thermal model uses the same."""
    wear_friction_kw: float = 2.5
    """Extra bearing friction at wear 1 and rated speed."""
    # Vibration
    vib_base_mm_s: float = 1.6
    """Running-speed vibration RMS at the rated point, mm/s, ∝ n²: just inside ISO 10816-3
    zone B (A/B at 1.4; zone A is for newly commissioned machines), a healthy pump in service."""
    vib_offbep: float = 0.8
    """Weight of the squared off-BEP distance ``(Q/Q_rated − n)²`` in the running vibration:
    throttled to 45 % flow at full speed a healthy pump shows ~2.0 mm/s instead of 1.6."""
    vib_background_mm_s: float = 0.1
    """Vibration from the surroundings (pipework, other machines), mm/s, added in quadrature:
    what the transmitter reads with the pump stopped."""
    wear_vib_mm_s: float = 8.0
    """Bearing-defect vibration at wear 1 and rated speed, mm/s, ∝ wear·n², added in
    quadrature: past zone C/D (4.5) from wear ~0.53, so a failing bearing trips the ISO limit."""

    # ---------------------------------------------------------------- derived coefficients

    @cached_property
    def a(self) -> float:
        """Pump-curve droop, m per (m³/h)²."""
        return (self.shutoff_head_m - self.rated_head_m) / self.rated_flow_m3h**2

    @cached_property
    def k_suction(self) -> float:
        return self.suction_loss_bar / self.rated_flow_m3h**2

    @cached_property
    def k_line(self) -> float:
        return self.line_loss_bar / self.rated_flow_m3h**2

    @cached_property
    def k_valve_open(self) -> float:
        """Valve resistance fully open, bar per (m³/h)²."""
        f = self.valve_rangeability ** (self.valve_ref_open - 1.0)
        return float(self.valve_loss_bar / self.rated_flow_m3h**2 * f * f)

    @cached_property
    def rated_shaft_kw(self) -> float:
        q = self.rated_flow_m3h / 3600.0
        return 1000.0 * 9.80665 * q * self.rated_head_m / self.bep_efficiency / 1000.0

    @cached_property
    def rated_elec_kw(self) -> float:
        return self.rated_shaft_kw / (self.motor_efficiency * self.vfd_efficiency)

    @cached_property
    def rated_current_a(self) -> float:
        motor_in = self.rated_shaft_kw / self.motor_efficiency
        return motor_in * 1000.0 / (SQRT3 * self.motor_voltage_v * self.rated_pf)

    @cached_property
    def magnetizing_current_a(self) -> float:
        return self.rated_current_a * math.sqrt(1.0 - self.rated_pf**2)

    @cached_property
    def clog_reference(self) -> float:
        """Total loop resistance seen by the flow at the reference point (for clog severity)."""
        k_valve = float(self.k_valve(self.valve_ref_open))
        return self.k_suction + BAR_PER_M * self.a + self.k_line + k_valve

    # ---------------------------------------------------------------- physics

    def k_valve(self, x: Num) -> Num:
        """Equal-percentage valve: resistance at opening x (0..1)."""
        f = self.valve_rangeability ** (x - 1.0)
        return self.k_valve_open / (f * f)

    def k_clog(self, severity: float) -> float:
        """Extra resistance of a clogged strainer; severity s cuts the reference flow by 55 %·s."""
        return self.clog_reference * (1.0 / (1.0 - 0.55 * severity) ** 2 - 1.0)

    def head_m(self, q: Num, n: Num) -> Num:
        return self.shutoff_head_m * n * n - self.a * q * q

    def operating_flow(
        self, n: float, x: float, k_extra: float, p_tank: float, p_dest: float
    ) -> float:
        """Steady-state flow where pump and system curves meet (0 when the pump cannot open the
        check valve against the header)."""
        drive = p_tank - p_dest + BAR_PER_M * self.shutoff_head_m * n * n
        if drive <= 0.0:
            return 0.0
        k = self.k_suction + BAR_PER_M * self.a + self.k_line + self.k_valve(x) + k_extra
        return math.sqrt(drive / k)

    def shaft_kw(self, q: Num, n: Num, wear: Num = 0.0) -> Num:
        f0 = self.shutoff_power_frac
        hydraulic = self.rated_shaft_kw * (f0 * n**3 + (1.0 - f0) * n * n * q / self.rated_flow_m3h)
        return hydraulic + self.wear_friction_kw * wear * n

    def elec_kw(self, shaft_kw: Num) -> Num:
        return shaft_kw / (self.motor_efficiency * self.vfd_efficiency)

    def current_a(self, elec_kw: Num, n: Num) -> Num:
        """Motor current from input power and speed; 0 when the drive is not energised."""
        motor_in = elec_kw * self.vfd_efficiency
        torque_a = motor_in * 1000.0 / (SQRT3 * self.motor_voltage_v * _floor(n, 0.05))
        energised = n > 0.02
        return energised * (self.magnetizing_current_a**2 + torque_a * torque_a) ** 0.5

    def vibration_mm_s(self, q: Num, n: Num, wear: Num = 0.0) -> Num:
        off = q / self.rated_flow_m3h - n  # = n·(q/n/Q_rated − 1): off-BEP without dividing by n
        running = self.vib_base_mm_s * (n * n + self.vib_offbep * off * off)
        defect = self.wear_vib_mm_s * wear * n * n
        return (self.vib_background_mm_s**2 + running * running + defect * defect) ** 0.5

    def bearing_equilibrium_c(self, ambient: Num, n: Num, wear: Num = 0.0) -> Num:
        n = _floor(n, 0.0)
        return ambient + self.bearing_rise_c * n**1.5 + self.wear_rise_c * wear * n

    def efficiency(self, q: float, n: float, wear: float = 0.0) -> float:
        """Overall pump efficiency (hydraulic power / shaft power incl. bearing friction)."""
        shaft = self.shaft_kw(q, n, wear)
        if shaft <= 1e-9 or q <= 0.0:
            return 0.0
        hyd = 1000.0 * 9.80665 * (q / 3600.0) * self.head_m(q, n) / 1000.0
        return max(0.0, float(hyd / shaft))

    def valve_for_flow(self, flow: float, n: float, p_tank: float, p_dest: float) -> float:
        """Valve opening (0..1) giving ``flow`` at speed n on the design curves (what an operator
        or a flow controller would set); clamped to 10..100 %."""
        drive = p_tank - p_dest + BAR_PER_M * self.shutoff_head_m * n * n
        if flow <= 0.0 or drive <= 0.0:
            return 0.1
        kv = drive / flow**2 - (self.k_suction + BAR_PER_M * self.a + self.k_line)
        if kv <= self.k_valve_open:
            return 1.0
        f = math.sqrt(self.k_valve_open / kv)
        return min(1.0, max(0.1, 1.0 + math.log(f) / math.log(self.valve_rangeability)))

    # ---------------------------------------------------------------- unit-to-unit spread

    def perturbed(self, rng: np.random.Generator) -> PumpDesign:
        """A real unit off the same datasheet: manufacturing and installation spread."""
        spread = {
            "shutoff_head_m": 0.01,
            "rated_head_m": 0.01,
            "bep_efficiency": 0.015,
            "shutoff_power_frac": 0.02,
            "rated_pf": 0.01,
            "line_loss_bar": 0.03,
            "valve_loss_bar": 0.03,
            "suction_loss_bar": 0.05,
            "bearing_rise_c": 0.04,
            "thermal_tau_s": 0.08,
            "vib_base_mm_s": 0.25,
            "wear_rise_c": 0.1,
            "wear_vib_mm_s": 0.1,
            "wear_friction_kw": 0.1,
        }
        names = [f.name for f in fields(self)]
        changes = {}
        for name in names:  # fixed order: same seed, same unit
            rel = spread.get(name)
            if rel:
                changes[name] = getattr(self, name) * (1.0 + rel * float(rng.uniform(-1, 1)))
        changes["dest_pressure_bar"] = self.dest_pressure_bar + 0.1 * float(rng.uniform(-1, 1))
        changes["tank_pressure_bar"] = self.tank_pressure_bar + 0.1 * float(rng.uniform(-1, 1))
        return replace(self, **changes)


DESIGN = PumpDesign()
"""The nominal datasheet every agent knows."""
