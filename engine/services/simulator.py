"""simulator-service: plays scenarios (the pure ``engine.plant.simulator.Simulator``) onto
``telemetry/{bucket}/{asset}`` in paced wall time.

Pacing: ``speed`` simulated seconds per wall second, ``rate_hz`` samples per simulated second,
so ``speed * rate_hz`` ticks per wall second; every tick steps each loaded asset once. The run
thread publishes whatever ticks are due and sleeps until the next one, so a late wake-up catches
up instead of drifting; the telemetry itself does not depend on pacing (same scenario + seed,
same bytes). ``wall_time`` is stamped on publish (latency measurements downstream).

Several assets: ``--assets N`` plays a fleet around one scenario (``fleet_scenarios``: faults
spread, each pump its own seed; assets pump01, pump02, …), or ``--scenario a,b,c`` plays one
scenario per asset. At most ``CONTROLROOM_SIM_MAX_ASSETS`` (10,000 by default) pumps: beyond,
the load is refused naming the bound.

A fleet: ``CONTROLROOM_TELEMETRY_BATCH=N`` sends each tick as TelemetryBatch messages (up to N
samples of one bucket each) instead of one message per sample, and
``CONTROLROOM_TELEMETRY_LOG_EVERY`` samples the telemetry log (1: every sample, 0: none).

From ``FLEET_SIMULATOR_FROM`` (16) pumps a tick is one ``FleetSimulator`` computation for the
whole fleet (the same bytes as each pump's own ``Simulator``, a third of the CPU at 1,000
pumps); operator moves go through ``FleetSimulator.operate``.

The run thread holds the lock while it steps and publishes, and steps aside as soon as a control
call is waiting — between two assets (or, for a fleet, between two chunks of a tick's samples),
even in the middle of a tick (the tick resumes where it stopped) — so ``/scenario/stop``,
``/operator`` or SIGTERM wait for one asset's step or one fleet computation (~20 ms per 1,000
pumps), at any speed.

Over HTTP, a scenario is named (``scenarios/{name}.json``, only the shipped ones) or uploaded
in the body; a name is never turned into a path, so nothing else on the machine can be read.

Why one module of ~560 lines: the service is one run thread and the HTTP control calls that pause,
load, start and stop it under one lock; pacing (``Pacer``) and the fleet's stepping are small and
read with the loop they drive. The simulation itself is the pure ``engine/plant/`` package.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from fastapi import Body, HTTPException
from pydantic import ValidationError

from engine.bus.client import stamped
from engine.http_schemas import (
    ASSETS_SHOWN,
    LOAD_KEYS,
    LoadRequest,
    OperatorRequest,
    ScenarioList,
    ScenarioStatus,
    SimulatorHealth,
    StartRequest,
)
from engine.pydantic_compat import restamp
from engine.schemas import Telemetry, error_line
from engine.services.base import Service
from engine.services.settings import Settings

MAX_BATCH = 2000
"""Ticks caught up in one go before the pacer is consulted again."""
FLEET_CHUNK = 256
"""Fleet mode: samples published between two looks for a waiting control call."""
WRITABLE_WAIT_S = 0.05
"""Longest wait, holding the tick lock, for the bus to have room (``BusClient.wait_writable``)
before the tick lets a control call or a stop go first."""


class UnknownScenario(LookupError):
    """A name that is not one of the shipped scenarios."""


class Pacer:
    """Ticks due by wall time ``now`` at ``rate_hz * speed`` ticks/s; a speed change rebases so
    the tick count never jumps."""

    def __init__(self, rate_hz: float, speed: float, now: float, ticks: int = 0) -> None:
        self.rate_hz = rate_hz
        self.speed = speed
        self._t0 = now
        self._n0 = ticks

    @property
    def ticks_per_s(self) -> float:
        return self.rate_hz * self.speed

    def due(self, now: float) -> int:
        return self._n0 + int((now - self._t0) * self.ticks_per_s + 1e-9)

    def next_at(self, ticks: int) -> float:
        return self._t0 + (ticks + 1 - self._n0) / self.ticks_per_s

    def rebase(self, now: float, ticks: int, speed: float | None = None) -> None:
        if speed is not None:
            self.speed = speed
        self._t0, self._n0 = now, ticks


def asset_ids(base: str, n: int) -> list[str]:
    """``pump01`` x3 -> pump01, pump02, pump03 (zero padding kept); ``press`` -> press-1, …"""
    if n == 1:
        return [base]
    m = re.fullmatch(r"(.*?)(\d+)", base)
    if m:
        prefix, digits = m.groups()
        return [prefix + str(int(digits) + i).zfill(len(digits)) for i in range(n)]
    return [f"{base}-{i + 1}" for i in range(n)]


@dataclass
class AssetRun:
    asset: str
    scenario: str
    seed: int | None
    sim: Any
    done: bool = False


class SimulatorService(Service):
    name: ClassVar[str] = "simulator"
    title: ClassVar[str] = "simulator-service"
    health_model = SimulatorHealth

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.batch = settings.telemetry_batch
        self.log_every = settings.telemetry_log_every
        self._out: list[Telemetry] = []
        """A tick's samples waiting to go out as batches (batch mode)."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._controls_done = threading.Condition(self._waiting_lock)
        self._stop = False
        self.runs: list[AssetRun] = []
        self.loaded: dict[str, Any] | None = None
        self.running = False
        self.ticks = 0
        self.speed = settings.speed
        self.rate_hz = settings.rate_hz
        self.pacer: Pacer | None = None
        self.pause_at: float | None = None
        self.published = 0
        self._cursor = 0
        """Next asset to step in the tick in progress (a tick may be interrupted)."""
        self._tick_alive = False
        self.fleet: Any = None
        """A ``FleetSimulator`` stepping every pump at once (from ``FLEET_SIMULATOR_FROM``
        pumps), else None and each run steps its own ``Simulator``."""
        self._pending: list[Telemetry] = []
        """Fleet mode: the tick's samples not yet published (a tick may be interrupted)."""
        self._thread = threading.Thread(target=self._run_loop, name="simulator", daemon=True)
        app = self.app
        app.add_api_route("/scenario/load", self.http_load, methods=["POST"])
        app.add_api_route("/scenario/start", self.http_start, methods=["POST"])
        app.add_api_route("/scenario/stop", self.http_stop, methods=["POST"])
        app.add_api_route("/scenario/status", self.status, methods=["GET"])
        app.add_api_route("/scenarios", self.http_list, methods=["GET"])
        app.add_api_route("/operator", self.http_operator, methods=["POST"])

    @contextmanager
    def _control(self) -> Iterator[None]:
        """The lock, for a control call: the run thread steps aside at the end of its tick."""
        with self._waiting_lock:
            self._waiting += 1
        try:
            with self._wake:
                yield
        finally:
            with self._waiting_lock:
                self._waiting -= 1
                if not self._waiting:
                    self._controls_done.notify_all()

    def on_start(self) -> None:
        self._thread.start()
        if self.settings.scenario:
            names = [n.strip() for n in self.settings.scenario.split(",") if n.strip()]
            req = LoadRequest(
                names=names if len(names) > 1 else None,
                name=names[0] if len(names) == 1 else None,
                assets=self.settings.assets,
                seed=self.settings.seed,
            )
            self.load(req, from_files=True)  # the command line may name a JSON file
            if not self.settings.hold:
                self.start_playing(self.settings.speed)

    def on_stop(self) -> None:
        with self._control():
            self._stop = True
            self.running = False
            self._wake.notify_all()
        self._thread.join(timeout=5)

    # ---------------------------------------------------------------- control

    def load(self, req: LoadRequest, *, from_files: bool = False) -> ScenarioStatus:
        """Build fresh simulators for the request (stops any run in progress). Raises
        ScenarioError / ValueError naming the field at fault, UnknownScenario for a name that
        is not shipped. ``from_files`` (the operator's own command line only): a name may also
        be a path to a scenario JSON."""
        from engine.evaluation.replay import FLEET_SIMULATOR_FROM
        from engine.plant.fleet import fleet_scenarios
        from engine.plant.fleet_simulator import FleetSimulator
        from engine.plant.scenario import load_scenario, parse_scenario
        from engine.plant.simulator import Simulator

        most = self.settings.sim_max_assets
        if req.assets > most or len(req.names or ()) > most:
            raise ValueError(
                f"assets: {max(req.assets, len(req.names or ()))} pumps > this simulator's "
                f"bound of {most} (CONTROLROOM_SIM_MAX_ASSETS)"
            )
        if req.scenario is not None:
            loaded = [parse_scenario(req.scenario, "uploaded scenario")]
        else:
            names = req.names or ([req.name] if req.name else [])
            if not names:
                raise ValueError(
                    "give a scenario: {'name': ...}, {'names': [...]} or a scenario JSON"
                )
            loaded = [load_scenario(n if from_files else shipped_scenario(n)) for n in names]
        if len(loaded) == 1 and req.assets > 1:
            # A fleet (contract C7): pump 1 plays the scenario, the others are other units of
            # the plant with the faults spread across them, each with its own seed.
            scenarios = fleet_scenarios(loaded[0], req.assets, req.seed)
            seeds = [scn.seed for scn in scenarios]
        else:
            scenarios = loaded
            seeds = [
                (req.seed if req.seed is not None else s.seed) + i for i, s in enumerate(loaded)
            ]
        assets = self._asset_names([s.asset for s in scenarios])
        rate = req.rate_hz or self.rate_hz
        scenarios = [
            scn.model_copy(update={"asset": asset, "seed": seed})
            for scn, asset, seed in zip(scenarios, assets, seeds, strict=True)
        ]
        fleet = None
        if len(scenarios) >= FLEET_SIMULATOR_FROM:
            # One numpy computation per tick for the whole fleet, the same bytes as each pump's
            # own Simulator (tested), 3x less CPU per sample at 1,000 pumps.
            fleet = FleetSimulator(scenarios, rate_hz=rate)
            sims = fleet.sims
        else:
            sims = [Simulator(scn, rate_hz=rate) for scn in scenarios]
        runs = [
            AssetRun(scn.asset, scn.name, seed, sim)
            for scn, seed, sim in zip(scenarios, seeds, sims, strict=True)
        ]
        with self._control():
            self.running = False
            self.runs = runs
            self.fleet, self._pending = fleet, []
            self.rate_hz = rate
            self.ticks = 0
            self._cursor, self._tick_alive = 0, False
            self.pacer = None
            self.loaded = {
                "scenarios": [r.scenario for r in runs],
                "assets": assets,
                "seeds": [r.seed for r in runs],
                "duration_s": max(s.duration_s for s in scenarios),
            }
        self.log.event("scenario_loaded", ids={"assets": assets}, **self.loaded, echo=True)
        return self.status()

    def _asset_names(self, bases: list[str]) -> list[str]:
        if len(set(bases)) == len(bases):
            return bases
        return asset_ids(bases[0], len(bases))

    def start_playing(self, speed: float | None, until: float | None = None) -> ScenarioStatus:
        """Play (or resume, or change speed); with ``until``, pause again at that sim time."""
        with self._control():
            if not self.runs:
                raise LookupError("no scenario loaded: POST /scenario/load first")
            if all(r.done for r in self.runs):
                raise LookupError("the scenario has finished: load it again to replay")
            if speed is not None:
                self.speed = speed
            self.pause_at = until
            if until is not None and self.sim_time >= until:
                return self.status()  # already there: nothing to play
            now = time.monotonic()
            if self.pacer is None:
                self.pacer = Pacer(self.rate_hz, self.speed, now, self.ticks)
            else:
                self.pacer.rebase(now, self.ticks, self.speed)
            self.running = True
            self._wake.notify_all()
        self.log.event("scenario_started", speed=self.speed, sim_time=self.sim_time, echo=True)
        return self.status()

    def stop_playing(self) -> ScenarioStatus:
        with self._control():
            was = self.running
            self.running = False
        if was:
            self.log.event("scenario_stopped", sim_time=self.sim_time, echo=True)
        return self.status()

    @property
    def sim_time(self) -> float:
        if self.fleet is not None:
            return float(self.fleet.seq * self.fleet.dt)
        return max((float(r.sim.sim_time) for r in self.runs), default=0.0)

    def status(self) -> ScenarioStatus:
        loaded = self.loaded or {}
        names = loaded.get("scenarios", [])
        return ScenarioStatus(
            loaded=bool(self.runs),
            name=",".join(dict.fromkeys(names)) if names else None,
            scenarios=names,
            assets=loaded.get("assets", []),
            seeds=loaded.get("seeds", []),
            running=self.running,
            done=bool(self.runs) and all(r.done for r in self.runs),
            speed=self.speed,
            rate_hz=self.rate_hz,
            sim_time=self.sim_time,
            pause_at=self.pause_at,
            duration=loaded.get("duration_s"),
            ticks=self.ticks,
            published=self.published,
        )

    # ---------------------------------------------------------------- HTTP

    def http_load(self, body: dict[str, Any] = Body(...)) -> ScenarioStatus:  # noqa: B008
        from engine.plant.scenario import ScenarioError

        if not set(body) <= LOAD_KEYS:  # the body is a scenario JSON itself
            body = {"scenario": body}
        try:
            req = LoadRequest.model_validate(body)
        except ValidationError as exc:
            raise HTTPException(422, _scenario_error("load request", exc)) from None
        try:
            return self.load(req)
        except (UnknownScenario, ScenarioError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None

    def http_start(self, body: StartRequest | None = None) -> ScenarioStatus:
        try:
            return self.start_playing(body.speed if body else None, body.until if body else None)
        except LookupError as exc:
            raise HTTPException(409, str(exc)) from None

    def http_stop(self) -> ScenarioStatus:
        return self.stop_playing()

    def http_operator(self, req: OperatorRequest) -> ScenarioStatus:
        with self._control():
            i = next((k for k, r in enumerate(self.runs) if r.asset == req.asset), None)
            if i is None:
                raise HTTPException(404, f"no asset {req.asset!r} in the loaded scenario")
            if req.action in ("speed", "valve") and req.pct is None:
                raise HTTPException(422, f"{req.action} needs pct")

            def move(sim: Any) -> None:
                if req.action == "speed":
                    sim.set_speed_setpoint(req.pct, req.ramp_s)
                elif req.action == "valve":
                    sim.set_valve_command(req.pct, req.ramp_s)
                elif req.action == "start":
                    sim.start_pump()
                else:
                    sim.stop_pump()

            try:
                if self.fleet is not None:
                    self.fleet.operate(i, move)
                else:
                    move(self.runs[i].sim)
            except ValueError as exc:
                raise HTTPException(422, str(exc)) from None
            sim_time = self.sim_time
        self.log.event(
            "operator",
            ids={"asset": req.asset},
            echo=True,
            sim_time=sim_time,
            **req.model_dump(exclude={"asset"}),
        )
        return self.status()

    def http_list(self) -> ScenarioList:
        from engine.plant.scenario import list_scenarios

        return ScenarioList(scenarios=list_scenarios())

    def health_extras(self) -> dict[str, object]:
        s = self.status()
        return {
            "name": s.name,
            "assets": s.assets[:ASSETS_SHOWN],
            "asset_count": len(s.assets),
            "telemetry_batch": self.batch,
            "telemetry_log_every": self.log_every,
            "running": s.running,
            "done": s.done,
            "speed": s.speed,
            "sim_time": s.sim_time,
            "published": s.published,
        }

    # ---------------------------------------------------------------- run thread

    def _run_loop(self) -> None:
        """One tick per lock hold; between ticks, a waiting control call goes first."""
        while True:
            with self._waiting_lock:  # control calls waiting for the lock go first
                while self._waiting:
                    self._controls_done.wait()
            with self._wake:
                while not self._stop and not self.running:
                    self._wake.wait()
                if self._stop:
                    return
                assert self.pacer is not None
                now = time.monotonic()
                if self.ticks < min(self.pacer.due(now), self.ticks + MAX_BATCH):
                    alive = self._tick()
                    if alive is False:
                        self.running = False
                        self.log.event("scenario_done", sim_time=self.sim_time, echo=True)
                    elif alive and self.pause_at is not None and self.sim_time >= self.pause_at:
                        self.running, self.pause_at = False, None
                        self.log.event("scenario_paused", sim_time=self.sim_time, echo=True)
                    continue
                wait = self.pacer.next_at(self.ticks) - now
                if wait > 0:
                    self._wake.wait(min(wait, 0.25))

    def _tick(self) -> bool | None:
        """Step every asset once, from where an interrupted tick stopped. False when all
        have finished; None when a control call is waiting (the tick is not complete: what it
        stepped so far is sent before the control call runs)."""
        if self.fleet is not None:
            return self._fleet_tick()
        runs = self.runs
        while self._cursor < len(runs):
            if not self._cursor % FLEET_CHUNK and not self.bus.wait_writable(WRITABLE_WAIT_S):
                self._send_batch()
                return None  # the broker reads slower than we publish (see ``_fleet_tick``)
            run = runs[self._cursor]
            self._cursor += 1
            if not run.done:
                self._step_one(run)
            if self._waiting and self._cursor < len(runs):
                self._send_batch()
                return None
        self._send_batch()
        alive, self._cursor, self._tick_alive = self._tick_alive, 0, False
        if alive:
            self.ticks += 1
        return alive

    def _fleet_tick(self) -> bool | None:
        """``_tick`` for a fleet: one computation for every pump, then the samples go out; a
        waiting control call interrupts the publishing (not the computation: ~20 ms per 1,000
        pumps) and it resumes where it stopped."""
        fleet = self.fleet
        if not self._pending:
            self._pending = fleet.step()
            if not self._pending:
                for r in self.runs:
                    r.done = True
                return False
            self._cursor = 0
        pending, n = self._pending, len(self._pending)
        while self._cursor < n:
            if not self.bus.wait_writable(WRITABLE_WAIT_S):
                # The broker reads slower than we publish: go no faster than it (the rest of
                # the tick goes out later; a stop or control call gets the lock meanwhile).
                self._send_batch()
                return None
            end = min(n, self._cursor + FLEET_CHUNK)
            for t in pending[self._cursor : end]:
                self._publish(t)
            self._cursor = end
            if self._waiting and end < n:
                self._send_batch()
                return None
        self._send_batch()
        self._pending, self._cursor = [], 0
        self.ticks += 1
        for i in np.flatnonzero(fleet.n_ticks == fleet.seq).tolist():
            self.runs[i].done = True  # that pump's scenario ended with this tick
        return True

    def _step_one(self, run: AssetRun) -> None:
        t = _step(run.sim)
        if t is None:
            run.done = True
            return
        self._tick_alive = True
        self._publish(t)

    def _publish(self, t: Telemetry) -> None:
        if self.batch:
            self._out.append(t)
            return
        t = stamped(t)
        try:
            self.bus.publish(t)
        except Exception as exc:  # an invalid sample is dead-lettered by the bus; go on
            self.log.event("publish_failed", ids={"msg_id": t.msg_id}, error=str(exc))
            return
        self._sent(t)

    def _send_batch(self) -> None:
        """Batch mode: the tick's samples as TelemetryBatch messages, one wall time for all."""
        if not self._out:
            return
        now = time.time()
        samples = self._out
        for t in samples:
            restamp(t, "wall_time", now)  # fresh from the simulator, held by nobody else
        self._out = []
        try:
            self.bus.publish_batch(samples, self.instance, self.batch)
        except Exception as exc:  # an invalid sample is dead-lettered by the bus; go on
            self.log.event("publish_failed", count=len(samples), error=str(exc)[:300])
            return
        for t in samples:
            self._sent(t)

    def _sent(self, t: Telemetry) -> None:
        self.published += 1
        every = self.log_every
        if every and t.seq % every == 0:
            self.log.message("telemetry", t)


def shipped_scenario(name: str) -> str:
    """The path of a shipped scenario called ``name``; UnknownScenario (nothing read) for
    anything else: a path, a traversal, a device, a name that is not in ``scenarios/``."""
    from engine.paths import SCENARIOS_DIR
    from engine.plant.scenario import list_scenarios

    known = list_scenarios()
    if name not in known:
        shown = name if re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", name) else "that name"
        raise UnknownScenario(
            f"{shown}: no such scenario (known: {', '.join(known) or 'none'}); a scenario is "
            "named, or uploaded as JSON — never read from a path"
        )
    return str(SCENARIOS_DIR / f"{name}.json")


def _step(sim: Any) -> Telemetry | None:
    if getattr(sim, "done", False):
        return None
    try:
        step: Telemetry = sim.step()
    except StopIteration:
        return None
    return step


def _scenario_error(where: str, exc: ValidationError) -> str:
    return f"{where}: {error_line(exc)}"
