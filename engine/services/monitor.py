"""agent-monitor: telemetry in, alert episodes out (the pure ``engine.agents.monitor.Monitor``
on the bus). Thresholds live in ``MonitorConfig``; feedback tuning is applied while running.

Telemetry arrives in bursts (``AgentService.on_telemetry``): everything the bus client has
queued goes to ``Monitor.feed_batch`` in one call. What the monitor did not use is not lost: after
each burst the service drains the monitor's rejections — duplicate and late samples, values past
what the asset's stream can produce, assets past the cap — dead-letters them (topic, reason, the
message) and counts them by kind in ``/health``; a new run of an asset is logged (its open alerts
clear with ``new_run``)."""

from __future__ import annotations

import time
from typing import ClassVar

from engine.bus.routing import ALL_TELEMETRY
from engine.http_schemas import MonitorHealth
from engine.schemas import AlertEvent, Telemetry
from engine.services.agent_service import Agent, AgentService
from engine.services.settings import Settings


class MonitorService(AgentService[Telemetry, AlertEvent]):
    name: ClassVar[str] = "monitor"
    title: ClassVar[str] = "agent-monitor"
    health_model = MonitorHealth
    inputs = (ALL_TELEMETRY,)
    output_event = "alert"
    output_ids = ("alert_id", "asset", "status", "revision", "severity")

    def __init__(self, settings: Settings, agent: Agent[Telemetry, AlertEvent]) -> None:
        super().__init__(settings, agent)
        self._rate_mark = (time.monotonic(), 0)
        self._rate = 0.0

    def health_extras(self) -> dict[str, object]:
        now = time.monotonic()
        t0, n0 = self._rate_mark
        n = self.bus.counters.snapshot()["samples"]
        if now - t0 >= 1.0:
            self._rate = (n - n0) / (now - t0)
            self._rate_mark = (now, n)
        return {
            **super().health_extras(),
            "alerts_published": self.outputs,
            "telemetry_per_s": round(self._rate, 1),
            "vectorised": hasattr(self.agent, "feed_batch"),
        }
