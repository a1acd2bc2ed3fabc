"""Shared fixtures: a real MQTT broker per test session, isolated runtime state per test, and
waiting on conditions (never sleeping as synchronisation).

- ``broker``: BrokerInfo of a session-wide test broker — Mosquitto on a free port when installed,
  else the embedded amqtt. Never the machine's :1883. Use unique client ids per test (the
  ``bus_client`` factory does) since sessions on it persist across tests.
- ``amqtt_broker``: the embedded amqtt broker explicitly (session-wide).
- ``make_broker(kind=None)``: a fresh broker for one test, with ``.restart(kill=...)``,
  ``.stop()``, ``.url``, ``.port`` (for restart tests); stopped at teardown.
- ``bus_client(url, name=...)``: a started ``BusClient`` with a unique id, stopped at teardown.
- ``wait_for(condition, timeout=10, what="...")``: poll until truthy, else fail naming ``what``.
  With ``progress=`` (a callable returning a comparable snapshot, e.g. counters), ``timeout``
  is a *stall* bound: it restarts whenever the snapshot changes, so a loaded machine that is
  slow but moving does not fail the test, and a hang still does (and a wait never runs past
  10 x ``timeout`` even while something keeps moving).
- ``serve_process(args, env)``: ``python -m engine serve ARGS --port 0`` as a child; returns
  (proc, url) once the service has bound a free port itself and announced it in
  ``var/run/`` (no window between picking a port and binding it, unlike ``free_port()``).
- ``post_oversize(where, path, body)``: POST a body a server should refuse, on a raw socket;
  the status read back, or None when the server closed on us mid-write (see ``Refused``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.bus.broker import AmqttBroker, BrokerInfo, MosquittoBroker, mosquitto_binary

POLL_START_S, POLL_MAX_S = 0.01, 0.1
"""``wait_for``'s default poll: every 10 ms at first, then 1.5x longer each time up to 100 ms. A
condition is often an HTTP request or a store opened: a wait of seconds polled every 10 ms
cost more CPU than the processes it waited on; a quick one still returns within 10-20 ms."""
PROGRESS_EVERY_S = 0.5
"""How often ``wait_for`` samples ``progress`` (a snapshot of every service's counters over
HTTP): a stall bound of 20-60 s needs no finer clock than this; it is sampled again at the
deadline, so a stall is never declared on a stale snapshot."""


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float | None = None,
    progress: Callable[[], Any] | None = None,
) -> Any:
    """Return the first truthy value of ``condition()``; fail the test after ``timeout`` s
    (without ``progress``), or after ``timeout`` s in which ``progress()`` did not change.
    ``interval``: a fixed poll period (default: from 10 ms growing to 100 ms)."""
    start = time.monotonic()
    deadline = start + timeout
    last = progress() if progress is not None else None
    sampled = start
    pause = POLL_START_S if interval is None else interval
    while True:
        value = condition()
        if value:
            return value
        now_t = time.monotonic()
        if progress is not None and (now_t - sampled >= PROGRESS_EVERY_S or now_t >= deadline):
            sampled = now_t
            now = progress()
            if now != last:  # moving: the stall bound restarts (never past 10 x timeout)
                last = now
                deadline = min(time.monotonic() + timeout, start + 10 * timeout)
        if time.monotonic() >= deadline:
            stalled = f" (no progress; last {last!r})" if progress is not None else ""
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {what}{stalled}")
        time.sleep(pause)
        if interval is None:
            pause = min(pause * 1.5, POLL_MAX_S)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return wait_for


def serve_process(
    args: Sequence[str], env: Mapping[str, str], timeout: float = 60.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``engine serve ARGS --port 0`` with ``env`` (which names CONTROLROOM_VAR) and
    return it with its URL once it listens. Its output goes to ``var/logs/serve-{pid}.out``,
    quoted in the failure if it dies first."""
    var = Path(env["CONTROLROOM_VAR"])
    (var / "logs").mkdir(parents=True, exist_ok=True)
    out_path = var / "logs" / f"serve-{uuid.uuid4().hex[:8]}.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "serve", *args, "--port", "0"],
            env=dict(env), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def announced() -> str | None:
        if proc.poll() is not None:
            tail = out_path.read_text(errors="replace")[-2000:]
            pytest.fail(f"engine serve {' '.join(args)} exited {proc.returncode}:\n{tail}")
        for ready in (var / "run").glob("*.json"):
            try:
                info = json.loads(ready.read_text())
            except (OSError, ValueError):
                continue
            if info.get("pid") == proc.pid:
                return f"http://127.0.0.1:{int(info['port'])}"
        return None

    try:
        url: str = wait_for(announced, timeout=timeout, what=f"engine serve {' '.join(args)}")
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return proc, url


