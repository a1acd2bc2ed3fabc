"""The project's own promises: the README's two set-up commands are what CI runs, and every
command in the README's shell block exists (the static checks are in ``test_checks.py``)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_shows_two_setup_commands_and_ci_runs_the_second_verbatim() -> None:
    demo, tests = quick_start_commands()
    assert demo.endswith("controlroom demo") and "pip install" in demo
    assert "pytest" in tests and "'.[test]'" in tests
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci, ".ci/run must run the README's test command verbatim"


def test_every_controlroom_command_in_the_readme_exists() -> None:
    from engine.cli import build_parser

    parser = build_parser()
    commands = re.findall(r"^controlroom ([a-z]+)", README, flags=re.M)
    assert len(commands) > 10
    known = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert set(commands) <= known, set(commands) - known
    for line in re.findall(r"^(controlroom [^#\n]+)", README, flags=re.M):
        argv = shlex.split(line)[1:]
        try:  # parse only: the handler is not run
            parser.parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"README command does not parse: {line}") from exc


def test_every_benchmark_figure_names_its_command_and_date() -> None:
    """Issue 15: the README states measured figures only, each with the command that measured
    it and the date. Each row of the benchmark table names an existing ``bench/`` script and
    carries a date; every ``python bench/…`` named in README and docs exists."""
    table = README.split("| Script | Figure | Target | Recorded |", 1)[1].split("\n\n", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("| `bench/")]
    assert len(rows) >= 8
    for row in rows:
        script = re.match(r"\| `(bench/[a-z_]+\.py)", row)
        assert script and (ROOT / script.group(1)).is_file(), row
        assert re.search(r"\| 20\d\d-\d\d-\d\d \|$", row), f"no date: {row}"
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for script in re.findall(r"python (bench/[a-z_]+\.py)", text):
            assert (ROOT / script).is_file(), (page.name, script)


def test_the_slowest_first_list_names_test_files_that_exist() -> None:
    from file_order import SLOWEST_FIRST

    tests = Path(__file__).parent
    assert [name for name in SLOWEST_FIRST if not (tests / name).is_file()] == []
