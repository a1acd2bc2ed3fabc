"""``--help`` on every subcommand says what it does and shows an example that parses;
``--version`` comes from the installed package; ``--help`` loads no heavy library."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from engine.cli import COMMANDS, build_parser
from engine.cli.help import DESCRIPTIONS, EXAMPLES, TOP_EXAMPLES, subparsers
from tests.cli.conftest import Run


def walk(
    parser: argparse.ArgumentParser, path: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for name, sub in subparsers(parser).items():
        command = f"{path} {name}".strip()
        out.append((command, sub))
        out.extend(walk(sub, command))
    return out


ALL = walk(build_parser())


def example_argv(line: str) -> list[str]:
    """The words of an example before any shell pipe or redirection."""
    words = shlex.split(line)
    assert words[0] == "controlroom", line
    for i, word in enumerate(words):
        if word in ("|", "<", ">"):
            return words[1:i]
    return words[1:]


def test_every_command_is_in_the_lazy_table_with_the_same_line() -> None:
    """``controlroom --help`` lists the table's lines without importing the areas: they must be
    the areas' own."""
    parser = build_parser()
    helps = {
        a.dest: a.help
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for a in action._choices_actions
    }
    assert set(helps) == set(COMMANDS)
    full = subparsers(parser)
    for name, (area, line) in COMMANDS.items():
        assert helps[name] == line, f"update COMMANDS[{name!r}] in engine/cli/__init__.py"
        lazy = subparsers(build_parser(name, lazy=True))[name]
        assert lazy.format_help() == full[name].format_help(), (name, area)


@pytest.mark.parametrize(("command", "parser"), ALL, ids=[c for c, _ in ALL])
def test_every_subcommand_has_a_description_and_examples(
    command: str, parser: argparse.ArgumentParser
) -> None:
    text = parser.format_help()
    assert parser.description and len(parser.description) > 10, command
    assert "examples:\n  controlroom " in text, text


@pytest.mark.parametrize(
    "line",
    [line for lines in EXAMPLES.values() for line in lines] + list(TOP_EXAMPLES[:-1]),
)
def test_every_example_parses(line: str) -> None:
    args = build_parser().parse_args(example_argv(line))
    assert getattr(args, "func", None) is not None, line


def test_examples_and_descriptions_only_name_real_commands() -> None:
    known = {command for command, _ in ALL}
    assert set(EXAMPLES) <= known, set(EXAMPLES) - known
    assert set(DESCRIPTIONS) <= known, set(DESCRIPTIONS) - known
    for command, parser in ALL:  # the table's text, not a module's own nor the fallback line
        if command in DESCRIPTIONS:
            assert parser.description == DESCRIPTIONS[command], command


def test_report_help_has_a_description_and_an_example(cli: Run) -> None:
    r = cli("report", "--help")
    assert r.returncode == 0
    usage, description = r.stdout.split("\n\n")[:2]
    assert usage.startswith("usage: controlroom report")
    assert "live run" in description
    assert "controlroom report --logs var/logs" in r.stdout


def test_version_is_the_installed_package_version(cli: Run) -> None:
    r = cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"controlroom {version('controlroom')}\n"


def test_no_command_prints_help_on_stderr_and_exits_2(cli: Run) -> None:
    r = cli()
    assert r.returncode == 2
    assert r.stdout == ""
    assert "usage: controlroom" in r.stderr and "examples:" in r.stderr


HEAVY = ("numpy", "pydantic", "fastapi", "textual", "httpx", "yaml", "anthropic", "rich", "paho")


@pytest.mark.parametrize(
    ("argv", "areas"),
    [
        (["--help"], []),
        (["--version"], []),
        (["detect", "--help"], ["plant"]),
        (["tickets", "--help"], ["tickets"]),
        (["brief", "--help"], ["factory"]),
        (["up", "--help"], ["live"]),
    ],
    ids=lambda v: " ".join(v) or "-",
)
def test_help_imports_no_heavy_library_and_only_its_own_area(
    argv: list[str], areas: list[str], tmp_path: Path
) -> None:
    """What makes ``--help`` fast: measured by bench/cli_startup.py, guarded here."""
    probe = (
        "import json, sys\n"
        "from engine.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write(json.dumps(sorted(sys.modules)))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stderr))
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}, sorted(loaded)
    cli_areas = {m.split(".")[2] for m in loaded if m.startswith("engine.cli.")}
    assert cli_areas - {"errors", "help", "checks", "review_api"} == set(areas)
