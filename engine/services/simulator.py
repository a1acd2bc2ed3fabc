"""simulator-service: plays scenarios (the pure ``engine.plant.simulator.Simulator``) onto
``telemetry/{asset}`` in paced wall time.

Pacing: ``speed`` simulated seconds per wall second, ``rate_hz`` samples per simulated second,
so ``speed * rate_hz`` ticks per wall second; every tick steps each loaded asset once. The run
thread publishes whatever ticks are due and sleeps until the next one, so a late wake-up catches
up instead of drifting; the telemetry itself does not depend on pacing (same scenario + seed,
same bytes). ``wall_time`` is stamped on publish (latency measurements downstream).

Several assets: ``--assets N`` plays N copies of one scenario (seeds seed, seed+1, …; assets
pump01, pump02, …), or ``--scenario a,b,c`` plays one scenario per asset.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from fastapi import Body, HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.bus.client import stamped
from engine.schemas import Telemetry
from engine.services.base import Service

LOAD_KEYS = {"name", "names", "assets", "seed", "rate_hz", "scenario"}
MAX_BATCH = 2000
"""Ticks published per lock hold: keeps the HTTP API responsive at very high speeds."""


class LoadRequest(BaseModel):
    """``POST /scenario/load`` by name (or names, one asset each), or with an uploaded scenario
    under ``scenario``; a body that is itself a scenario JSON is accepted too."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    names: list[str] | None = Field(default=None, min_length=1, max_length=64)
    scenario: dict[str, Any] | None = None
    assets: int = Field(default=1, ge=1, le=256)
    seed: int | None = None
    rate_hz: float | None = Field(default=None, gt=0, le=1000)


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speed: float | None = Field(default=None, gt=0, le=1_000_000)


class OperatorRequest(BaseModel):
    """``POST /operator``: what an operator at the DCS would do to one running pump."""

    model_config = ConfigDict(extra="forbid")
    asset: str
    action: Literal["speed", "valve", "start", "stop"]
    pct: float | None = Field(default=None, ge=0.0, le=110.0)
    ramp_s: float = Field(default=10.0, ge=0.0, le=3600.0)


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
    published: int = 0
    done: bool = False


