"""Which MQTT broker the plant talks to, and starting one when there is none.

``ensure_broker(url)`` is the single decision point used by ``controlroom up``, the TUI demo and
the tests:

- a URL names a broker (``mqtt://[user:pass@]host:port`` or ``mqtts://…``): use it as is;
- no URL and an MQTT broker on 127.0.0.1:1883 accepts a connection: use that one;
- otherwise (or with the URL ``embedded``): start one for the lifetime of the handle — a
  Mosquitto child process on a free port when the binary is installed, else amqtt in-process.
  Every broker started this way requires credentials and enforces ``engine.bus.acl.ACL`` (one
  identity per service; the credentials are generated on first use into ``var/broker/``).

Credentials live in the URL and never leave it in readable form: ``BrokerInfo`` prints a redacted
URL, and child processes receive the URL through the environment, not the command line.

Why one module of ~570 lines: choosing, probing and starting a broker is one decision
(``ensure_broker``) with its two implementations (a Mosquitto child, amqtt in-process) and the URL
handling they share; amqtt's ACL plugins are in ``amqtt_embedded.py``.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

BrokerKind = Literal["external", "mosquitto", "amqtt"]
DEFAULT_URL = "mqtt://127.0.0.1:1883"
EMBEDDED = "embedded"
MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerError(RuntimeError):
    """A broker URL that cannot be used, or an embedded broker that would not start."""


# --------------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerAddress:
    """A parsed broker URL. ``password`` is kept out of ``repr``."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[user:pass@]host[:port]`` (default 1883) or ``mqtts://…`` (default 8883)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise BrokerError(
            f"broker URL {redact_url(url)!r}: scheme must be mqtt:// or mqtts://"
            f" (got {parts.scheme or 'none'!r})"
        )
    tls = parts.scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise BrokerError(f"broker URL {redact_url(url)!r} names no host")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise BrokerError(f"broker URL {redact_url(url)!r} has an invalid port") from None
    if parts.path not in ("", "/"):
        raise BrokerError(f"broker URL {redact_url(url)!r}: unexpected path {parts.path!r}")
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for logs and errors)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return parts._replace(netloc=f"{user}:***@{netloc}").geturl()
    except ValueError:
        return "<unparseable broker URL>"


@dataclass(frozen=True)
class BrokerInfo:
    """The broker in use. ``url`` may carry credentials; ``str()``/``repr()`` never show them."""

    url: str
    host: str
    port: int
    kind: BrokerKind
    detail: str = ""
    """Human note for the one log line: version, pid, how it was chosen."""

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def describe(self) -> str:
        """The one line a command logs to say which broker is in use."""
        what = {
            "external": "external broker",
            "mosquitto": "embedded Mosquitto",
            "amqtt": "embedded amqtt (in-process)",
        }[self.kind]
        extra = f" ({self.detail})" if self.detail else ""
        return f"broker: {what} at {self.display_url}{extra}"

    def __repr__(self) -> str:
        return f"BrokerInfo(kind={self.kind!r}, url={self.display_url!r})"

    __str__ = describe


# --------------------------------------------------------------------------------------------
# Probing
# --------------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``port`` can be bound right now (what "no port left bound" means)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body


def connack_code(host: str, port: int, timeout: float = 0.5) -> int | None:
    """The return code an MQTT 3.1.1 broker on host:port gives an anonymous CONNECT (0 accepted,
    5 not authorised, …), or None when nothing there speaks MQTT."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(_connect_packet(f"controlroom-probe-{uuid.uuid4().hex[:8]}"))
            ack = b""
            while len(ack) < 4:
                chunk = s.recv(4 - len(ack))
                if not chunk:
                    return None
                ack += chunk
            with _suppress_oserror():
                s.sendall(b"\xe0\x00")
            return ack[3] if ack[0] == 0x20 else None
    except OSError:
        return None


def probe_mqtt(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when an MQTT broker answers a CONNECT on host:port (accepting it or asking for
    credentials) — not merely a TCP listener: something else on :1883 is not a broker."""
    return connack_code(host, port, timeout) is not None


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return isinstance(exc, OSError)


