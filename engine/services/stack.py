"""The whole live plant as child processes: a broker plus the five ``controlroom serve NAME``.

Used by ``controlroom up``, the TUI's ``controlroom demo`` and the end-to-end / restart tests.
Each service is a real process (the same command docker-compose runs), so a test can SIGTERM or
SIGKILL one and start it again. Guarantees on ``stop()``: every child has exited (SIGTERM, then
SIGKILL after a grace period), the embedded broker is stopped, and every port the stack bound can
be bound again. Children also watch their parent pid, so even a SIGKILLed ``up`` leaves no orphan.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import httpx

from engine.bus.broker import BrokerHandle, BrokerInfo, ensure_broker, free_port, port_is_free
from engine.paths import var_dir
from engine.services.base import PARENT_PID_ENV
from engine.services.settings import DEFAULT_PORTS, SERVICE_NAMES, port_env

CODE_ROOT = str(Path(__file__).resolve().parents[2])
"""Children import this very code, installed or not."""

START_ORDER = ("review", "ticket", "diagnosis", "monitor", "simulator")
"""Consumers first, so nothing the simulator publishes at start has no one listening yet."""


class StackError(RuntimeError):
    """A service that would not start or answer /health; the message quotes its last output."""


class Stack:
    def __init__(
        self,
        broker_url: str | None = None,
        scenario: str | None = None,
        speed: float | None = None,
        ports: Mapping[str, int] | str | None = None,
        var: Path | str | None = None,
        *,
        services: Iterable[str] = SERVICE_NAMES,
        host: str = "127.0.0.1",
        assets: int | None = None,
        seed: int | None = None,
        rate_hz: float | None = None,
        env: Mapping[str, str] | None = None,
        client_prefix: str | None = None,
        console: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        """``ports``: name -> port, or ``"auto"`` for free ports (tests), or None for the
        configured ones (``CONTROLROOM_*_PORT`` or 8101..8105). ``console``: children write to
        this terminal (``up``) instead of ``var/logs/{name}.out`` (the TUI demo, tests).
        ``client_prefix``: MQTT client-id prefix of the children (default ``controlroom``); give
        each stack that shares a broker with another its own (tests: a unique one), or they
        resume each other's persistent sessions."""
        self.broker_url = broker_url
        self.services = tuple(s for s in START_ORDER if s in set(services))
        unknown = set(services) - set(SERVICE_NAMES)
        if unknown:
            raise StackError(f"unknown service(s): {', '.join(sorted(unknown))}")
        self.host = host
        self.var = Path(var) if var is not None else var_dir()
        self.var.mkdir(parents=True, exist_ok=True)
        self.console = console
        self.startup_timeout = startup_timeout
        if ports == "auto":
            self.ports = {name: free_port(host) for name in self.services}
        else:
            given = dict(ports or {})
            self.ports = {
                name: int(given.get(name) or os.environ.get(port_env(name)) or DEFAULT_PORTS[name])
                for name in self.services
            }
        self.extra_env: dict[str, str] = dict(env or {})
        if scenario is not None:
            self.extra_env["CONTROLROOM_SCENARIO"] = scenario
        if client_prefix is not None:
            self.extra_env["CONTROLROOM_CLIENT_PREFIX"] = client_prefix
        for key, value in (
            ("CONTROLROOM_SPEED", speed),
            ("CONTROLROOM_ASSETS", assets),
            ("CONTROLROOM_SEED", seed),
            ("CONTROLROOM_RATE_HZ", rate_hz),
        ):
            if value is not None:
                self.extra_env[key] = str(value)
        self.broker: BrokerInfo | None = None
        self.broker_handle: BrokerHandle | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._outputs: dict[str, IO[bytes]] = {}

    # ---------------------------------------------------------------- public

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://{self.host}:{port}" for name, port in self.ports.items()}

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items() if p.poll() is None}

    def start_broker(self) -> BrokerInfo:
        """Pick or start the broker (``start()`` does it if not done yet); returns its info, so
        a caller can announce it before the services start."""
        if self.broker is None:
            busy = [f"{n}:{p}" for n, p in self.ports.items() if not port_is_free(p, self.host)]
            if busy:
                raise StackError(
                    f"port(s) in use: {', '.join(busy)} — another stack running? "
                    f"(set CONTROLROOM_<SERVICE>_PORT to move them)"
                )
            self.broker, self.broker_handle = ensure_broker(self.broker_url)
        return self.broker

    def start(self) -> Stack:
        """Broker, then the consumers, then — once they are connected and subscribed, so none
        of its first samples go unheard — the simulator."""
        self.start_broker()
        try:
            consumers = [n for n in self.services if n != "simulator"]
            for name in consumers:
                self.start_service(name, wait=False)
            self.wait_healthy(consumers, timeout=self.startup_timeout)
            if "simulator" in self.services:
                self.start_service("simulator", wait=True)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_service(self, name: str, wait: bool = True) -> None:
        """(Re)start one service process; with ``wait``, until its /health says connected."""
        assert self.broker is not None, "start() the stack first"
        old = self.procs.get(name)
        if old is not None and old.poll() is None:
            raise StackError(f"{name} is already running (pid {old.pid})")
        pythonpath = os.pathsep.join(p for p in (CODE_ROOT, os.environ.get("PYTHONPATH")) if p)
        env = {
            **os.environ,
            **self.extra_env,
            "PYTHONPATH": pythonpath,
            "CONTROLROOM_BROKER": self.broker.url,
            "CONTROLROOM_VAR": str(self.var),
            "CONTROLROOM_HOST": self.host,
            port_env(name): str(self.ports[name]),
            PARENT_PID_ENV: str(os.getpid()),
            "PYTHONUNBUFFERED": "1",
        }
        cmd = [sys.executable, "-m", "engine", "serve", name]
        if self.console:
            out: Any = None
        else:
            logs = self.var / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            out = self._outputs[name] = (logs / f"{name}.out").open("ab")
        self.procs[name] = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out if out is not None else None,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,  # Ctrl-C reaches `up` only; it stops children in order
        )
        if wait:
            self.wait_healthy([name], timeout=self.startup_timeout)

    def stop_service(
        self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0
    ) -> int | None:
        """Send ``sig`` (SIGTERM: graceful; SIGKILL: crash) and wait for the exit code."""
        proc = self.procs.get(name)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._wait_port_free(self.ports[name])
        return proc.returncode

    def restart_service(self, name: str, sig: int = signal.SIGTERM) -> None:
        self.stop_service(name, sig)
        self.start_service(name, wait=True)

    def restart_broker(self, kill: bool = False) -> None:
        """Restart the embedded broker on the same port (SIGKILL with ``kill``)."""
        restart = getattr(self.broker_handle, "restart", None)
        if restart is None:
            raise StackError("the stack uses an external broker; it cannot restart it")
        restart(kill=kill)

    def health(self, name: str, timeout: float = 2.0) -> dict[str, Any]:
        r = httpx.get(f"{self.urls[name]}/health", timeout=timeout)
        return r.json()

    def wait_healthy(self, names: Iterable[str] | None = None, timeout: float = 30.0) -> None:
        """Until each named service answers /health with 200 (broker connected)."""
        pending = list(self.services if names is None else names)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as http:
            while pending:
                name = pending[0]
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise StackError(
                        f"{name} exited with code {proc.returncode} during start-up"
                        f"{self._tail(name)}"
                    )
                try:
                    if http.get(f"{self.urls[name]}/health").status_code == 200:
                        pending.pop(0)
                        continue
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{name} did not become healthy within {timeout:.0f}s{self._tail(name)}"
                    )
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Stop every child (SIGTERM, SIGKILL after ``timeout``), then the broker; wait until
        every port is free again. Returns what is still left over (empty when clean)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for f in self._outputs.values():
            f.close()
        self._outputs.clear()
        if self.broker_handle is not None:
            self.broker_handle.stop()
            self.broker_handle = None
        left = [
            f"{n} (pid {p.pid}) still running" for n, p in self.procs.items() if p.poll() is None
        ]
        for name, port in self.ports.items():
            if not self._wait_port_free(port):
                left.append(f"port {port} ({name}) still bound")
        embedded = self.broker is not None and self.broker.kind != "external"
        if embedded and not self._wait_port_free(self.broker.port):  # type: ignore[union-attr]
            left.append(f"broker port {self.broker.port} still bound")  # type: ignore[union-attr]
        return left

    # ---------------------------------------------------------------- helpers

    def _wait_port_free(self, port: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not port_is_free(port, self.host):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _tail(self, name: str, lines: int = 15) -> str:
        path = self.var / "logs" / f"{name}.out"
        if self.console or not path.exists():
            return ""
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
        return ":\n    " + "\n    ".join(text) if text else ""