class SimulatorService(Service):
    name: ClassVar[str] = "simulator"
    title: ClassVar[str] = "simulator-service"

    def setup(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self.runs: list[AssetRun] = []
        self.loaded: dict[str, Any] | None = None
        self.running = False
        self.ticks = 0
        self.speed = self.settings.speed
        self.rate_hz = self.settings.rate_hz
        self.pacer: Pacer | None = None
        self.published = 0
        self._thread = threading.Thread(target=self._run_loop, name="simulator", daemon=True)
        app = self.app
        app.add_api_route("/scenario/load", self.http_load, methods=["POST"])
        app.add_api_route("/scenario/start", self.http_start, methods=["POST"])
        app.add_api_route("/scenario/stop", self.http_stop, methods=["POST"])
        app.add_api_route("/scenario/status", self.status, methods=["GET"])
        app.add_api_route("/scenarios", self.http_list, methods=["GET"])
        app.add_api_route("/operator", self.http_operator, methods=["POST"])

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
            self.load(req)
            self.start_playing(self.settings.speed)

    def on_stop(self) -> None:
        with self._wake:
            self._stop = True
            self.running = False
            self._wake.notify_all()
        self._thread.join(timeout=5)

    # ---------------------------------------------------------------- control

    def load(self, req: LoadRequest) -> dict[str, Any]:
        """Build fresh simulators for the request (stops any run in progress). Raises
        ScenarioError / ValueError naming the file or field at fault."""
        from engine.plant.scenario import load_scenario, parse_scenario
        from engine.plant.simulator import Simulator

        if req.scenario is not None:
            scenarios = [parse_scenario(req.scenario, "uploaded scenario")] * req.assets
        else:
            names = req.names or ([req.name] if req.name else [])
            if not names:
                raise ValueError(
                    "give a scenario: {'name': ...}, {'names': [...]} or a scenario JSON"
                )
            loaded = [load_scenario(n) for n in names]
            scenarios = loaded * req.assets if len(loaded) == 1 else loaded
        assets = self._asset_names([s.asset for s in scenarios])
        rate = req.rate_hz or self.rate_hz
        runs: list[AssetRun] = []
        for i, (scn, asset) in enumerate(zip(scenarios, assets, strict=True)):
            seed = (req.seed if req.seed is not None else scn.seed) + i
            if asset != scn.asset:
                scn = scn.model_copy(update={"asset": asset})
            sim = Simulator(scn, seed=seed, rate_hz=rate)
            runs.append(AssetRun(asset, scn.name, seed, sim))
        with self._wake:
            self.running = False
            self.runs = runs
            self.rate_hz = rate
            self.ticks = 0
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

    def start_playing(self, speed: float | None) -> dict[str, Any]:
        with self._wake:
            if not self.runs:
                raise LookupError("no scenario loaded: POST /scenario/load first")
            if all(r.done for r in self.runs):
                raise LookupError("the scenario has finished: load it again to replay")
            if speed is not None:
                self.speed = speed
            now = time.monotonic()
            if self.pacer is None:
                self.pacer = Pacer(self.rate_hz, self.speed, now, self.ticks)
            else:
                self.pacer.rebase(now, self.ticks, self.speed)
            self.running = True
            self._wake.notify_all()
        self.log.event("scenario_started", speed=self.speed, sim_time=self.sim_time, echo=True)
        return self.status()

    def stop_playing(self) -> dict[str, Any]:
        with self._wake:
            was = self.running
            self.running = False
        if was:
            self.log.event("scenario_stopped", sim_time=self.sim_time, echo=True)
        return self.status()

    @property
    def sim_time(self) -> float:
        return max((float(r.sim.sim_time) for r in self.runs), default=0.0)

    def status(self) -> dict[str, Any]:
        loaded = self.loaded or {}
        names = loaded.get("scenarios", [])
        return {
            "loaded": bool(self.runs),
            "name": ",".join(dict.fromkeys(names)) if names else None,
            "scenarios": names,
            "assets": loaded.get("assets", []),
            "seeds": loaded.get("seeds", []),
            "running": self.running,
            "done": bool(self.runs) and all(r.done for r in self.runs),
            "speed": self.speed,
            "rate_hz": self.rate_hz,
            "sim_time": self.sim_time,
            "duration": loaded.get("duration_s"),
            "ticks": self.ticks,
            "published": self.published,
        }

    # ---------------------------------------------------------------- HTTP

    def http_load(self, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        from engine.plant.scenario import ScenarioError

        if not set(body) <= LOAD_KEYS:  # the body is a scenario JSON itself
            body = {"scenario": body}
        try:
            req = LoadRequest.model_validate(body)
        except ValidationError as exc:
            raise HTTPException(422, _scenario_error("load request", exc)) from None
        try:
            return self.load(req)
        except (ScenarioError, ValueError, FileNotFoundError) as exc:
            raise HTTPException(422, str(exc)) from None

    def http_start(self, body: StartRequest | None = None) -> dict[str, Any]:
        try:
            return self.start_playing(body.speed if body else None)
        except LookupError as exc:
            raise HTTPException(409, str(exc)) from None

    def http_stop(self) -> dict[str, Any]:
        return self.stop_playing()

    def http_operator(self, req: OperatorRequest) -> dict[str, Any]:
        with self._lock:
            run = next((r for r in self.runs if r.asset == req.asset), None)
            if run is None:
                raise HTTPException(404, f"no asset {req.asset!r} in the loaded scenario")
            if req.action in ("speed", "valve") and req.pct is None:
                raise HTTPException(422, f"{req.action} needs pct")
            try:
                if req.action == "speed":
                    run.sim.set_speed_setpoint(req.pct, req.ramp_s)
                elif req.action == "valve":
                    run.sim.set_valve_command(req.pct, req.ramp_s)
                elif req.action == "start":
                    run.sim.start_pump()
                else:
                    run.sim.stop_pump()
            except ValueError as exc:
                raise HTTPException(422, str(exc)) from None
            sim_time = float(run.sim.sim_time)
        self.log.event(
            "operator",
            ids={"asset": req.asset},
            echo=True,
            sim_time=sim_time,
            **req.model_dump(exclude={"asset"}),
        )
        return self.status()

    def http_list(self) -> dict[str, Any]:
        from engine.plant.scenario import list_scenarios

        return {"scenarios": list_scenarios()}

    def health_extras(self) -> dict[str, Any]:
        s = self.status()
        return {
            k: s[k] for k in ("name", "assets", "running", "done", "speed", "sim_time", "published")
        }

    # ---------------------------------------------------------------- run thread

    def _run_loop(self) -> None:
        while True:
            with self._wake:
                while not self._stop and not self.running:
                    self._wake.wait()
                if self._stop:
                    return
                assert self.pacer is not None
                due = min(self.pacer.due(time.monotonic()), self.ticks + MAX_BATCH)
                while self.ticks < due and self.running:
                    if not self._tick():
                        self.running = False
                        self.log.event("scenario_done", sim_time=self.sim_time, echo=True)
                        break
                wait = self.pacer.next_at(self.ticks) - time.monotonic()
                if self.running and wait > 0:
                    self._wake.wait(min(wait, 0.25))

    def _tick(self) -> bool:
        """Step every asset once; False when all have finished."""
        alive = False
        for run in self.runs:
            if run.done:
                continue
            t = _step(run.sim)
            if t is None:
                run.done = True
                continue
            alive = True
            t = stamped(t)
            try:
                self.bus.publish(t)
            except Exception as exc:  # an invalid sample is dead-lettered by the bus; go on
                self.log.event("publish_failed", ids={"msg_id": t.msg_id}, error=str(exc))
                continue
            run.published += 1
            self.published += 1
            self.log.message("telemetry", t)
        if alive:
            self.ticks += 1
        return alive


def _step(sim: Any) -> Telemetry | None:
    if getattr(sim, "done", False):
        return None
    try:
        return sim.step()
    except StopIteration:
        return None


def _scenario_error(where: str, exc: ValidationError) -> str:
    e = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in e.get("loc", ())) or "(root)"
    return f"{where}: {loc}: {e.get('msg', 'invalid')}"
