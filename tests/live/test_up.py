"""``controlroom up`` and ``serve`` as a user runs them: real processes, real ports, real
signals. After Ctrl-C (or even SIGKILL of ``up``) no child survives and every port can be bound
again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from probes import http

from engine.bus.broker import free_port, port_is_free
from engine.services.stack import CODE_ROOT
from engine.settings import SERVICE_NAMES, port_env


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
    """`up` with every port 0: each service binds a free port itself (no window in which
    another test could take a port picked here); the ports are read from var/run/ after."""
    ports = dict.fromkeys(SERVICE_NAMES, 0)
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
        if line.startswith("running") or time.monotonic() > deadline:
            break
    text = "".join(seen)
    if "\nrunning" not in "\n" + text:
        proc.kill()
        pytest.fail(f"`controlroom up` did not come up:\n{text}")
    run = tmp_path / "var" / "run"
    ports = {n: int(json.loads((run / f"{n}.json").read_text())["port"]) for n in SERVICE_NAMES}
    return proc, ports, text


def _service_pids(ports: dict[str, int]) -> dict[str, int]:
    return {
        n: http.get(f"http://127.0.0.1:{p}/health", timeout=5).json()["pid"]
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
        h = http.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
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
    # `up` checks the environment its children will read before it starts any of them
    r = subprocess.run([sys.executable, "-m", "engine", "up", "--broker", "embedded"],
                       env={**env, "CONTROLROOM_SPEED": "abc"}, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 2 and "CONTROLROOM_SPEED='abc'" in r.stderr, r.stderr
    assert "broker:" not in r.stderr, "nothing was started"
    # an address this host does not have is not "in use"
    r = subprocess.run([*run, "monitor", "--host", "192.0.2.1", "--port", "8999"], env=env,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1 and "cannot listen on 192.0.2.1:8999" in r.stderr, r.stderr
    assert "in use" not in r.stderr


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
                return http.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=30, what="simulator configured from .env")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert port_is_free(port)


def test_up_restarts_a_crashed_service_and_the_broker_and_says_so(tmp_path, wait_for):
    """SIGKILL of one child stopped all five; now it is restarted with backoff, logged, shown
    in its /health and in var/stack.json, and the others keep running."""
    import json

    proc, ports, text = _start_up(tmp_path, "--broker", "embedded")
    pids = _service_pids(ports)
    status_file = tmp_path / "var" / "stack.json"
    os.kill(pids["ticket"], signal.SIGKILL)

    def restarted() -> dict | None:
        try:
            h = http.get(f"http://127.0.0.1:{ports['ticket']}/health", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None
        return h if h["pid"] != pids["ticket"] and h["status"] == "ok" else None

    h = wait_for(restarted, timeout=60, what="the ticket service back with a new pid")
    assert h["restarts"] == 1
    status = json.loads(status_file.read_text())
    assert status["parts"]["ticket"]["restarts"] == 1
    assert status["parts"]["ticket"]["last_exit"] == "killed by SIGKILL"
    assert {n: p for n, p in _service_pids(ports).items() if n != "ticket"} == {
        n: p for n, p in pids.items() if n != "ticket"
    }
    broker_pid = re.search(r"pid (\d+)", text)
    if broker_pid:  # embedded Mosquitto: a broker crash is supervised too
        os.kill(int(broker_pid.group(1)), signal.SIGKILL)
        wait_for(
            lambda: (
                json.loads(status_file.read_text())["parts"]["broker"]["restarts"] == 1
                and all(
                    http.get(f"http://127.0.0.1:{p}/health", timeout=2).status_code == 200
                    for p in ports.values()
                )
            ),
            timeout=60,
            what="broker restarted and every service reconnected",
        )
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, rest
    log = (tmp_path / "var" / "logs" / "stack.jsonl").read_text()
    assert '"event":"part_exited"' in log and '"event":"part_restarted"' in log
    assert [n for n, p in ports.items() if not port_is_free(p)] == []


def test_restart_policy_backs_off_and_gives_up_on_a_crash_loop():
    from engine.services.stack import RestartPolicy

    policy = RestartPolicy(base_s=0.5, cap_s=30.0, window_s=120.0, max_crashes=5)
    assert [policy.delay([0.0] * n, 1.0) for n in range(1, 5)] == [0.5, 1.0, 2.0, 4.0]
    assert policy.delay([0.0] * 5, 1.0) is None  # five exits within two minutes: a loop
    assert policy.delay([0.0, 1.0, 2.0, 3.0, 200.0], 200.0) == 0.5  # old crashes forgotten


def _read_only_dir(path: Path) -> Path:
    path.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: make it immutable
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o555)
    return path


def _writable_again(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=False)
    path.chmod(0o755)


def test_a_read_only_var_is_one_line_not_a_traceback(tmp_path):
    var = _read_only_dir(tmp_path / "ro")
    try:
        env = {**_env(tmp_path, {}), "CONTROLROOM_VAR": str(var)}
        for args in (["serve", "monitor"], ["up", "--broker", "embedded"]):
            r = subprocess.run([sys.executable, "-m", "engine", *args], env=env,
                               capture_output=True, text=True, timeout=60)  # fmt: skip
            assert r.returncode == 1, (args, r.stderr)
            assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
            assert str(var) in r.stderr and "not writable" in r.stderr
    finally:
        _writable_again(var)
