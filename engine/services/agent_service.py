"""What the monitor and diagnosis services share: a pure agent fed from the bus, its outputs
published and logged, feedback-driven tuning picked up while running, and bounded per-asset
state.

The agent is not thread-safe and does not need to be: the bus dispatcher feeds it from one
thread in arrival order; the lock only fences the periodic tuning reload and eviction.

Bounded state: the service keeps state for at most ``Settings.max_assets`` assets. A message
for a new asset beyond that evicts the asset silent for longest if it has been silent for
``Settings.asset_idle_s``; otherwise the message is refused (``asset_bounds.refused`` in
/health, and a ``asset_refused`` log line at most once a minute). An invented asset id cannot
grow a service without bound, and a real new pump is never refused while an idle one holds
its place.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from engine.bus.client import RetryLater, stamped
from engine.bus.routing import ALL_TELEMETRY, telemetry_route
from engine.evaluation.scoring import percentile
from engine.http_schemas import ASSETS_SHOWN
from engine.schemas import AlertEvent, DiagnosisReport, Feedback, Telemetry, Tuning, telemetry_topic
from engine.services.base import Service
from engine.services.settings import Settings

TUNING_FILE = "tuning.json"
TUNING_POLL_S = 2.0
REFUSAL_LOG_S = 60.0

In = TypeVar("In", Telemetry, Telemetry | AlertEvent)
Out = TypeVar("Out", AlertEvent, DiagnosisReport)
In_contra = TypeVar("In_contra", contravariant=True)
Out_co = TypeVar("Out_co", covariant=True)


class Agent(Protocol[In_contra, Out_co]):
    """A pure agent as a service runs it (``engine.agents.monitor.Monitor``,
    ``engine.agents.diagnosis.DiagnosisAgent``)."""

    def feed(self, msg: In_contra, /) -> Sequence[Out_co]: ...

    def apply_tuning(self, tuning: Tuning | None, /) -> None: ...

    def forget(self, asset: str, /) -> Sequence[Out_co]:
        """Drop an asset's state; return what must still be published for it."""
        ...


class TuningWatch:
    """Reloads ``var/tuning.json`` when it changes (checked on each feedback message and every
    couple of seconds) and hands it to ``apply``. A broken file is reported, not applied: the
    tuning in effect stays."""

    def __init__(self, path: Path, apply: Callable[[Tuning], None], service: Service) -> None:
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

    def health(self) -> dict[str, object]:
        return {
            "file": str(self.path),
            "loaded_at": self.loaded_at,
            "in_effect": self.summary,
            "error": self.error,
        }


class LatencyWindow:
    """The last N latencies in ms, for /health percentiles (the project's one percentile,
    as the reports and benches compute theirs)."""

    def __init__(self, n: int = 2000) -> None:
        self.values: deque[float] = deque(maxlen=n)

    def add(self, ms: float) -> None:
        self.values.append(ms)

    def summary(self) -> dict[str, float | int | None]:
        v = list(self.values)
        p50, p99 = percentile(v, 50), percentile(v, 99)
        return {
            "n": len(v),
            "p50_ms": None if p50 is None else round(p50, 3),
            "p99_ms": None if p99 is None else round(p99, 3),
        }


