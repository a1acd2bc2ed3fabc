"""Every subcommand fails like a Unix tool: one line on stderr naming the file, field, URL or
broker, exit 2 for bad input and 1 for a world that does not answer, never a traceback.

The table runs the real command in a child process against real files, real closed ports and a
real unreadable path; ``{tmp}``, ``{file}`` (an existing plain file) and ``{port}`` (a loopback
port that refuses connections) are filled in per test.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from _pytest.mark import ParameterSet

from tests.cli.conftest import Run

ONE = "one line"
USAGE = "usage + one line"  # argparse's own errors: the usage, then "controlroom X: error: …"
LINES = "several lines"  # validators that list every problem they found (factory configs)


def case(
    what: str,
    line: str,
    code: int,
    *names: str,
    env: dict[str, str] | None = None,
    shape: str = ONE,
) -> ParameterSet:
    return pytest.param(shlex.split(line), env or {}, code, names, shape, id=what)


CASES = [
    # what, the command line, exit status, what stderr must name[, env=…][, shape=…]
    case(
        "replay --out in a missing directory",
        "replay chronic_wear --out '{tmp}/no/x.jsonl'",
        2,
        "{tmp}/no/x.jsonl",
        "does not exist",
    ),
    case(
        "replay --out is a directory",
        "replay chronic_wear --out '{tmp}'",
        2,
        "--out",
        "{tmp}",
        "is a directory",
        shape=USAGE,
    ),
    case("replay unknown scenario", "replay nosuch --out x.jsonl", 2, "nosuch", "no such scenario"),
    case("replay scenario is not JSON", "replay '{file}' --out x.jsonl", 2, "{file}", "JSON"),
    case(
        "replay missing tuning file",
        "replay chronic_wear --out x.jsonl --tuning '{tmp}/t.json'",
        2,
        "{tmp}/t.json",
    ),
    case("scenario suite --out under a file", "scenario suite 2 --out '{file}/suite'", 2, "{file}"),
    case("scenario validate missing file", "scenario validate '{tmp}/s.json'", 2, "{tmp}/s.json"),
    case("rules validate missing file", "rules validate '{tmp}/r.yaml'", 2, "{tmp}/r.yaml"),
    case(
        "rules validate bad YAML",
        "rules validate '{tmp}/bad.yaml'",
        2,
        "{tmp}/bad.yaml:2:1: not valid YAML: expected the node content",
    ),
    case(
        "eval --report under a file",
        "eval --report '{file}/r.md'",
        2,
        "--report",
        "{file}",
        "is not a directory",
        shape=USAGE,
    ),
    case("eval --suite 0", "eval --suite 0", 2, "--suite"),
    case("detect missing CSV", "detect '{tmp}/in.csv' --flags f.csv", 2, "{tmp}/in.csv"),
    case(
        "detect --flags under a file",
        "detect in.csv --flags '{file}/f.csv'",
        2,
        "--flags",
        "is not a directory",
        shape=USAGE,
    ),
    case("report missing log directory", "report --logs '{tmp}/logs'", 2, "{tmp}/logs"),
    case(
        "report --out under a file",
        "report --logs '{tmp}' --out '{file}/r.md'",
        2,
        "--out",
        "is not a directory",
        shape=USAGE,
    ),
    case(
        "brief missing factory file",
        "brief 'rush J2' --factory '{tmp}/f.yaml' --llm off",
        2,
        "{tmp}/f.yaml",
        "cannot read",
        shape=LINES,
    ),
    case(
        "factory show missing file",
        "factory show '{tmp}/f.yaml'",
        2,
        "{tmp}/f.yaml",
        "cannot read",
        shape=LINES,
    ),
    case(
        "tickets: review service not running",
        "tickets --api 'http://127.0.0.1:{port}'",
        1,
        "http://127.0.0.1:{port}",
        "cannot reach",
    ),
    case(
        "tickets close: review service not running",
        "tickets close T-0001 --reason resolved --api 'http://127.0.0.1:{port}'",
        1,
        "http://127.0.0.1:{port}",
    ),
    case(
        "tickets --api not an http URL",
        "tickets --api mqtt://127.0.0.1:1883",
        2,
        "--api",
        "mqtt://127.0.0.1:1883",
    ),
    case(
        "tickets: bad URL in the environment",
        "tickets show T-0001",
        2,
        "CONTROLROOM_REVIEW_URL",
        "127.0.0.1:8105",
        env={"CONTROLROOM_REVIEW_URL": "127.0.0.1:8105"},
    ),
    case(
        "tickets edit missing body file",
        "tickets edit T-0001 --body-file '{tmp}/b.md' --api 'http://127.0.0.1:{port}'",
        2,
        "{tmp}/b.md",
    ),
    case(
        "alarms: review service not running",
        "alarms --api 'http://127.0.0.1:{port}'",
        1,
        "http://127.0.0.1:{port}",
        "cannot reach",
    ),
    case(
        "alarms ack: review service not running",
        "alarms ack A-1 --api 'http://127.0.0.1:{port}'",
        1,
        "http://127.0.0.1:{port}",
    ),
    case("alarms --api not an http URL", "alarms --api ftp://x", 2, "--api", "ftp://x"),
    case(
        "operators whoami: review service not running",
        "operators whoami --api 'http://127.0.0.1:{port}'",
        1,
        "http://127.0.0.1:{port}",
    ),
    case("operators add: bad name", "operators add 'bad name!'", 2, "bad name!"),
    case(
        "broker init: directory under a file",
        "broker init --mosquitto-dir '{file}/mosquitto'",
        2,
        "{file}",
        env={"CONTROLROOM_VAR": "{tmp}/var"},
    ),
    case("broker init: bad --owner", "broker init --owner abc", 2, "--owner", "abc", shape=USAGE),
    case("eval missing tuning file", "eval --suite 1 --tuning '{tmp}/t.json'", 2, "{tmp}/t.json"),
    case(
        "up: broker refuses",
        "up --broker 'mqtt://127.0.0.1:{port}'",
        1,
        "mqtt://127.0.0.1:{port}",
        "cannot reach the broker",
    ),
    case(
        "up: broker URL from the environment refuses",
        "up",
        1,
        "mqtt://127.0.0.1:{port}",
        env={"CONTROLROOM_BROKER": "mqtt://127.0.0.1:{port}"},
    ),
    case(
        "up: not a broker URL",
        "up --broker http://127.0.0.1:1883",
        2,
        "http://127.0.0.1:1883",
        "mqtt://",
    ),
    case("up: unknown scenario", "up --scenario nosuch", 2, "nosuch"),
    case(
        "demo: broker refuses",
        "demo --broker 'mqtt://127.0.0.1:{port}'",
        1,
        "mqtt://127.0.0.1:{port}",
        "cannot reach the broker",
    ),
    case("demo: unknown scenario", "demo --scenario nosuch", 2, "nosuch"),
    case("demo: not a broker URL", "demo --broker notaurl", 2, "controlroom demo: ", "notaurl"),
    case("serve: not a broker URL", "serve monitor --broker notaurl", 2, "notaurl"),
    case("serve: bad shard", "serve monitor --shard 3/2", 2, "3/2"),
    case("serve: no such port", "serve monitor --port 99999", 2, "--port", "99999", shape=USAGE),
    case("tui: not a broker URL", "tui --broker notaurl", 2, "controlroom tui: ", "notaurl"),
    case(
        "any command: malformed .env",
        "scenario list",
        2,
        "{tmp}/bad.env:2",
        "KEY=VALUE",
        env={"CONTROLROOM_ENV_FILE": "{tmp}/bad.env"},
    ),
    case("unknown command", "nosuch", 2, "nosuch", "invalid choice", shape=USAGE),
    case(
        "unknown option", "replay chronic_wear --out x.jsonl --nosuch", 2, "--nosuch", shape=USAGE
    ),
]


@pytest.fixture
def files(tmp_path: Path, closed_port: int) -> dict[str, str]:
    plain = tmp_path / "plain.txt"
    plain.write_text("not a directory, not JSON\n", encoding="utf-8")
    (tmp_path / "bad.yaml").write_text("rules: [1,\n", encoding="utf-8")
    (tmp_path / "bad.env").write_text("# settings\nNOT A SETTING\n", encoding="utf-8")
    return {"tmp": str(tmp_path), "file": str(plain), "port": str(closed_port)}


@pytest.mark.parametrize(("argv", "env", "code", "fragments", "shape"), CASES)
def test_expected_failures_are_one_line_and_an_exit_status(
    cli: Run,
    files: dict[str, str],
    argv: list[str],
    env: dict[str, str],
    code: int,
    fragments: tuple[str, ...],
    shape: str,
) -> None:
    r = cli(*(a.format(**files) for a in argv), env={k: v.format(**files) for k, v in env.items()})
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == code, r.stderr
    for fragment in fragments:
        assert fragment.format(**files) in r.stderr, (fragment, r.stderr)
    if shape == ONE:
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("controlroom"), r.stderr
    elif shape == USAGE:
        assert lines[0].startswith("usage: controlroom"), r.stderr
        assert lines[-1].startswith("controlroom") and ": error: " in lines[-1], r.stderr
    assert r.stdout == "", r.stdout


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux /sys")
def test_permission_denied_names_the_path(cli: Run) -> None:
    """/sys refuses new files even to root, so this holds whoever runs the suite."""
    r = cli("replay", "chronic_wear", "--out", "/sys/controlroom-test.jsonl")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "/sys" in r.stderr and "permission denied" in r.stderr, r.stderr


@pytest.mark.parametrize("how", ["--debug", "CONTROLROOM_DEBUG=1", ".env"])
def test_debug_adds_the_traceback_to_the_same_line_and_status(
    cli: Run, tmp_path: Path, how: str
) -> None:
    """The flag, the variable, or the variable in ``.env`` (the environment the command
    resolved once, not only the process's own)."""
    argv = ["replay", "chronic_wear", "--out", f"{tmp_path}/no/x.jsonl"]
    env_file = tmp_path / "debug.env"
    env_file.write_text("CONTROLROOM_DEBUG=1\n")
    if how == "--debug":
        r = cli(*argv, "--debug")
    elif how == ".env":
        r = cli(*argv, env={"CONTROLROOM_ENV_FILE": str(env_file)})
    else:
        r = cli(*argv, env={"CONTROLROOM_DEBUG": "1"})
    assert r.returncode == 2
    assert "Traceback (most recent call last)" in r.stderr
    assert "FileNotFoundError" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("controlroom replay: ")


def test_debug_before_the_command_works_too(cli: Run, tmp_path: Path) -> None:
    r = cli("--debug", "replay", "chronic_wear", "--out", f"{tmp_path}/no/x.jsonl")
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_a_closed_output_pipe_ends_quietly_with_sigpipe_status(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """``controlroom replay … --out - | head -1``: the reader goes away mid-stream."""
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "replay", "chronic_wear", "--out", "-"],
        cwd=tmp_path,
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does once it has its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert first.startswith(b'{"topic"')
    assert err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["scenario", "list"],
        ["rules", "validate"],
        ["factory", "list"],
        ["factory", "show", "toy_day"],
        ["brief", "Rush order for J2 today.", "--llm", "off", "--json"],
        ["--version"],
        ["--help"],
        ["detect", "--help"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_output_into_a_closed_pipe_prints_no_traceback(
    tmp_path: Path, cli_env: dict[str, str], argv: list[str]
) -> None:
    """The reader is gone before the command writes anything: every subcommand, whatever it
    prints, stops quietly (141, or 0 where argparse swallowed the error itself)."""
    import os
    import subprocess

    read, write = os.pipe()
    os.close(read)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "engine", *argv],
            cwd=tmp_path,
            env=cli_env,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert "Exception ignored" not in r.stderr, r.stderr
    assert r.returncode in (0, 141), r.stderr
