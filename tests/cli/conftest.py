"""Run ``controlroom`` as a user does: a real child process (``python -m engine``) with private
runtime state, real files and real closed ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROLROOM_", "ANTHROPIC"))}
    env.update(
        CONTROLROOM_VAR=str(tmp_path / "var"),
        CONTROLROOM_ENV_FILE=str(tmp_path / "no.env"),
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture
def cli(tmp_path: Path, cli_env: dict[str, str]) -> Run:
    """``cli("replay", "x", env={...}, stdin="...")`` -> the finished process, text mode."""

    def run(*argv: str, env: dict[str, str] | None = None, stdin: str = "") -> Any:
        return subprocess.run(
            [sys.executable, "-m", "engine", *argv],
            cwd=tmp_path,
            env={**cli_env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not
    listening, for as long as the test runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]
