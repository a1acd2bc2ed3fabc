"""The whole live plant as child processes: a broker plus the five ``controlroom serve NAME``.

Used by ``controlroom up``, the TUI's ``controlroom demo`` and the end-to-end / restart tests.
Each service is a real process (the same command docker-compose runs), so a test can SIGTERM or
SIGKILL one and start it again. Guarantees on ``stop()``: every child has exited (SIGTERM, then
SIGKILL after a grace period), the embedded broker is stopped, and every port the stack bound can
be bound again. Children also watch their parent pid, so even a SIGKILLed ``up`` leaves no orphan.

Supervision (``supervise=True``, what ``up`` and ``demo`` use): a child that exits on its own, or
an embedded Mosquitto that dies, is restarted after a backoff (``RestartPolicy``: 0.5 s doubling
to 30 s), logged (console and ``var/logs/stack.jsonl``) and counted; the restarted service shows
``restarts`` in its /health. The state of every part is kept in ``var/stack.json``
(``engine.http_schemas.StackStatus``), which the TUI reads. Only a crash loop (5 exits within two
minutes) makes the supervisor give up: ``gave_up`` says why and ``up`` stops everything.

Why one module of ~520 lines: ``Stack`` starts, supervises and stops one set of processes; start,
restart and stop share the process table and the port bookkeeping that guarantee nothing is left
running or bound.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from engine.bus.acl import CREDENTIALS_ENV, OPERATORS_GROUP_ENV, credentials_path
from engine.bus.broker import (
    BrokerHandle,
    BrokerInfo,
    MosquittoBroker,
    ensure_broker,
    port_is_free,
)
from engine.http_answer import NotJson, json_of, send_bounded
from engine.http_schemas import PartState, PartStatus, StackStatus
from engine.paths import var_dir
from engine.services.base import PARENT_PID_ENV
from engine.services.jsonl_log import JsonlLog
from engine.settings import SERVICE_NAMES, Config, port_env

CODE_ROOT = str(Path(__file__).resolve().parents[2])
"""Children import this very code, installed or not."""

START_ORDER = ("review", "ticket", "diagnosis", "monitor", "simulator")
"""Consumers first, so nothing the simulator publishes at start has no one listening yet."""
STATUS_FILE = "stack.json"
SUPERVISE_EVERY_S = 0.25


@functools.cache
def _http() -> httpx.Client:
    """The stack's one client for its services' HTTP (plain, on this host). ``httpx.get``
    builds a client per call, and with it an SSL context: ~35 ms of CPU, 30 times the
    request. No keep-alive: a service restarted on the same port never meets a stale
    connection (``send_bounded`` asks for a connection of its own each call anyway)."""
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


ANSWER_MAX_BYTES = 4 * 1024 * 1024
"""The most of a child's answer the stack reads (its /health is a few KiB): whatever answers on
a child's port may be a squatter."""


def _call(method: str, url: str, timeout: float) -> httpx.Response:
    """One bounded call to a child: at most ``ANSWER_MAX_BYTES``, the whole exchange
    (connecting, the answer's head, its body) within 3 × ``timeout`` (``httpx.HTTPError``
    otherwise, like any transport failure): a squatter sending its head a line at a time held
    the caller (``up``'s wait for health, the supervisor) for as long as it liked. Synchronous,
    so callable from any thread, an event loop's included."""
    client = _http()
    request = client.build_request(method, url, timeout=timeout)
    return send_bounded(client, request, max_bytes=ANSWER_MAX_BYTES, limit_s=3 * timeout)


def _json_object(r: httpx.Response, what: str) -> dict[str, Any]:
    """The answer's JSON object, or a ``StackError`` naming ``what`` (not JSON, too deep, not
    an object)."""
    try:
        body = json_of(r)
    except NotJson:
        raise StackError(f"{what} answered {r.status_code} with no JSON") from None
    if not isinstance(body, dict):
        raise StackError(f"{what} answered {r.status_code} with JSON that is not an object")
    return body


