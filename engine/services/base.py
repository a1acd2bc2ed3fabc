"""The runtime every plant service shares: bus client, HTTP app with ``/health``, JSONL log,
start and stop.

A service is built explicitly: its class extends ``__init__`` (call ``super().__init__`` first,
then subscribe and add routes on ``self.app``) and overrides the typed hooks it needs:

- ``on_start()`` / ``on_stop()``: start and stop its own work (threads, stores);
- ``health_extras()``: its own fields of ``/health``, validated by ``health_model`` (one of
  ``engine.http_schemas.HEALTH_MODELS``: the exact body, no key left undocumented);
- ``problems()``: reasons it is not fine (``/health`` then says "degraded", with a 503).

``engine.services.registry`` maps each service name to a function that builds it, with its
pure agent passed in. ``Service.run()`` serves HTTP with uvicorn in the calling (main) thread
until SIGINT/SIGTERM; uvicorn's graceful shutdown runs ``on_stop`` and then drains the bus
(handled messages are acknowledged, QoS 1 publishes flushed) before the process exits.
"""

from __future__ import annotations

import errno
import gc
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from engine.bus.broker import DEFAULT_URL, redact_url
from engine.bus.client import BusClient, TlsOptions
from engine.heap import fix_mmap_threshold, trim
from engine.http_schemas import Health
from engine.services.http_limits import mount_body_limit
from engine.services.jsonl_log import JsonlLog
from engine.services.settings import Settings
from engine.settings import port_env

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


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (CPython's default: 700)."""
GC_SWEEP_S = 60.0
"""The young generations are collected at least this often, whatever the traffic (``tune_gc``)."""


def tune_gc() -> threading.Thread:
    """A service allocates a few container objects per message (the validated model and its
    dicts and lists) that reference counting frees at once. CPython's cyclic collector,
    triggered every 700 allocations by default, re-traverses young objects and, every so often,
    everything alive: more than half the cost of decoding a telemetry sample, measured
    (docs/live.md). So, once the service is built, everything alive is frozen out of the
    collector (``gc.freeze``: start-up objects are never traversed again) and the youngest
    generation is collected every ``GC_YOUNG_THRESHOLD`` allocations.

    That count is allocations *less* deallocations of container objects, so in a service whose
    messages are freed as fast as they come it hardly moves: the ticket and review services ran
    12 minutes of steady traffic without one collection, while the cycles asyncio leaves behind
    each closed HTTP connection (transport, socket, bound method: ~1 KiB, seven objects) piled
    up, one per ``/health`` call. A sweeper thread therefore collects the two
    young generations every ``GC_SWEEP_S`` (a few milliseconds: frozen objects are skipped), so
    cyclic garbage is held for at most that long, and then hands the heap's free pages back to
    the system (``engine.heap.trim``). Returns the sweeper."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, second, third)
    sweeper = threading.Thread(target=_sweep_gc, args=(GC_SWEEP_S,), name="gc-sweep", daemon=True)
    sweeper.start()
    return sweeper


def _sweep_gc(every_s: float) -> None:
    while True:
        time.sleep(every_s)
        gc.collect(1)
        trim()


class Service:
    name: ClassVar[str] = "service"
    title: ClassVar[str] = "Control Room service"
    health_model: ClassVar[type[Health]] = Health
    max_body_bytes: ClassVar[int | None] = None
    """A lower HTTP body limit than ``Settings.max_body_bytes`` for this service (None: that)."""
    http_protocol: ClassVar[Any] = None
    """uvicorn's HTTP protocol: a class extends it (the review service reads peer credentials).
    None: ``engine.http_server.BoundedH11Protocol`` (request heads bounded in time), imported
    when the service runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instance = settings.instance
        self.started_at = time.time()
        self.broker_url = settings.broker_url or DEFAULT_URL
        self.port = settings.port
        """The HTTP port (the one bound, once ``listeners()`` ran: 0 becomes a free port)."""
        self.log = JsonlLog(settings.var / "logs" / f"{self.instance}.jsonl", self.instance)
        shard = settings.shard
        self.bus = BusClient(
            self.broker_url,
            client_id=f"{settings.client_prefix}-{self.instance}",
            service_name=self.instance,
            tls=TlsOptions(
                settings.ca_file, settings.cert_file, settings.key_file, settings.insecure
            ),
            # Only the old one-level telemetry layout needs the check (bucketed topics arrive
            # only at their owner); with $share the broker decides who owns what.
            accept=shard.owns if shard.count > 1 and not settings.share_group else None,
            on_event=self._bus_event,
            identity=self.name,
            var=settings.var,
            credentials=settings.credentials,
            deadletter_max_bytes=settings.deadletter_max_bytes,
            inbox_limit_bytes=settings.inbox_max_bytes,
        )
        self.app = FastAPI(title=f"{self.title} ({self.instance})", lifespan=self._lifespan)
        self.http_limits = mount_body_limit(
            self.app, min(settings.max_body_bytes, self.max_body_bytes or settings.max_body_bytes)
        )
        self.app.add_api_route("/health", self._health_endpoint, methods=["GET"])
        self._server: Any = None

    # ---------------------------------------------------------------- hooks

    def on_start(self) -> None:
        """Start the service's own work (the bus is already connecting)."""

    def on_stop(self) -> None:
        """Stop the service's own work, before the bus drains and disconnects."""

    def health_extras(self) -> dict[str, object]:
        """This service's own /health fields (``health_model`` says which)."""
        return {}

    def problems(self) -> list[str]:
        """Why the service is not fine right now (empty: it is)."""
        reasons = []
        if not self.bus.connected:
            reasons.append(f"broker not connected{_because(self.bus.last_error)}")
        elif not self.bus.subscribed:
            reasons.append("subscriptions not yet acknowledged by the broker")
        retrying = self.bus.retrying
        if retrying is not None:
            reasons.append(
                f"a message on {retrying.topic} is not durable yet "
                f"({retrying.attempts} attempts): {retrying.error}"
            )
        if self.bus.deadletters.stats.write_errors:
            reasons.append(f"dead letters cannot be written to {self.bus.deadletters.path}")
        return reasons

    def listeners(self) -> list[socket.socket] | None:
        """Sockets to serve on, bound here (OSError when that fails). Port 0 binds a free port
        with no race: the port bound is ``self.port``, announced in ``ready_file``."""
        host = self.settings.host or "0.0.0.0"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, self.settings.port), family=family, backlog=128)
        self.port = int(sock.getsockname()[1])
        return [sock]

    @property
    def ready_file(self) -> Path:
        """``var/run/{instance}.json``: {pid, host, port} once the service listens (``Stack``
        reads it to learn a port bound as 0)."""
        return self.settings.var / "run" / f"{self.instance}.json"

    # ---------------------------------------------------------------- common

    def health(self) -> Health:
        """The /health body as its model (ValidationError if a service strays from it)."""
        return self.health_model.model_validate(self._health_body())

    def _health_body(self) -> dict[str, object]:
        counters = self.bus.counters.snapshot()
        dl = self.bus.deadletters
        retrying = self.bus.retrying
        reasons = self.problems()
        body: dict[str, object] = {
            "service": self.name,
            "instance": self.instance,
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 3),
            "restarts": self.settings.restarts,
            "broker": {
                "url": redact_url(self.broker_url),
                "identity": self.bus.username,
                "connected": self.bus.connected,
                "subscribed": self.bus.subscribed,
                "error": self.bus.last_error,
            },
            "shard": str(self.settings.shard),
            "last_message_at": counters.pop("last_message_at"),
            "last_published_at": counters.pop("last_published_at"),
            "queue_depth": self.bus.queue_depth,
            "queue_bytes": self.bus.queue_bytes,
            "dead_letters": counters["dead_letters"],
            "counters": counters,
            "deadletter": {
                "file": str(dl.path),
                "max_bytes": dl.max_bytes,
                **vars(dl.stats),
            },
            "retrying": vars(retrying) if retrying is not None else None,
            "http": self.http_limits.snapshot(),
            **self.health_extras(),
        }
        return body

    def _health_endpoint(self) -> JSONResponse:
        body = self._health_body()
        try:
            health = self.health_model.model_validate(body)
        except ValueError as exc:  # a bug, never a reason to hide the service's state
            log.error("%s: /health does not match %s: %s", self.instance,
                      self.health_model.__name__, exc)  # fmt: skip
            reasons = [*self.problems(), "/health body does not match its model"]
            raw = {**body, "status": "degraded", "reasons": reasons}
            return JSONResponse(jsonable_encoder(raw), status_code=503)
        return JSONResponse(
            health.model_dump(mode="json"), status_code=200 if health.status == "ok" else 503
        )

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
            identity=self.bus.username,
            shard=str(self.settings.shard),
            restarts=self.settings.restarts,
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

    def server_config(self) -> Any:
        """uvicorn's configuration of this service (also what in-process tests serve with, so
        they meet the same bounds). The listening sockets are ``listeners()``, passed to run."""
        import uvicorn

        from engine import http_server  # uvicorn's protocol: imported only by a service that runs

        return uvicorn.Config(
            self.app,
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            http=self.http_protocol or http_server.BoundedH11Protocol,
            limit_concurrency=http_server.MAX_CONNECTIONS,
        )

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM (or until the parent ``Stack`` disappears)."""
        import uvicorn

        host, port = self.settings.host, self.settings.port
        self._server = uvicorn.Server(self.server_config())
        try:
            sockets = self.listeners()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = f"port {port} on {host} is in use"
            else:
                why = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            print(
                f"controlroom serve {self.name}: {why} "
                f"(choose another with --host/--port or {port_env(self.name)})",
                file=sys.stderr,
            )
            return 1
        port = self.port
        self._announce_ready(host, port)
        self._watch_parent()
        log.info(
            "%s listening on http://%s:%d (broker %s as %s)",
            self.instance,
            host,
            port,
            redact_url(self.broker_url),
            self.bus.username or "anonymous",
        )
        tune_gc()
        fix_mmap_threshold()  # large messages must not stay resident in a long-lived heap
        try:
            self._server.run(sockets=sockets)
        finally:
            self.ready_file.unlink(missing_ok=True)
        return 0 if self._server.started else 1

    def _announce_ready(self, host: str, port: int) -> None:
        path = self.ready_file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"pid": os.getpid(), "host": host, "port": port}))
            os.replace(tmp, path)
        except OSError as exc:  # only port-0 callers need it; say so and go on
            log.warning("%s: cannot write %s: %s", self.instance, path, exc)

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


def _because(error: str | None) -> str:
    return f": {error}" if error else ""
