"""``controlroom up`` and ``serve`` as a user runs them: real processes, real ports, real
signals. After Ctrl-C (or even SIGKILL of ``up``) no child survives and every port can be bound
again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from engine.bus.broker import free_port, port_is_free
from engine.services.settings import SERVICE_NAMES, port_env
from engine.services.stack import CODE_ROOT


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose (nothing runs, nothing is bound)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    return state != "Z"


def _env(tmp_path: Path, ports: dict[str, int]) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": CODE_ROOT,
        "CONTROLROOM_VAR": str(tmp_path / "var"),
        "CONTROLROOM_ENV_FILE": str(tmp_path / "none.env"),
        **{port_env(n): str(p) for n, p in ports.items()},
    }


def _start_up(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, int], str]:
    ports = {n: free_port() for n in SERVICE_NAMES}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "up", *args],
        env=_env(tmp_path, ports),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:  # returns at EOF if `up` dies
        seen.append(line)
        if line.startswith("running;") or time.monotonic() > deadline:
            break
    text = "".join(seen)
    if "running;" not in text:
        proc.kill()
        pytest.fail(f"`controlroom up` did not come up:\n{text}")
    return proc, ports, text


def _service_pids(ports: dict[str, int]) -> dict[str, int]:
    return {
        n: httpx.get(f"http://127.0.0.1:{p}/health", timeout=5).json()["pid"]
        for n, p in ports.items()
    }


def test_up_runs_five_services_and_ctrl_c_leaves_nothing_behind(tmp_path):
    proc, ports, text = _start_up(tmp_path, "--broker", "embedded", "--speed", "10")
    assert len(re.findall(r"^broker: ", text, re.M)) == 1, text
    broker = re.search(r"^broker: embedded (\w+) at mqtt://127\.0\.0\.1:(\d+)", text, re.M)
    assert broker, text
    broker_port = int(broker.group(2))
    pids = _service_pids(ports)
    assert len(set(pids.values())) == 5
    for name, port in ports.items():
        h = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert h["service"] == name and h["broker"]["connected"] is True
    broker_pid = re.search(r"pid (\d+)", text)

    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, rest
    assert "stopped" in rest
    assert [n for n, pid in pids.items() if _alive(pid)] == []
    if broker_pid:
        assert not _alive(int(broker_pid.group(1)))
    assert [n for n, p in ports.items() if not port_is_free(p)] == []
    assert port_is_free(broker_port)


def test_children_do_not_outlive_a_killed_up(tmp_path, wait_for):
    """SIGKILL gives `up` no chance to clean up: the children notice and stop themselves."""
    proc, ports, text = _start_up(tmp_path, "--broker", "embedded")
    pids = _service_pids(ports)
    broker_pid = re.search(r"pid (\d+)", text)
    proc.kill()
    proc.wait(10)
    proc.stderr.close()  # type: ignore[union-attr]
    wait_for(lambda: not any(_alive(p) for p in pids.values()), timeout=20, what="children exit")
    if broker_pid:
        wait_for(lambda: not _alive(int(broker_pid.group(1))), timeout=10, what="broker exit")
    wait_for(lambda: all(port_is_free(p) for p in ports.values()), timeout=10, what="ports freed")


def test_serve_rejects_bad_configuration_clearly(tmp_path):
    env = _env(tmp_path, {})
    run = [sys.executable, "-m", "engine", "serve"]
    r = subprocess.run(
        [*run, "monitor", "--broker", "http://x"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 2 and "mqtt://" in r.stderr
    r = subprocess.run([*run, "monitor", "--shard", "3/2"], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "shard" in r.stderr
    r = subprocess.run([*run, "simulator", "--scenario", "chronic_wer"], env=env,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "chronic_wer: no such scenario" in r.stderr
    bad_env = {**env, "CONTROLROOM_MONITOR_PORT": "eighty"}
    r = subprocess.run([*run, "monitor"], env=bad_env, capture_output=True, text=True)
    assert r.returncode == 2 and "CONTROLROOM_MONITOR_PORT" in r.stderr


def test_serve_reports_a_busy_port(tmp_path, broker):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "engine", "serve", "simulator", "--port", str(port),
             "--broker", broker.url],
            env=_env(tmp_path, {}), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert r.returncode == 1 and f"port {port}" in r.stderr and "in use" in r.stderr


def test_env_file_configures_a_service(tmp_path, broker, wait_for):
    """Port and broker from a .env file; the real environment still wins over it."""
    port = free_port()
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        f"# comment\nCONTROLROOM_SIMULATOR_PORT={port}\nexport CONTROLROOM_BROKER='{broker.url}'\n"
    )
    env = {**_env(tmp_path, {}), "CONTROLROOM_ENV_FILE": str(env_file)}
    env.pop("CONTROLROOM_BROKER", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "simulator"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=30, what="simulator configured from .env")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert port_is_free(port)
