"""agent-monitor: telemetry in, alert episodes out (the pure ``engine.agents.monitor.Monitor``
on the bus). Thresholds live in ``MonitorConfig``; feedback tuning is applied while running."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from engine.bus.routing import ALL_TELEMETRY
from engine.schemas import AlertEvent, Telemetry
from engine.services.agent_service import AgentService


class MonitorService(AgentService):
    name: ClassVar[str] = "monitor"
    title: ClassVar[str] = "agent-monitor"
    inputs = (ALL_TELEMETRY,)
    output_event = "alert"

    def make_agent(self) -> Any:
        from engine.agents.monitor import Monitor

        return Monitor()

    def setup(self) -> None:
        super().setup()
        self._rate_mark = (time.monotonic(), 0)
        self._rate = 0.0

    def output_ids(self, out: AlertEvent) -> dict[str, Any]:  # type: ignore[override]
        return {"alert_id": out.alert_id, "asset": out.asset, "status": out.status}

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
            "vectorised": hasattr(self.agent, "feed_batch"),
        }
