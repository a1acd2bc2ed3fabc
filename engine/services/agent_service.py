"""What the monitor and diagnosis services share: a pure agent fed from the bus, its outputs
published and logged, and feedback-driven tuning picked up while running.

The agent is not thread-safe and does not need to be: the bus dispatcher feeds it from one
thread in arrival order; the lock only fences the periodic tuning reload.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

from engine.bus.client import stamped
from engine.bus.routing import ALL_TELEMETRY, telemetry_route
from engine.paths import var_dir
from engine.schemas import Feedback, PlantMessage, Telemetry, WireModel, telemetry_topic
from engine.services.base import Service

TUNING_FILE = "tuning.json"
TUNING_POLL_S = 2.0


class TuningWatch:
    """Reloads ``var/tuning.json`` when it changes (checked on each feedback message and every
    couple of seconds) and hands it to ``apply``. A broken file is reported, not applied: the
    tuning in effect stays."""

    def __init__(self, path: Path, apply: Any, service: Service) -> None:
        self.path = path
        self._apply = apply
        self._service = service
        self._signature: tuple[int, int, int] | None = None
        self.loaded_at: float | None = None
        self.summary: dict[str, Any] | None = None
        self.error: str | None = None

    def check(self) -> bool:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False
        signature = (st.st_mtime_ns, st.st_ino, st.st_size)  # an atomic replace changes st_ino
        if signature == self._signature:
            return False
        self._signature = signature
        from engine.agent_files import load_tuning

        try:
            tuning = load_tuning(self.path)
        except Exception as exc:  # the running agent keeps its current tuning
            self.error = f"{self.path}: {exc}"
            self._service.log.event("tuning_rejected", error=self.error, echo=True)
            return False
        self._apply(tuning)
        self.error = None
        self.loaded_at = time.time()
        self.summary = tuning.model_dump(mode="json")
        self._service.log.event("tuning_applied", tuning=self.summary, echo=True)
        return True

    def health(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "loaded_at": self.loaded_at,
            "in_effect": self.summary,
            "error": self.error,
        }


class LatencyWindow:
    """The last N latencies in ms, for /health percentiles."""

    def __init__(self, n: int = 2000) -> None:
        self.values: deque[float] = deque(maxlen=n)

    def add(self, ms: float) -> None:
        self.values.append(ms)

    def summary(self) -> dict[str, float | int | None]:
        v = sorted(self.values)
        if not v:
            return {"n": 0, "p50_ms": None, "p99_ms": None}
        return {
            "n": len(v),
            "p50_ms": round(v[len(v) // 2], 3),
            "p99_ms": round(v[min(len(v) - 1, int(len(v) * 0.99))], 3),
        }


def in_rounds(samples: list[Telemetry]) -> list[Telemetry]:
    """The samples reordered so that each asset's first sample comes before any asset's
    second, and so on; each asset's own order is kept (the only order its state depends on).
    A burst that holds several ticks of a few assets (a gateway's batch) would otherwise reach
    a vectorised agent as many narrow steps instead of a few wide ones."""
    seen: dict[str, int] = {}
    rounds: list[list[Telemetry]] = []
    for t in samples:
        k = seen.get(t.asset, 0)
        seen[t.asset] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(t)
    if len(rounds) == 1:
        return rounds[0]
    return [t for r in rounds for t in r]


class AgentService(Service):
    inputs: ClassVar[tuple[str, ...]] = ()
    output_event: ClassVar[str] = "output"

    def make_agent(self) -> Any:
        raise NotImplementedError

    def output_ids(self, out: WireModel) -> dict[str, Any]:
        return {}

    def output_latency_ms(self, trigger: PlantMessage, out: WireModel) -> float | None:
        wall = getattr(trigger, "wall_time", None)
        return (time.time() - wall) * 1000.0 if wall else None

    # ---------------------------------------------------------------- wiring

    def setup(self) -> None:
        self.agent = self.make_agent()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.outputs = 0
        self.latency = LatencyWindow()
        self.assets: set[str] = set()
        self.tuning = TuningWatch(var_dir() / TUNING_FILE, self._apply_tuning, self)
        self.rejected: dict[str, int] = {}
        for pattern in self.inputs:
            if pattern == ALL_TELEMETRY:
                for f in self.filters(pattern):
                    self.bus.subscribe_batch(f, self.on_telemetry)
            else:
                self.bus.subscribe(pattern, self.on_input)
        self.bus.subscribe("feedback/+", self.on_feedback)

    def filters(self, pattern: str) -> tuple[str, ...]:
        """Telemetry is routed by the broker: a replica subscribes to its own buckets only
        (``engine.bus.routing``); other inputs are subscribed as named."""
        if pattern != ALL_TELEMETRY:
            return (pattern,)
        s = self.settings
        return telemetry_route(s.shard.index, s.shard.count).filters

    def on_start(self) -> None:
        self.tuning.check()
        threading.Thread(target=self._poll_tuning, name="tuning-poll", daemon=True).start()

    def on_stop(self) -> None:
        self._stop.set()

    def _poll_tuning(self) -> None:
        while not self._stop.wait(TUNING_POLL_S):
            with self._lock:
                self.tuning.check()

    def _apply_tuning(self, tuning: Any) -> None:
        self.agent.apply_tuning(tuning)

    # ---------------------------------------------------------------- handlers (bus thread)

    def on_input(self, msg: PlantMessage) -> None:
        self.assets.add(msg.asset)
        with self._lock:
            outs = self.agent.feed(msg)
        for out in outs:
            self._publish_output(out, msg)

    def _publish_output(self, out: WireModel, trigger: PlantMessage) -> None:
        out = stamped(out)
        self.bus.publish(out)
        self.outputs += 1
        lat = self.output_latency_ms(trigger, out)
        if lat is not None:
            self.latency.add(lat)
        self.log.message(
            self.output_event, out, ids=self.output_ids(out), latency_ms=lat, echo=True
        )

    def on_telemetry(self, samples: list[Telemetry]) -> None:
        """Every telemetry sample the bus had queued, in arrival order, at once: a vectorised
        agent (``feed_batch``) pays its per-call cost once per burst, not per sample."""
        self.assets.update(t.asset for t in samples)
        agent = self.agent
        with self._lock:
            batch = getattr(agent, "feed_batch", None)
            if batch is not None:
                outs = batch(in_rounds(samples))
            else:
                outs = [out for t in samples for out in agent.feed(t)]
            self._drain_rejections()
        if outs:
            by_sample = {(t.asset, t.ts): t for t in samples}
            for out in outs:
                trigger = by_sample.get((out.asset, getattr(out, "ts", None)), samples[-1])
                self._publish_output(out, trigger)

    def _drain_rejections(self) -> None:
        """Samples the agent refused (duplicates, late, implausible values: detect's
        ``take_rejections``) are dead-lettered with their reason and counted by kind."""
        take = getattr(self.agent, "take_rejections", None)
        if take is None:
            return
        for r in take():
            self.rejected[r.kind] = self.rejected.get(r.kind, 0) + 1
            detail = {"msg_id": r.msg_id, "seq": r.seq, "ts": r.ts}
            self.bus.dead_letter(
                telemetry_topic(r.asset), f"{r.kind}: {r.reason}", json.dumps(detail)
            )

    def on_feedback(self, fb: Feedback) -> None:
        with self._lock:
            self.tuning.check()

    def health_extras(self) -> dict[str, Any]:
        return {
            "assets": sorted(self.assets),
            f"{self.output_event}s_published": self.outputs,
            "latency": self.latency.summary(),
            "rejected": dict(self.rejected),
            "tuning": self.tuning.health(),
        }