@pytest.fixture(name="serve_process")
def serve_process_fixture() -> Callable[..., tuple[subprocess.Popen[bytes], str]]:
    return serve_process


@dataclass(frozen=True)
class Refused:
    """What a client saw of an oversize POST: the status and body, or ``status=None`` when the
    connection was reset before a status line arrived. A server that answers 413 on the
    Content-Length and closes while the client is still writing makes the kernel reset the
    connection, which can discard the 413 before the client reads it: both are refusals, so
    a test must confirm the refusal on the server's own counter (``/health``), not here."""

    status: int | None
    body: bytes = b""


def post_oversize(
    where: tuple[str, int] | str,
    path: str,
    body: bytes | Iterable[bytes],
    timeout: float = 30.0,
) -> Refused:
    """POST ``body`` to ``where`` ((host, port) or a Unix socket path): bytes are sent with a
    Content-Length, an iterable chunked (no length: the server must count as it streams)."""
    if isinstance(where, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(where)
        host = "localhost"
    else:
        sock = socket.create_connection(where, timeout=timeout)
        host = f"{where[0]}:{where[1]}"
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    if isinstance(body, bytes):
        head += f"Content-Length: {len(body)}\r\n\r\n"
        parts: Iterable[bytes] = (body[i : i + 65536] for i in range(0, len(body), 65536))
    else:
        head += "Transfer-Encoding: chunked\r\n\r\n"
        parts = (b"%x\r\n%s\r\n" % (len(c), c) for c in (*body, b""))
    with sock:
        try:
            sock.sendall(head.encode())
            for part in parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-write: read what the server said, if anything is left
        data = b""
        try:
            while b"\r\n\r\n" not in data or len(data) < _expected(data):
                got = sock.recv(65536)
                if not got:
                    break
                data += got
        except ConnectionResetError:
            pass
    if not data.startswith(b"HTTP/1."):
        return Refused(None)
    status = int(data.split(b" ", 2)[1])
    return Refused(status, data.partition(b"\r\n\r\n")[2])


def _expected(data: bytes) -> int:
    """Header length + Content-Length of a response read so far (0 while incomplete)."""
    head, sep, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + len(sep) + int(value)
    return len(head) + len(sep)


@pytest.fixture(name="post_oversize")
def post_oversize_fixture() -> Callable[..., Refused]:
    return post_oversize


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slowest files first (see ``file_order.py``)."""
    from file_order import SLOWEST_FIRST

    here = Path(__file__).parent
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}

    def weight(item: pytest.Item) -> int:
        try:
            return rank.get(item.path.relative_to(here).as_posix(), len(rank))
        except ValueError:  # outside tests/
            return len(rank)

    items.sort(key=weight)  # stable: the order within a file (and of the rest) is kept


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runtime state under the test's tmp dir; a developer's .env never leaks into tests."""
    monkeypatch.setenv("CONTROLROOM_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("CONTROLROOM_ENV_FILE", str(tmp_path / "no.env"))


def _start(kind: str | None, *, shared: bool = False) -> MosquittoBroker | AmqttBroker:
    if kind == "amqtt" or (kind is None and mosquitto_binary() is None):
        return AmqttBroker().start()
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    # The session-wide broker accumulates every test's persistent sessions: saving its whole
    # database at every change would make it slower with each test. Fresh brokers (the
    # restart and durability tests) keep the deployment setting: save at every change.
    return MosquittoBroker(save_every_change=not shared).start()


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerInfo]:
    b = _start(None, shared=True)  # own state dir (memory-backed if possible), removed after
    yield b.info("test")
    b.cleanup()


@pytest.fixture(scope="session")
def amqtt_broker() -> Iterator[BrokerInfo]:
    b = AmqttBroker().start()
    yield b.info("test")
    b.cleanup()


@pytest.fixture
def make_broker(tmp_path: Any) -> Iterator[Callable[..., MosquittoBroker | AmqttBroker]]:
    started: list[MosquittoBroker | AmqttBroker] = []

    def make(kind: str | None = None) -> MosquittoBroker | AmqttBroker:
        b = _start(kind)
        started.append(b)
        return b

    yield make
    for b in started:
        b.cleanup()


@pytest.fixture
def bus_client() -> Iterator[Callable[..., Any]]:
    from engine.bus.client import BusClient
    from engine.paths import var_dir

    clients: list[BusClient] = []

    def make(url: str, name: str = "test", persistent: bool = True, **kw: Any) -> BusClient:
        c = BusClient(
            url,
            f"test-{name}-{uuid.uuid4().hex[:8]}",
            name,
            persistent=persistent,
            var=var_dir(os.environ),  # this test's own var/ (_isolated_state)
            **kw,
        )
        c.start(wait=10)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.stop(drain=1)
