"""agent-monitor: telemetry in, alert episodes out (the pure ``engine.agents.monitor.Monitor``
on the bus). Thresholds live in ``MonitorConfig``; feedback tuning is applied while running.

What the monitor did not use is not lost: after each sample the service drains the monitor's
rejections — duplicate and late samples, values past what the asset's stream can produce, assets
past the cap — dead-letters them (topic, reason, the message) and counts them by kind in
``/health``; a new run of an asset is logged (its open alerts clear with ``new_run``)."""

from __future__ import annotations

import time
from collections import Counter
from typing import ClassVar

from engine.http_schemas import MonitorHealth
from engine.schemas import AlertEvent, Telemetry, topic_for
from engine.services.agent_service import Agent, AgentService
from engine.services.settings import Settings


class MonitorService(AgentService[Telemetry, AlertEvent]):
    name: ClassVar[str] = "monitor"
    title: ClassVar[str] = "agent-monitor"
    health_model = MonitorHealth
    inputs = ("telemetry/+",)
    output_event = "alert"

    def __init__(self, settings: Settings, agent: Agent[Telemetry, AlertEvent]) -> None:
        super().__init__(settings, agent)
        self._rate_mark = (time.monotonic(), 0)
        self._rate = 0.0
        self.rejected: Counter[str] = Counter()

    def on_input(self, msg: Telemetry) -> None:
        super().on_input(msg)
        take = getattr(self.agent, "take_rejections", None)
        if take is None:
            return
        with self._lock:
            rejections = take()
        for r in rejections:
            self.rejected[r.kind] += 1
            if r.kind == "new_run":
                self.log.event("new_run", ids={"asset": r.asset}, reason=r.reason, echo=True)
                continue
            self.bus.dead_letter(topic_for(msg), f"monitor: {r.reason}", msg.to_json())

    def output_ids(self, out: AlertEvent) -> dict[str, object]:
        return {
            "alert_id": out.alert_id,
            "asset": out.asset,
            "status": out.status,
            "revision": out.revision,
            "severity": out.severity,
        }

    def health_extras(self) -> dict[str, object]:
        now = time.monotonic()
        t0, n0 = self._rate_mark
        n = self.bus.counters.snapshot()["received_by_kind"].get("telemetry", 0)
        if now - t0 >= 1.0:
            self._rate = (n - n0) / (now - t0)
            self._rate_mark = (now, n)
        return {
            **super().health_extras(),
            "alerts_published": self.outputs,
            "telemetry_per_s": round(self._rate, 1),
            "rejected": dict(self.rejected),
        }
