"""Running the real ticket and review services as child processes (``controlroom serve NAME``),
exactly as ``controlroom up`` does, with their state under the test's tmp dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from engine.bus.broker import free_port

ROOT = Path(__file__).resolve().parents[2]


def service_env(var: Path, broker_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROLROOM_", "GITHUB_"))}
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

    def start(self, timeout: float = 20.0) -> ServiceProc:
        return self.launch().wait_healthy(timeout)

    def launch(self) -> ServiceProc:
        """Start the process without waiting (start several, then wait for each)."""
        self.stderr.parent.mkdir(parents=True, exist_ok=True)
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

    def wait_healthy(self, timeout: float = 20.0) -> ServiceProc:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.errors()}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not healthy after {timeout}s: {self.errors()}")
            time.sleep(0.05)

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url + "/health", timeout=5.0).json()

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


class RawPublisher:
    """A plain paho publisher (QoS 1, persistent session) for the broker-restart tests.

    ``BusClient.stop()`` currently raises after publishing while disconnected (paho's
    ``is_published()`` raises for such messages; reported to the bus's owner), so the test that
    publishes during a broker outage uses paho directly; acknowledgement is read the way
    ``engine.tickets.outbox.delivered`` does."""

    def __init__(self, url: str) -> None:
        import uuid

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from engine.bus.broker import parse_broker_url

        addr = parse_broker_url(url)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-rawpub-{uuid.uuid4().hex[:8]}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self._client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        self._client.max_queued_messages_set(0)
        self._infos: list[Any] = []
        self._client.connect(addr.host, addr.port)
        self._client.loop_start()

    def publish(self, message: Any) -> None:
        from engine.schemas import topic_for

        if getattr(message, "wall_time", 0) is None:
            message = message.model_copy(update={"wall_time": time.time()})
        self._infos.append(self._client.publish(topic_for(message), message.to_bytes(), qos=1))

    def wait_acked(self, timeout: float = 10.0) -> bool:
        from engine.tickets.outbox import delivered

        deadline = time.monotonic() + timeout
        while not all(delivered(i) for i in self._infos):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