def wait_listening(
    host: str, port: int, timeout: float, alive: Callable[[], bool] | None = None
) -> None:
    """Wait until host:port accepts TCP connections (a process that dies first fails fast)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise BrokerError(f"broker process exited before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise BrokerError(f"no broker listening on {host}:{port} after {timeout:.0f}s")


# --------------------------------------------------------------------------------------------
# Handles
# --------------------------------------------------------------------------------------------


class BrokerHandle(Protocol):
    """What ``ensure_broker`` returns beside the info: stopping frees every resource it holds."""

    def stop(self) -> None: ...


class ExternalBroker:
    """A broker someone else runs: nothing to stop."""

    def stop(self) -> None:
        return None


def mosquitto_binary() -> str | None:
    for cand in MOSQUITTO_CANDIDATES:
        path = shutil.which(cand) or (cand if os.access(cand, os.X_OK) else None)
        if path:
            return path
    return None


MOSQUITTO_CONF = """\
# Written by controlroom for an embedded broker; see mosquitto.conf at the repo root for the
# deployment one. Mosquitto 2.x ignores -p once a listener is configured, hence the listener line.
listener {port} {host}
allow_anonymous true
# Started as root, Mosquitto would switch to user "mosquitto" and could not write its state here.
user {user}
# Persistent sessions (clean_session=false) keep subscriptions and queued QoS 1 messages across a
# client restart; persistence keeps them across a broker restart. With autosave_on_changes the
# in-memory database is saved after every change (queued message, subscription), not once a
# second: a broker killed right after acknowledging a publish has it on disk.
persistence true
persistence_location {state}/
autosave_on_changes true
autosave_interval 1
# The default of 1000 queued messages per client would drop telemetry during bursts.
max_queued_messages 100000
max_inflight_messages 100
log_dest file {state}/mosquitto.log
log_type error
log_type warning
log_type notice
connection_messages true
"""


class MosquittoBroker:
    """A Mosquitto child process on a loopback port, restartable on the same port with its
    persisted sessions (what the restart tests need)."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        workdir: Path | None = None,
        tls: tuple[str, str] | None = None,
        password_file: str | None = None,
        credentials: Mapping[str, str] | None = None,
        save_every_change: bool = True,
    ) -> None:
        """``tls``: (certfile, keyfile) to serve mqtts:// on the port instead of mqtt://;
        ``password_file`` (from ``mosquitto_passwd``): refuse anonymous clients;
        ``credentials`` (identity -> password): refuse anonymous clients and enforce
        ``engine.bus.acl.ACL`` (password and ACL files written into the work dir);
        ``save_every_change=False``: save once a second instead (a long-lived test broker
        shared by many tests, whose database grows with every test's persistent sessions)."""
        binary = mosquitto_binary()
        if binary is None:
            raise BrokerError("mosquitto is not installed")
        self.binary = binary
        self.host = host
        self.port = port or free_port(host)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(
                prefix="controlroom-mosquitto-", dir=_state_dir()
            )
            workdir = Path(self._tmp.name)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path = self.workdir / "mosquitto.conf"
        conf = MOSQUITTO_CONF.format(
            port=self.port, host=host, state=self.workdir, user=getpass.getuser()
        )
        if not save_every_change:
            conf = conf.replace("autosave_on_changes true\n", "")
        if tls is not None:
            conf += f"certfile {tls[0]}\nkeyfile {tls[1]}\n"
        if credentials is not None:
            from engine.bus.acl import write_mosquitto_auth

            password_file, acl_file = (str(f) for f in write_mosquitto_auth(
                self.workdir / "auth", credentials
            ))  # fmt: skip
            conf += f"acl_file {acl_file}\n"
        if password_file is not None:
            conf = conf.replace("allow_anonymous true", "allow_anonymous false")
            conf += f"password_file {password_file}\n"
        self.secured = password_file is not None
        self.conf_path.write_text(conf)
        self.tls = tls is not None
        self.proc: subprocess.Popen[bytes] | None = None
        self.version = _mosquitto_version(binary)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        if self.proc is not None and self.proc.poll() is None:
            return self
        deadline = time.monotonic() + timeout
        while True:
            # The port may still be in TIME_WAIT/bound for a moment after a kill: retry briefly.
            with open(self.workdir / "stderr.log", "ab") as errlog:
                proc = self.proc = subprocess.Popen(
                    [self.binary, "-c", str(self.conf_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errlog,
                    # Its own session: a Ctrl-C meant for `controlroom up` must not stop the
                    # broker before the services have flushed what they publish on the way out.
                    start_new_session=True,
                    preexec_fn=_die_with_parent_fn(),
                )
            try:
                wait_listening(
                    self.host,
                    self.port,
                    max(0.5, deadline - time.monotonic()),
                    alive=functools.partial(_running, proc),
                )
                return self
            except BrokerError:
                reason = self._reap()
                if time.monotonic() >= deadline:
                    raise BrokerError(
                        f"mosquitto failed to start on {self.host}:{self.port}: "
                        f"{reason or 'timeout'}"
                    ) from None
                time.sleep(0.1)

    def _reap(self) -> str:
        """Kill a child that failed to come up; return the last line it logged (the reason)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=5)
            self.proc = None
        for log in (self.workdir / "stderr.log", self.workdir / "mosquitto.log"):
            lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
            if lines:
                return lines[-1]
        return ""

    def stop(self, kill: bool = False, timeout: float = 10.0) -> None:
        """SIGTERM (Mosquitto saves its state and exits) or, with ``kill``, SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def info(self, detail: str = "") -> BrokerInfo:
        note = ", ".join(x for x in (self.version, f"pid {self.pid}", detail) if x)
        return BrokerInfo(self.url, self.host, self.port, "mosquitto", note)


def _state_dir() -> str | None:
    """Where an embedded broker keeps its state: memory-backed ``/dev/shm`` when there is one.

    The embedded broker lives as long as ``controlroom up`` and its state directory goes with
    it, so what its persistence must survive is a crash of the broker process — which a tmpfs
    survives. Mosquitto saves (and fsyncs) its whole database on every change; on a disk that
    caps QoS 1 traffic at a few hundred messages per second, in memory it costs next to
    nothing."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def _running(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def _die_with_parent_fn() -> Callable[[], None] | None:
    """On Linux, when started from the main thread: the broker gets SIGTERM if this process
    dies, even by SIGKILL, so no Mosquitto outlives its owner. (The kernel ties this to the
    forking *thread*, hence not from worker threads, which end long before the process.)"""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

    def set_pdeathsig() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return set_pdeathsig


def _mosquitto_version(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "-h"], capture_output=True, timeout=5, check=False
        ).stdout.decode(errors="replace")
    except (OSError, subprocess.SubprocessError):
        return ""
    first = out.splitlines()[0] if out else ""
    return first.replace("mosquitto version", "Mosquitto").strip()


class AmqttBroker:
    """amqtt in this process, on its own thread and event loop (callers stay synchronous).

    amqtt keeps sessions in memory only: a restart loses them (Mosquitto persists them), and it
    forgets a delivery whose PUBACK has not come within 5 s. ``credentials`` (identity ->
    password): refuse anonymous clients and enforce ``engine.bus.acl.ACL``."""

    def __init__(
        self, port: int = 0, host: str = "127.0.0.1", credentials: Mapping[str, str] | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.credentials = dict(credentials) if credentials is not None else None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> AmqttBroker:
        from engine.bus.amqtt_embedded import run_amqtt

        if self._thread is not None:
            return self
        ready = threading.Event()
        result: dict[str, object] = {}

        def main() -> None:
            run_amqtt(self.host, self.port, ready, result, self.credentials)

        self._thread = threading.Thread(target=main, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise BrokerError("amqtt did not start in time")
        if "error" in result:
            self._thread.join(timeout=5)
            self._thread = None
            raise BrokerError(f"amqtt failed to start: {result['error']}")
        port, loop, stop = result["port"], result["loop"], result["stop"]
        assert isinstance(port, int) and isinstance(loop, asyncio.AbstractEventLoop)
        assert isinstance(stop, asyncio.Event)
        self.port, self._loop, self._stop, self._broker = port, loop, stop, result["broker"]
        return self

    def client_connected(self, client_id: str, timeout: float = 5.0) -> bool:
        """Whether the broker still counts ``client_id`` as connected (see
        ``amqtt_embedded.session_connected``: why a test must wait for False)."""
        from engine.bus.amqtt_embedded import session_connected

        if self._loop is None:
            return False
        future = asyncio.run_coroutine_threadsafe(
            session_connected(self._broker, client_id), self._loop
        )
        return future.result(timeout)

    def stop(self) -> None:
        if self._thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=10)
        self._thread = None

    def restart(self, kill: bool = False) -> None:
        """Stop and start again on the same port (``kill`` is accepted for symmetry)."""
        self.stop()
        self.start()

    cleanup = stop

    def info(self, detail: str = "") -> BrokerInfo:
        return BrokerInfo(self.url, self.host, self.port, "amqtt", detail)


class _EmbeddedHandle:
    def __init__(self, broker: MosquittoBroker | AmqttBroker) -> None:
        self.broker = broker

    def stop(self) -> None:
        self.broker.cleanup()

    def restart(self, kill: bool = False) -> None:
        self.broker.restart(kill=kill)


def start_embedded(
    prefer: Literal["mosquitto", "amqtt"] | None = None,
    port: int = 0,
    workdir: Path | None = None,
    credentials: Mapping[str, str] | None = None,
) -> MosquittoBroker | AmqttBroker:
    """Start an embedded broker: Mosquitto when installed (or asked for), else amqtt. With
    ``credentials`` it requires them and enforces the ACL (what ``ensure_broker`` does)."""
    if prefer != "amqtt" and mosquitto_binary() is not None:
        return MosquittoBroker(port=port, workdir=workdir, credentials=credentials).start()
    if prefer == "mosquitto":
        raise BrokerError("mosquitto is not installed")
    return AmqttBroker(port=port, credentials=credentials).start()


def ensure_broker(
    url: str | None, *, credentials_file: Path, group: str | None = None
) -> tuple[BrokerInfo, BrokerHandle]:
    """The broker to use and a handle whose ``stop()`` frees whatever was started for it.

    ``url``: a broker URL (used as is, not probed: it may come up later and clients reconnect),
    ``None`` (the local :1883 broker if one answers, else embedded), or ``"embedded"``. An
    embedded broker requires the per-service credentials of ``credentials_file`` (the caller's
    ``acl.credentials_path``), generated on first use; ``group``: the operators' group, which
    may read the TUI's identity (``acl.ensure_credentials``).
    """
    if url and url != EMBEDDED:
        addr = parse_broker_url(url)
        return BrokerInfo(url, addr.host, addr.port, "external", "named"), ExternalBroker()
    if url is None and connack_code("127.0.0.1", 1883) == 0:  # a broker that takes us as we are
        info = BrokerInfo(DEFAULT_URL, "127.0.0.1", 1883, "external", "found on 127.0.0.1:1883")
        return info, ExternalBroker()
    from engine.bus.acl import ensure_credentials

    broker = start_embedded(credentials=ensure_credentials(credentials_file, group))
    return broker.info("credentials + ACL"), _EmbeddedHandle(broker)
