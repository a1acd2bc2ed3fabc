"""Running the real ticket and review services as child processes (``controlroom serve NAME``),
exactly as ``controlroom up`` does, with their state under the test's tmp dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from probes import http
from tickets_data import alert, ticket

from engine.bus.broker import free_port
from engine.schemas import AlertEvent, Feedback, Ticket

ROOT = Path(__file__).resolve().parents[2]

LAUNCHED: list[ServiceProc] = []
"""Every service a test launched: the area's conftest stops what is still running after each
test, so a test that fails before its own ``finally`` leaves no process behind."""


def service_env(var: Path, broker_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONTROLROOM_", "GITHUB_", "SALESFORCE_"))
    }
    env.update(
        CONTROLROOM_VAR=str(var),
        CONTROLROOM_BROKER=broker_url,
        CONTROLROOM_ENV_FILE=str(var / "no.env"),
        CONTROLROOM_LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class ServiceProc:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.env = dict(env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = Path(env["CONTROLROOM_VAR"]) / f"{name}.stderr"

    def start(self, timeout: float = 60.0) -> ServiceProc:
        return self.launch().wait_healthy(timeout)

    def launch(self) -> ServiceProc:
        """Start the process without waiting (start several, then wait for each)."""
        self.stderr.parent.mkdir(parents=True, exist_ok=True)
        if self not in LAUNCHED:
            LAUNCHED.append(self)
        with self.stderr.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine", "serve", self.name, "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        return self

    def wait_healthy(self, timeout: float = 60.0) -> ServiceProc:
        """Until /health answers (``timeout`` only bounds a start that never comes: a Python
        service on a loaded shared machine can take well over 20 s to import and bind)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        relaunches = 3
        while True:
            if self.proc.poll() is not None:
                if relaunches and "is in use" in self.errors()[-300:]:
                    # Another process (this machine is shared) took the free port we picked
                    # before our child bound it: pick another.
                    relaunches -= 1
                    self.port = free_port()
                    self.url = f"http://127.0.0.1:{self.port}"
                    self.launch()
                    continue
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.errors()}")
            try:
                if http.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not healthy after {timeout}s: {self.errors()}")
            time.sleep(0.05)

    def health(self) -> dict[str, Any]:
        return http.get(self.url + "/health", timeout=5.0).json()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=5)
        self.proc = None
        return code

    def errors(self) -> str:
        return self.stderr.read_text(errors="replace")[-2000:] if self.stderr.exists() else ""


class Watcher:
    """Everything seen on tickets/+ and feedback/+ (latest ticket snapshot per id)."""

    def __init__(self, bus: Any) -> None:
        self.tickets: dict[str, Ticket] = {}
        self.feedback: list[Feedback] = []
        self.snapshots = 0
        self._lock = threading.Lock()
        bus.subscribe("tickets/+", self._ticket)
        bus.subscribe("feedback/+", self._feedback)

    def _ticket(self, t: Any) -> None:
        with self._lock:
            self.snapshots += 1
            old = self.tickets.get(t.ticket_id)
            if old is None or t.revision >= old.revision:
                self.tickets[t.ticket_id] = t

    def _feedback(self, fb: Any) -> None:
        with self._lock:
            self.feedback.append(fb)


def probe_alert() -> AlertEvent:
    return alert(alert_id=f"probe-{uuid.uuid4().hex[:8]}", asset="probe", signals=["probe"])


def probe_ticket() -> Ticket:
    return ticket(ticket_id="PROBE", asset="probe", severity="low", root_cause="unknown")


def wait_subscribed(svc: ServiceProc, watcher: Watcher, pub: Any, wait_for: Any) -> None:
    """/health turns green at CONNACK; the subscriptions take effect a moment later (SUBACK),
    and a message published before that is not queued for a first-time subscriber. Probe both
    the service (an alert it listens to) and the watcher (a ticket snapshot) until they answer."""

    def service_hears() -> bool:
        pub.publish(probe_alert())
        return svc.health()["counters"]["received_by_kind"].get("alerts", 0) > 0

    def watcher_hears() -> bool:
        pub.publish(probe_ticket())
        return "PROBE" in watcher.tickets

    wait_for(service_hears, what=f"{svc.name} subscribed", interval=0.2)
    wait_for(watcher_hears, what="watcher subscribed", interval=0.2)


def review_socket_client(var: Path) -> httpx.Client:
    """HTTP on the review service's Unix socket: the service names this test process's login
    as the operator (no token, nothing in the body)."""
    from engine.auth.socket_path import ShortPath

    short = ShortPath(var / "review.sock")
    client = httpx.Client(
        base_url="http://review", transport=httpx.HTTPTransport(uds=short.text), timeout=10.0
    )
    client._short_path = short  # type: ignore[attr-defined]  # keeps a long path's dir fd open
    return client
