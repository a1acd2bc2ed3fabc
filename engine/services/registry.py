"""Every service ``controlroom serve NAME`` can run, built explicitly: name -> a function that
constructs the service with its parts (the pure agent passed in). Imports happen inside each
builder, so starting one service never imports another's dependencies."""

from __future__ import annotations

from collections.abc import Callable

from engine.services.base import Service
from engine.services.settings import Settings
from engine.settings import SERVICE_NAMES


def _simulator(settings: Settings) -> Service:
    from engine.services.simulator import SimulatorService

    return SimulatorService(settings)


def _monitor(settings: Settings) -> Service:
    from engine.agents.monitor import Monitor
    from engine.services.monitor import MonitorService

    return MonitorService(settings, Monitor())


def _diagnosis(settings: Settings) -> Service:
    from engine.agent_files import load_rules
    from engine.agents.diagnosis import DiagnosisAgent
    from engine.services.diagnosis import DiagnosisService

    return DiagnosisService(settings, DiagnosisAgent(load_rules()))


def _ticket(settings: Settings) -> Service:
    from engine.services.ticket import TicketService

    return TicketService(settings)


def _review(settings: Settings) -> Service:
    from engine.services.review import ReviewService

    return ReviewService(settings)


BUILDERS: dict[str, Callable[[Settings], Service]] = {
    "simulator": _simulator,
    "monitor": _monitor,
    "diagnosis": _diagnosis,
    "ticket": _ticket,
    "review": _review,
}
assert tuple(BUILDERS) == SERVICE_NAMES, "one builder per service name"


def build_service(settings: Settings) -> Service:
    """The service ``settings.service`` names, constructed (not started)."""
    builder = BUILDERS.get(settings.service)
    if builder is None:
        raise ValueError(f"unknown service {settings.service!r} (one of {', '.join(BUILDERS)})")
    return builder(settings)
