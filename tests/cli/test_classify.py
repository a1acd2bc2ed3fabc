"""The mapping from what escaped a handler to an exit status and one line, on real exceptions
raised by the real libraries (a refused socket, a pydantic model, httpx, PyYAML)."""

from __future__ import annotations

import argparse
import errno
import socket
from pathlib import Path

import httpx
import pydantic
import pytest
import yaml

from engine.bus.broker import BrokerError
from engine.cli import run
from engine.cli.errors import RuntimeFailure, UsageError, classify
from engine.plant.scenario import ScenarioError


def raised(action) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        action()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def test_paths_the_user_named_are_bad_input(tmp_path: Path) -> None:
    missing = raised(lambda: open(tmp_path / "nope.csv"))  # noqa: SIM115
    assert classify(missing) == (2, f"{tmp_path}/nope.csv: no such file or directory")
    no_dir = raised(lambda: open(tmp_path / "no" / "x.jsonl", "w"))  # noqa: SIM115
    code, line = classify(no_dir)  # type: ignore[misc]
    assert code == 2 and line.endswith(f"(directory {tmp_path}/no does not exist)")
    is_dir = raised(lambda: open(tmp_path, "w"))  # noqa: SIM115
    assert classify(is_dir) == (2, f"{tmp_path}: is a directory")
    denied = PermissionError(errno.EACCES, "Permission denied", "/etc/x")
    assert classify(denied) == (2, "/etc/x: permission denied")


def test_a_full_disk_is_a_runtime_failure() -> None:
    assert classify(OSError(errno.ENOSPC, "No space left on device", "out.jsonl")) == (
        1,
        "out.jsonl: No space left on device",
    )


def test_a_refused_connection_is_a_runtime_failure_and_an_unknown_host_bad_input() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        refused = raised(lambda: socket.create_connection(("127.0.0.1", port), timeout=2))
    assert classify(refused) == (1, "cannot connect: Connection refused")
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert classify(unknown) == (2, "unknown host: Name or service not known")


def test_httpx_errors_name_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/tickets"
        code, line = classify(raised(lambda: httpx.get(url, timeout=2)))  # type: ignore[misc]
    assert code == 1 and url in line
    code, line = classify(raised(lambda: httpx.get("ftp://x/y")))  # type: ignore[misc]
    assert code == 2 and line.startswith("bad URL")


def test_a_pydantic_error_names_the_field() -> None:
    class Point(pydantic.BaseModel):
        x: int
        y: int

    exc = raised(lambda: Point.model_validate({"x": "one", "y": "two"}))
    assert classify(exc) == (2, "Point: x: Input should be a valid integer, unable to parse "
                                "string as an integer (+1 more)")  # fmt: skip


def test_a_yaml_error_is_one_line_with_its_position() -> None:
    code, line = classify(raised(lambda: yaml.safe_load("a: [1,\n")))  # type: ignore[misc]
    assert code == 2 and "\n" not in line
    assert line.startswith("not valid YAML: line 2, column 1: ")


def test_our_own_error_classes_map_by_what_they_derive_from() -> None:
    assert classify(UsageError("--api 'x': not a URL")) == (2, "--api 'x': not a URL")
    assert classify(RuntimeFailure("cannot reach the broker")) == (1, "cannot reach the broker")
    assert classify(ScenarioError("s.json: faults[0].type: unknown")) == (
        2,
        "s.json: faults[0].type: unknown",
    )
    assert classify(BrokerError("embedded broker would not start")) == (
        1,
        "embedded broker would not start",
    )


def test_anything_else_is_a_bug() -> None:
    assert classify(ValueError("x")) is None
    assert classify(TypeError("unsupported operand")) is None


def _args(debug: bool = False) -> argparse.Namespace:
    return argparse.Namespace(_command="replay", debug=debug)


def test_a_bug_is_one_line_with_a_hint_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(_args: argparse.Namespace) -> int:
        return 1 + "1"  # type: ignore[return-value,operator]

    assert run(handler, _args()) == 1
    err = capsys.readouterr().err
    assert err.startswith("controlroom replay: internal error: TypeError: ")
    assert "--debug" in err and "Traceback" not in err
    assert run(handler, _args(debug=True)) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_ctrl_c_is_130_and_a_broken_socket_is_not_a_closed_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def interrupted(_args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    def peer_gone(_args: argparse.Namespace) -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    assert run(interrupted, _args()) == 130
    assert run(peer_gone, _args()) == 1
    assert "controlroom replay: connection lost: Broken pipe" in capsys.readouterr().err
