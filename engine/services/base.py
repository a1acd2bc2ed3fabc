"""The runtime every plant service shares: bus client, HTTP app with ``/health``, JSONL log,
start and stop.

A service subclasses ``Service``, sets ``name``, and overrides the hooks it needs:

- ``setup()``: subscribe to topics and add HTTP routes (``self.app``), before the bus connects;
- ``on_start()`` / ``on_stop()``: start and stop its own work (threads, stores);
- ``health_extras()``: what ``/health`` should show beyond the common fields.

``Service.run()`` serves HTTP with uvicorn in the calling (main) thread until SIGINT/SIGTERM;
uvicorn's graceful shutdown runs ``on_stop`` and then drains the bus (handled messages are
acknowledged, QoS 1 publishes flushed) before the process exits.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from engine.bus.broker import DEFAULT_URL, port_is_free, redact_url
from engine.bus.client import BusClient, TlsOptions
from engine.paths import var_dir
from engine.services.jsonl_log import JsonlLog
from engine.services.settings import Settings, port_env

log = logging.getLogger("controlroom.service")

PARENT_PID_ENV = "CONTROLROOM_PARENT_PID"
"""Set by ``Stack`` for its children: a child whose parent vanished (even by SIGKILL) stops
itself, so ``controlroom up`` can never leave orphans behind."""


def configure_console(level: str = "info") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-5s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


class Service:
    name: ClassVar[str] = "service"
    title: ClassVar[str] = "Control Room service"
    http_protocol: ClassVar[Any] = "auto"
    """uvicorn's HTTP protocol: a class extends it (the review service reads peer credentials)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instance = settings.instance
        self.started_at = time.time()
        self.broker_url = settings.broker_url or DEFAULT_URL
        logs = var_dir() / "logs"
        self.log = JsonlLog(logs / f"{self.instance}.jsonl", self.instance)
        shard = settings.shard
        self.bus = BusClient(
            self.broker_url,
            client_id=f"{settings.client_prefix}-{self.instance}",
            service_name=self.instance,
            tls=TlsOptions(
                settings.ca_file, settings.cert_file, settings.key_file, settings.insecure
            ),
            accept=shard.owns if shard.count > 1 else None,
            on_event=self._bus_event,
        )
        self.app = FastAPI(title=f"{self.title} ({self.instance})", lifespan=self._lifespan)
        self.app.add_api_route("/health", self._health_endpoint, methods=["GET"])
        self._server: Any = None
        self.setup()

    # ---------------------------------------------------------------- hooks

    def setup(self) -> None:
        """Subscribe and add routes (called once from ``__init__``)."""

    def on_start(self) -> None:
        """Start the service's own work (the bus is already connecting)."""

    def on_stop(self) -> None:
        """Stop the service's own work, before the bus drains and disconnects."""

    def health_extras(self) -> dict[str, Any]:
        return {}

    def listeners(self) -> list[socket.socket] | None:
        """Sockets to serve on, bound here; None: uvicorn binds ``host:port`` itself."""
        return None

    # ---------------------------------------------------------------- common

    def health(self) -> dict[str, Any]:
        counters = self.bus.counters.snapshot()
        return {
            "service": self.name,
            "instance": self.instance,
            "status": "ok" if self.bus.ready else "degraded",
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 3),
            "broker": {
                "url": redact_url(self.broker_url),
                "connected": self.bus.connected,
                "subscribed": self.bus.subscribed,
                "error": self.bus.last_error,
            },
            "shard": str(self.settings.shard),
            "last_message_at": counters.pop("last_message_at"),
            "last_published_at": counters.pop("last_published_at"),
            "queue_depth": self.bus.queue_depth,
            "dead_letters": counters["dead_letters"],
            "counters": counters,
            **self.health_extras(),
        }

    def _health_endpoint(self) -> JSONResponse:
        body = self.health()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    def _bus_event(self, event: str, fields: dict[str, Any]) -> None:
        self.log.event(event, echo=event != "dead_letter", **fields)

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        self.start()
        try:
            yield
        finally:
            self.stop()

    def start(self) -> None:
        """Connect the bus and start the service's work (also usable without HTTP)."""
        self.log.event(
            "service_start",
            pid=os.getpid(),
            port=self.settings.port,
            broker=redact_url(self.broker_url),
            shard=str(self.settings.shard),
        )
        self.bus.start()
        self.on_start()

    def stop(self) -> None:
        try:
            self.on_stop()
        finally:
            self.bus.stop()
            self.log.event("service_stop", counters=self.bus.counters.snapshot())
            self.log.close()

    def request_exit(self) -> None:
        """Ask the HTTP server to shut down gracefully (from any thread)."""
        if self._server is not None:
            self._server.should_exit = True

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM (or until the parent ``Stack`` disappears)."""
        import uvicorn

        host, port = self.settings.host, self.settings.port
        if not port_is_free(port, host if host not in ("0.0.0.0", "") else "0.0.0.0"):
            print(
                f"controlroom serve {self.name}: port {port} on {host} is in use "
                f"(choose another with --port or {port_env(self.name)})",
                file=sys.stderr,
            )
            return 1
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            http=self.http_protocol,
        )
        self._server = uvicorn.Server(config)
        try:
            sockets = self.listeners()
        except OSError as exc:
            print(f"controlroom serve {self.name}: {exc}", file=sys.stderr)
            return 1
        self._watch_parent()
        log.info(
            "%s listening on http://%s:%d (broker %s)",
            self.instance,
            host,
            port,
            redact_url(self.broker_url),
        )
        self._server.run(sockets=sockets)
        return 0 if self._server.started else 1

    def _watch_parent(self) -> None:
        raw = os.environ.get(PARENT_PID_ENV)
        if not raw:
            return
        parent = int(raw)

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            log.warning("%s: parent %d is gone; shutting down", self.instance, parent)
            self.request_exit()

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
