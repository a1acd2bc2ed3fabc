"""Issue 15's wording items that live in the CLI: what ``factory validate`` counts and says.

(The others have their tests beside their code: ``diagnoses_published`` in
tests/live/test_health.py, one tuning note per close in tests/tickets/test_feedback.py, the
Gantt's last axis label in tests/factory/test_factory_gantt.py, ``mirror_pending`` in
tests/tickets/test_store.py, ``report --help`` in tests/cli/test_help.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main

ONE_BAD_STEP = """\
name: One bad step
time_horizon: 24
machines:
  - {id: M1, name: Lathe, available_start: 0, available_end: 24}
jobs:
  - id: J1
    name: Shaft
    due_time: 10
    steps:
      - {id: s1, machine_id: M1, duration_hours: -1}
"""

TWO_PROBLEMS = """\
name: Two problems
time_horizon: 24
machines:
  - {id: M1, name: Lathe, available_start: 0, available_end: 24, colour: red}
jobs: []
"""


def test_one_problem_is_singular_and_a_list_whose_items_failed_is_not_also_too_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The only step is invalid: pydantic also calls ``steps`` and ``jobs`` too short (their
    one item failed); that is not a problem of its own and must not be reported or counted."""
    path = tmp_path / "one.yaml"
    path.write_text(ONE_BAD_STEP, encoding="utf-8")
    assert main(["factory", "validate", str(path)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{path}: INVALID (1 problem)",
        "  jobs[0].steps[0].duration_hours: Input should be greater than 0 (got -1)",
    ]


def test_a_list_that_is_really_empty_is_reported_and_problems_are_plural(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_PROBLEMS, encoding="utf-8")
    assert main(["factory", "validate", str(path)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: INVALID (2 problems)"
    assert sorted(out[1:]) == [
        "  jobs: needs at least 1 item",
        "  machines[0].colour: Extra inputs are not permitted",
    ]