class StackError(RuntimeError):
    """A service that would not start or answer /health; the message quotes its last output."""


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a crashed part, and when to stop trying (pure: times in, decision out)."""

    base_s: float = 0.5
    """Wait before restarting after a first crash, s; doubles with each further crash inside
    ``window_s``: a part that died once is back at once, one that keeps dying backs off."""
    cap_s: float = 30.0
    """The longest wait, s. With the defaults the fifth crash gives up first (waits 0.5, 1, 2,
    4 s), so the cap bounds only a policy that allows more crashes."""
    window_s: float = 120.0
    """Crashes older than this, s, are forgotten: a part that ran two minutes since its last
    crash starts again from ``base_s``."""
    max_crashes: int = 5
    """This many crashes inside ``window_s`` is a crash loop: the supervisor gives up and
    ``up`` stops everything, instead of restarting a part that cannot run."""

    def delay(self, crashes: Sequence[float], now: float) -> float | None:
        """Seconds to wait before the next restart, or None: a crash loop, give up."""
        recent = [t for t in crashes if now - t <= self.window_s]
        if len(recent) >= self.max_crashes:
            return None
        return float(min(self.cap_s, self.base_s * 2 ** max(0, len(recent) - 1)))


@dataclass
class _Part:
    state: PartState = "starting"
    pid: int | None = None
    restarts: int = 0
    last_exit: str | None = None
    last_exit_at: float | None = None
    next_restart_at: float | None = None
    crashes: deque[float] = field(default_factory=lambda: deque(maxlen=20))

    def status(self) -> PartStatus:
        return PartStatus(
            state=self.state,
            pid=self.pid,
            restarts=self.restarts,
            last_exit=self.last_exit,
            last_exit_at=self.last_exit_at,
            next_restart_at=self.next_restart_at,
        )


def describe_exit(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


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
        environ: Mapping[str, str],
        client_prefix: str | None = None,
        console: bool = False,
        startup_timeout: float = 30.0,
        supervise: bool = False,
        restart_policy: RestartPolicy | None = None,
    ) -> None:
        """``environ``: the environment over ``.env`` as the entry resolved it (the CLI passes
        its own, a test or bench ``process_environ()``); every child starts from it, with
        ``env`` over it. ``var``: the stack's runtime state (None: ``CONTROLROOM_VAR`` in
        ``environ``, else ``var/``).
        ``ports``: name -> port, or ``"auto"`` for free ports (tests), or None for the
        configured ones (``CONTROLROOM_*_PORT`` or 8101..8105). ``console``: children write to
        this terminal (``up``) instead of ``var/logs/{name}.out`` (the TUI demo, tests).
        ``client_prefix``: MQTT client-id prefix of the children (default ``controlroom``); give
        each stack that shares a broker with another its own (tests: a unique one), or they
        resume each other's persistent sessions. ``supervise``: restart crashed parts (see the
        module docstring) from ``start()`` until ``stop()``."""
        self.broker_url = broker_url
        self.services = tuple(s for s in START_ORDER if s in set(services))
        unknown = set(services) - set(SERVICE_NAMES)
        if unknown:
            raise StackError(f"unknown service(s): {', '.join(sorted(unknown))}")
        self.host = host
        self.environ: dict[str, str] = dict(environ)
        self.var = Path(var) if var is not None else var_dir(self.environ)
        self.var.mkdir(mode=0o755, parents=True, exist_ok=True)  # see var_dir
        self.credentials_file = credentials_path(
            self.environ, self.var if var is not None else None
        )
        """Per-service broker credentials: generated here when the stack starts its own
        broker, read by every child (and by a TUI on this machine)."""
        self.console = console
        self.startup_timeout = startup_timeout
        if ports == "auto":
            # 0: each service binds a free port itself and announces it (no window in which
            # another process could take a port picked here)
            self.ports = {name: 0 for name in self.services}
        else:
            given: Mapping[str, int] = ports if isinstance(ports, Mapping) else {}
            config = Config.load(self.environ) if len(given) < len(self.services) else None
            self.ports = {
                name: int(given.get(name) or (config.port(name) if config else 0))
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
        self.supervise = supervise
        self.policy = restart_policy or RestartPolicy()
        self.parts: dict[str, _Part] = {}
        self.gave_up: str | None = None
        """Why supervision stopped (a crash loop); the stack should then be stopped."""
        self.started_at = time.time()
        self._stopping = False
        self._halt = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._status_lock = threading.Lock()
        self._log: JsonlLog | None = None

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
            busy = [
                f"{n}:{p}" for n, p in self.ports.items() if p and not port_is_free(p, self.host)
            ]
            if busy:
                raise StackError(
                    f"port(s) in use: {', '.join(busy)} — another stack running? "
                    f"(set CONTROLROOM_<SERVICE>_PORT to move them)"
                )
            self.broker, self.broker_handle = ensure_broker(
                self.broker_url,
                credentials_file=self.credentials_file,
                group=self.environ.get(OPERATORS_GROUP_ENV),
            )
        return self.broker

    def start(self) -> Stack:
        """Broker, then every service at once; the simulator loads its scenario but holds it
        (``CONTROLROOM_SIMULATOR_HOLD``) until the consumers are connected and subscribed, so
        none of its first samples go unheard, and the processes' start-up (seconds of imports
        each on a small machine) overlaps instead of adding up."""
        self.start_broker()
        try:
            for name in self.services:
                self.start_service(name, wait=False, hold=name == "simulator")
            self.wait_healthy(list(self.services), timeout=self.startup_timeout)
            if "simulator" in self.services:
                self._play()
        except BaseException:
            self.stop()
            raise
        if self.supervise:
            self._supervisor = threading.Thread(
                target=self._supervise, name="stack-supervisor", daemon=True
            )
            self._supervisor.start()
        self._write_status()
        return self

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _play(self) -> None:
        """Play the scenario the simulator holds, if it loaded one (from ``scenario``, the
        environment or ``.env``); it loads before its /health answers."""
        sim = self.urls["simulator"]
        status = _call("GET", f"{sim}/scenario/status", timeout=10.0)
        status.raise_for_status()
        if not _json_object(status, "the simulator's /scenario/status").get("loaded"):
            return
        r = _call("POST", f"{sim}/scenario/start", timeout=10.0)
        if not r.is_success:
            raise StackError(
                f"simulator did not start its scenario: {r.status_code} {r.text[:500]!r}"
            )

    def start_service(self, name: str, wait: bool = True, hold: bool = False) -> None:
        """(Re)start one service process; with ``wait``, until its /health says connected.
        ``hold``: the simulator loads its scenario without playing it (``start`` plays it)."""
        assert self.broker is not None, "start() the stack first"
        old = self.procs.get(name)
        if old is not None and old.poll() is None:
            raise StackError(f"{name} is already running (pid {old.pid})")
        part = self.parts.setdefault(name, _Part())
        pythonpath = os.pathsep.join(p for p in (CODE_ROOT, os.environ.get("PYTHONPATH")) if p)
        env = {
            **self.environ,  # this process's environment over its .env, as resolved once
            **self.extra_env,
            "PYTHONPATH": pythonpath,
            "CONTROLROOM_BROKER": self.broker.url,
            "CONTROLROOM_VAR": str(self.var),
            "CONTROLROOM_HOST": self.host,
            port_env(name): str(self.ports[name]),
            PARENT_PID_ENV: str(os.getpid()),
            "PYTHONUNBUFFERED": "1",
            "CONTROLROOM_RESTARTS": str(part.restarts),
            CREDENTIALS_ENV: str(self.credentials_file),
            "CONTROLROOM_SIMULATOR_HOLD": "1" if hold else "0",
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
        part.state, part.pid, part.next_restart_at = "running", self.procs[name].pid, None
        if wait:
            self.wait_healthy([name], timeout=self.startup_timeout)

    def stop_service(
        self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0
    ) -> int | None:
        """Send ``sig`` (SIGTERM: graceful; SIGKILL: crash) and wait for the exit code. A
        service stopped this way is not restarted by the supervisor."""
        proc = self.procs.get(name)
        if proc is None:
            return None
        part = self.parts.setdefault(name, _Part())
        part.state = "stopped"
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
        r = _call("GET", f"{self.urls[name]}/health", timeout=timeout)
        return _json_object(r, f"{name}'s /health")

    def wait_healthy(self, names: Iterable[str] | None = None, timeout: float = 30.0) -> None:
        """Until each named service answers /health with 200 (broker connected)."""
        pending = list(self.services if names is None else names)
        deadline = time.monotonic() + timeout
        while pending:
            name = pending[0]
            proc = self.procs[name]
            if proc.poll() is not None:
                raise StackError(
                    f"{name} exited with code {proc.returncode} during start-up{self._tail(name)}"
                )
            try:
                if self._port_known(name, proc) and (
                    _call("GET", f"{self.urls[name]}/health", timeout=1.0).status_code == 200
                ):
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
        self._stopping = True
        self._halt.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
            self._supervisor = None
        for part in self.parts.values():
            part.state = "stopped"
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
        if embedded and self.broker is not None and not self._wait_port_free(self.broker.port):
            left.append(f"broker port {self.broker.port} still bound")
        self._write_status()
        if self._log is not None:
            self._log.close()
            self._log = None
        return left

    # ---------------------------------------------------------------- supervision

    def status(self) -> StackStatus:
        """Every part's state, restarts and last exit (also in ``var/stack.json``)."""
        broker = self.broker
        return StackStatus(
            pid=os.getpid(),
            started_at=self.started_at,
            updated_at=time.time(),
            broker=broker.describe() if broker is not None else None,
            supervised=self.supervise,
            gave_up=self.gave_up,
            parts={name: part.status() for name, part in self.parts.items()},
        )

    def _write_status(self) -> None:
        with self._status_lock:
            path = self.var / STATUS_FILE
            tmp = path.with_name(f".{path.name}.tmp")
            try:
                tmp.write_text(self.status().model_dump_json(indent=2) + "\n", encoding="utf-8")
                os.replace(tmp, path)
            except OSError:  # var/ became unwritable: supervision goes on, the file is stale
                pass

    def _event(self, event: str, echo: str, **fields: Any) -> None:
        print(f"controlroom: {echo}", file=sys.stderr, flush=True)
        if self._log is None:
            with contextlib.suppress(OSError):
                self._log = JsonlLog(self.var / "logs" / "stack.jsonl", "stack")
        if self._log is not None:
            self._log.event(event, **fields)

    def _supervise(self) -> None:
        while not self._halt.wait(SUPERVISE_EVERY_S):
            try:
                if self._supervise_once(time.monotonic()):
                    self._write_status()
            except Exception as exc:  # supervision must outlive whatever went wrong once
                self._event("supervisor_error", f"supervisor: {exc}", error=str(exc))
            if self.gave_up:
                return

    def _supervise_once(self, now: float) -> bool:
        """One look at every part; True when something changed."""
        changed = False
        watched: list[tuple[str, Any]] = list(self.procs.items())
        broker = getattr(self.broker_handle, "broker", None)
        if isinstance(broker, MosquittoBroker):
            watched.insert(0, ("broker", broker.proc))
        for name, proc in watched:
            if self._stopping:
                return changed
            part = self.parts.setdefault(name, _Part("running", getattr(proc, "pid", None)))
            if part.state == "running" and (proc is None or proc.poll() is not None):
                changed = True
                code = proc.returncode if proc is not None else None
                part.last_exit = describe_exit(code) if proc is not None else "gone"
                part.last_exit_at = time.time()
                part.crashes.append(now)
                delay = self.policy.delay(part.crashes, now)
                if delay is None:
                    part.state = "crash-loop"
                    self.gave_up = (
                        f"{name} exited {len(part.crashes)} times within "
                        f"{self.policy.window_s:.0f} s (last: {part.last_exit}); giving up"
                    )
                    self._event("crash_loop", self.gave_up, part=name, exit=part.last_exit)
                    return True
                part.state, part.next_restart_at = "restarting", time.time() + delay
                self._event(
                    "part_exited",
                    f"{name} {part.last_exit}; restarting in {delay:g} s "
                    f"(restart {part.restarts + 1})",
                    part=name,
                    exit=part.last_exit,
                    delay_s=delay,
                )
            elif part.state == "restarting" and time.time() >= (part.next_restart_at or 0):
                changed = True
                part.restarts += 1
                try:
                    if name == "broker" and isinstance(broker, MosquittoBroker):
                        broker.start()
                        part.state, part.pid = "running", broker.pid
                    else:
                        self.start_service(name, wait=False)
                except Exception as exc:  # counts as another crash at the next look
                    part.state, part.last_exit = "running", f"restart failed: {exc}"
                self._event(
                    "part_restarted",
                    f"{name} restarted (pid {part.pid}, restart {part.restarts})",
                    part=name,
                    pid=part.pid,
                    restarts=part.restarts,
                )
        return changed

    # ---------------------------------------------------------------- helpers

    def _port_known(self, name: str, proc: subprocess.Popen[bytes]) -> bool:
        """A port given as 0 is learnt from the service's ready file (written by that very
        process once it listens); it is then kept for restarts."""
        if self.ports[name]:
            return True
        try:
            ready = json.loads((self.var / "run" / f"{name}.json").read_text())
        except (OSError, ValueError):
            return False
        if ready.get("pid") != proc.pid:
            return False
        self.ports[name] = int(ready["port"])
        return True

    def _wait_port_free(self, port: int, timeout: float = 5.0) -> bool:
        if not port:
            return True
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
