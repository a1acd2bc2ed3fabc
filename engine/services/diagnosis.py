"""agent-diagnosis: alerts (and the telemetry history around them) in, root-cause reports out
(the pure ``engine.agents.diagnosis.DiagnosisAgent`` with the YAML rules on the bus).

It subscribes to telemetry too, because a diagnosis needs the history around an alert; the
agent may hold an alert until enough history after it has arrived. A restarted replica receives
the alerts it missed (QoS 1, persistent session) but not the telemetry: without the agent's saved
state (``DiagnosisAgent.export_state`` / ``restore_state``) it defers those alerts until it has
history again and never reports a cause it cannot support."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, ClassVar

from engine.bus.client import stamped
from engine.bus.routing import ALL_TELEMETRY
from engine.schemas import AlertEvent, DiagnosisReport, PlantMessage
from engine.services.agent_service import AgentService


class DiagnosisService(AgentService):
    name: ClassVar[str] = "diagnosis"
    title: ClassVar[str] = "agent-diagnosis"
    inputs = (ALL_TELEMETRY, "alerts/+")
    output_event = "diagnosis"

    def make_agent(self) -> Any:
        from engine.agent_files import load_rules
        from engine.agents.diagnosis import DiagnosisAgent

        return DiagnosisAgent(load_rules())

    def setup(self) -> None:
        super().setup()
        self._alert_wall: OrderedDict[str, float] = OrderedDict()

    def on_input(self, msg: PlantMessage) -> None:
        if isinstance(msg, AlertEvent) and msg.wall_time is not None:
            self._alert_wall[msg.alert_id] = msg.wall_time
            while len(self._alert_wall) > 10_000:
                self._alert_wall.popitem(last=False)
        super().on_input(msg)

    def on_stop(self) -> None:
        """Decide alerts still waiting for history (the bus is still up): a diagnosis made with
        less history beats one never made. The agent's wait is in simulated time, so with the
        simulator stopped nothing else would decide them."""
        with self._lock:
            outs = self.agent.flush()
        for out in outs:
            out = stamped(out)
            self.bus.publish(out)
            self.outputs += 1
            self.log.message("diagnosis", out, ids={**self.output_ids(out), "flushed": True})
        super().on_stop()

    def output_ids(self, out: DiagnosisReport) -> dict[str, Any]:  # type: ignore[override]
        return {
            "diagnosis_id": out.diagnosis_id,
            "alert_id": out.alert_id,
            "asset": out.asset,
            "root_cause": out.root_cause,
        }

    def output_latency_ms(self, trigger: PlantMessage, out: DiagnosisReport) -> float | None:  # type: ignore[override]
        """Alert published -> diagnosis published (includes any wait for history)."""
        wall = self._alert_wall.get(out.alert_id)
        return (time.time() - wall) * 1000.0 if wall else None

    def health_extras(self) -> dict[str, Any]:
        extras = super().health_extras()
        rules = getattr(self.agent, "rules", None)
        if rules is not None:
            extras["rules_loaded"] = len(rules)
        stats = getattr(self.agent, "stats", None)
        if stats is not None:  # deferred for lack of history, dropped at the bounds
            extras["agent"] = dict(stats)
        return extras
