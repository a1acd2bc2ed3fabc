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
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.bus.broker import AmqttBroker, BrokerInfo, MosquittoBroker, mosquitto_binary


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.01,
) -> Any:
    """Return the first truthy value of ``condition()``; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return wait_for


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

    clients: list[BusClient] = []

    def make(url: str, name: str = "test", persistent: bool = True, **kw: Any) -> BusClient:
        c = BusClient(url, f"test-{name}-{uuid.uuid4().hex[:8]}", name, persistent=persistent, **kw)
        c.start(wait=10)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.stop(drain=1)