class AssetSlots:
    """Which assets hold state, least recently heard first; at most ``cap`` of them."""

    def __init__(self, cap: int, idle_s: float) -> None:
        self.cap = cap
        self.idle_s = idle_s
        self._seen: OrderedDict[str, float] = OrderedDict()
        self.evicted = 0
        self.refused = 0

    def admit(self, asset: str, now: float) -> tuple[bool, str | None]:
        """(admitted, asset to evict first)."""
        seen = self._seen
        if asset in seen:
            seen[asset] = now
            seen.move_to_end(asset)
            return True, None
        victim = None
        if len(seen) >= self.cap:
            oldest, last = next(iter(seen.items()))
            if now - last < self.idle_s:
                self.refused += 1
                return False, None
            del seen[oldest]
            self.evicted += 1
            victim = oldest
        seen[asset] = now
        return True, victim

    def __len__(self) -> int:
        return len(self._seen)

    def names(self, limit: int) -> list[str]:
        return sorted(self._seen)[:limit]

    def health(self) -> dict[str, object]:
        return {
            "tracked": len(self._seen),
            "max": self.cap,
            "idle_evict_s": self.idle_s,
            "evicted": self.evicted,
            "refused": self.refused,
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


class AgentService(Service, Generic[In, Out]):
    """A pure agent on the bus. Subclasses pass the agent in and name their input patterns."""

    inputs: ClassVar[tuple[str, ...]] = ()
    output_event: ClassVar[str] = "output"
    output_ids: ClassVar[tuple[str, ...]] = ()
    """The output's fields its log line names it by."""

    def __init__(self, settings: Settings, agent: Agent[In, Out]) -> None:
        super().__init__(settings)
        self.agent: Agent[In, Out] = agent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.outputs = 0
        self.latency = LatencyWindow()
        self.slots = AssetSlots(settings.max_assets, settings.asset_idle_s)
        self._refusal_logged = 0.0
        self.tuning = TuningWatch(self.settings.var / TUNING_FILE, self._apply_tuning, self)
        self.rejected: dict[str, int] = {}
        for pattern in self.inputs:
            if pattern == ALL_TELEMETRY:
                for f in self.telemetry_filters():
                    self.bus.subscribe_batch(f, self.on_telemetry)
            else:
                self.bus.subscribe(pattern, self.on_input)
        self.bus.subscribe("feedback/+", self.on_feedback)

    def telemetry_filters(self) -> tuple[str, ...]:
        """Telemetry is routed by the broker: a replica subscribes to its own buckets only
        (``engine.bus.routing``), plus the old one-level layout during a migration."""
        s = self.settings
        return telemetry_route(
            s.shard.index, s.shard.count, legacy=s.legacy_topics, share_group=s.share_group
        ).filters

    # ---------------------------------------------------------------- hooks

    def output_latency_ms(self, trigger: In, out: Out) -> float | None:
        wall = trigger.wall_time
        return (time.time() - wall) * 1000.0 if wall else None

    def emit(self, outs: Sequence[Out], trigger: In | None) -> None:
        """Publish the agent's outputs (the diagnosis service overrides it with its durable
        outbox) and log each one."""
        for out in outs:
            out = stamped(out)
            self.bus.publish(out)
            self._logged(out, trigger)

    def _logged(self, out: Out, trigger: In | None, **extra: object) -> None:
        self.outputs += 1
        lat = self.output_latency_ms(trigger, out) if trigger is not None else None
        if lat is not None:
            self.latency.add(lat)
        ids = {**{name: getattr(out, name) for name in self.output_ids}, **extra}
        self.log.message(self.output_event, out, ids=ids, latency_ms=lat, echo=True)

    # ---------------------------------------------------------------- lifecycle

    def on_start(self) -> None:
        self.tuning.check()
        threading.Thread(target=self._poll_tuning, name="tuning-poll", daemon=True).start()

    def on_stop(self) -> None:
        self._stop.set()

    def _poll_tuning(self) -> None:
        while not self._stop.wait(TUNING_POLL_S):
            with self._lock:
                self.tuning.check()

    def _apply_tuning(self, tuning: Tuning) -> None:
        self.agent.apply_tuning(tuning)

    # ---------------------------------------------------------------- handlers (bus thread)

    def on_input(self, msg: In) -> None:
        admitted, victim = self.slots.admit(msg.asset, time.monotonic())
        if not admitted:
            self._refused(msg.asset)
            return
        with self._lock:
            if victim is not None:
                self._evict(victim)
            self.emit(self.agent.feed(msg), msg)

    def on_telemetry(self, samples: list[Telemetry]) -> None:
        """Every telemetry sample the bus had queued, in arrival order, at once: a vectorised
        agent (``feed_batch``) pays its per-call cost once per burst, not per sample."""
        now = time.monotonic()
        admit = self.slots.admit
        kept: list[Telemetry] = []
        victims: list[str] = []
        for t in samples:
            admitted, victim = admit(t.asset, now)
            if not admitted:
                self._refused(t.asset)
                continue
            kept.append(t)
            if victim is not None:
                victims.append(victim)
        agent = self.agent
        try:
            with self._lock:
                for victim in victims:
                    self._evict(victim)
                if not kept:
                    return
                batch = getattr(agent, "feed_batch", None)
                if batch is not None:
                    outs = batch(in_rounds(kept))
                else:
                    outs = [out for t in kept for out in agent.feed(t)]
                self._drain_rejections(kept)
                if outs:
                    by_sample = {(t.asset, t.ts): t for t in kept}
                    for out in outs:
                        trigger = by_sample.get((out.asset, out.ts), kept[-1])
                        self.emit([out], trigger)
        except RetryLater:
            # Telemetry is not redelivered: reports a durable emit could not store yet wait
            # for its next successful commit (the diagnosis service keeps them).
            pass

    def _evict(self, victim: str) -> None:
        flushed = self.agent.forget(victim)
        self.log.event("asset_evicted", ids={"asset": victim}, flushed=len(flushed))
        if flushed:
            self.emit(flushed, None)

    def _drain_rejections(self, samples: list[Telemetry]) -> None:
        """What the agent did not use (its ``take_rejections``: duplicate, late and unconfirmed
        samples, values past what the stream can produce, assets past its cap) is
        dead-lettered with the sample and the reason, and counted by kind; a new run of an
        asset is only logged (its open alerts clear with ``new_run``)."""
        take = getattr(self.agent, "take_rejections", None)
        if take is None:
            return
        rejections = take()
        if not rejections:
            return
        by_id = {(t.asset, t.msg_id): t for t in samples}
        for r in rejections:
            self.rejected[r.kind] = self.rejected.get(r.kind, 0) + 1
            if r.kind == "new_run":
                self.log.event("new_run", ids={"asset": r.asset}, reason=r.reason, echo=True)
                continue
            sample = by_id.get((r.asset, r.msg_id))
            payload = (
                sample.to_json()
                if sample is not None
                else json.dumps({"asset": r.asset, "msg_id": r.msg_id, "seq": r.seq, "ts": r.ts})
            )
            self.bus.dead_letter(telemetry_topic(r.asset), f"{self.name}: {r.reason}", payload)

    def _refused(self, asset: str) -> None:
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_S:
            self._refusal_logged = now
            self.log.event(
                "asset_refused",
                ids={"asset": asset[:64]},
                echo=True,
                tracked=len(self.slots),
                refused=self.slots.refused,
            )

    def on_feedback(self, fb: Feedback) -> None:
        with self._lock:
            self.tuning.check()

    def health_extras(self) -> dict[str, object]:
        return {
            "assets": self.slots.names(ASSETS_SHOWN),
            "asset_bounds": self.slots.health(),
            "latency": self.latency.summary(),
            "tuning": self.tuning.health(),
            "rejected": dict(self.rejected),
        }
