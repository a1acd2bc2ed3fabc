"""What the TUI connects to and who is at the keyboard."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.settings import Config


@dataclass(frozen=True)
class UiSettings:
    broker_url: str | None = None
    """None: ask the simulator's /health which broker the stack uses (an embedded broker sits on
    a free port), falling back to mqtt://127.0.0.1:1883."""
    service_urls: Mapping[str, str] = field(default_factory=dict)
    """Service name -> base URL. Empty: the app draws only what it is fed (tests, snapshots)."""
    llm: str = "auto"
    """Factory screen: ``auto`` (Claude if ``environ`` has ANTHROPIC_API_KEY), ``off``, ``on``."""
    factory: str | None = None
    """Factory config file for the factory screen (None: the toy world)."""
    connect: bool = True
    """False: no bus, no HTTP polling (snapshot tests feed the app directly)."""
    stack_file: Path | None = None
    """The supervisor's ``var/stack.json`` (``controlroom up`` / ``demo`` on this host): which
    service is restarting or gave up. None: only the services' own /health."""
    var: Path | None = None
    """Runtime state on this host (``CONTROLROOM_VAR``, resolved by the entry): the bus
    client's dead letters. None (snapshot tests): the app does not connect to the bus."""
    credentials: Path | None = None
    """The stack's broker credentials file: the app reads only ``tui.json`` beside it, the
    read-only ``tui`` identity alone (``engine.bus.acl.tui_credentials``; None or no such file:
    anonymous, for a broker without ACLs)."""
    environ: Mapping[str, str] = field(default_factory=dict)
    """The environment over ``.env`` as the CLI resolved it once: the review API's token or
    socket, ``ANTHROPIC_API_KEY`` for the factory screen. Empty (tests): none of them."""


def service_urls(host: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Base URLs of the five services on ``host``, with the ports ``controlroom up`` uses
    (``CONTROLROOM_<SERVICE>_PORT`` or 8101..8105; read by ``engine.settings``)."""
    return Config.load(environ).service_urls(host)
