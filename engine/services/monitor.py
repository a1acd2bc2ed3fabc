"""agent-monitor: telemetry in, alert episodes out (the pure ``engine.agents.monitor.Monitor``
on the bus). Thresholds live in ``MonitorConfig``; feedback tuning is applied while running.

What the monitor did not use is not lost: after each sample the service drains the monitor's
rejections — duplicate and late samples, values past what the asset's stream can produce, assets
past the cap — dead-letters them (topic, reason, the message) and counts them by kind in
``/health``; a new run of an asset is logged (its open alerts clear with ``new_run``)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, ClassVar

from engine.schemas import AlertEvent, PlantMessage, Telemetry, topic_for
from engine.services.agent_service import AgentService


class MonitorService(AgentService):
    name: ClassVar[str] = "monitor"
    title: ClassVar[str] = "agent-monitor"
    inputs = ("telemetry/+",)
    output_event = "alert"

    def make_agent(self) -> Any:
        from engine.agents.monitor import Monitor

        return Monitor()

    def setup(self) -> None:
        super().setup()
        self._rate_mark = (time.monotonic(), 0)
        self._rate = 0.0
        self.rejected: Counter[str] = Counter()

    def on_input(self, msg: PlantMessage) -> None:
        super().on_input(msg)
        with self._lock:
            rejections = self.agent.take_rejections()
        for r in rejections:
            self.rejected[r.kind] += 1
            if r.kind == "new_run":
                self.log.event("new_run", asset=r.asset, reason=r.reason, echo=True)
                continue
            topic = topic_for(msg) if isinstance(msg, Telemetry) else f"telemetry/{r.asset}"
            self.dead_letter(topic, f"monitor: {r.reason}", msg.to_json())

    def dead_letter(self, topic: str, reason: str, payload: str) -> None:
        """Through the bus client's dead-letter log (counted in its ``dead_letters``)."""
        writer = getattr(self.bus, "dead_letter", None) or self.bus._dead_letter
        writer(topic, reason, payload)

    def output_ids(self, out: AlertEvent) -> dict[str, Any]:  # type: ignore[override]
        return {
            "alert_id": out.alert_id,
            "asset": out.asset,
            "status": out.status,
            "revision": out.revision,
            "severity": out.severity,
        }

    def output_latency_ms(self, trigger: Telemetry, out: AlertEvent) -> float | None:  # type: ignore[override]
        """Telemetry published -> alert published, wall clock (what the benchmark reports)."""
        return super().output_latency_ms(trigger, out)

    def health_extras(self) -> dict[str, Any]:
        now = time.monotonic()
        t0, n0 = self._rate_mark
        n = self.bus.counters.snapshot()["received_by_kind"].get("telemetry", 0)
        if now - t0 >= 1.0:
            self._rate = (n - n0) / (now - t0)
            self._rate_mark = (now, n)
        return {
            **super().health_extras(),
            "telemetry_per_s": round(self._rate, 1),
            "rejected": dict(self.rejected),
        }
