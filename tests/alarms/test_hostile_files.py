"""Files the services, the CLI and the TUI read, replaced by what would hang or bloat them: a
FIFO (opening and reading it blocks for ever), an endless device, a huge file, a directory.
Each reader says which file and why, at once, and carries on where it can: the review service
still starts, a request with a token is answered, the monitor's tuning watch (run on its bus
thread) is not stuck. Real files, real readers."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.agent_files import (
    FalsePositiveLog,
    RuleError,
    TuningError,
    load_rules,
    load_tuning,
    save_tuning,
)
from engine.auth.tokens import TokenRegistry
from engine.bus.acl import CredentialsError, load_credentials
from engine.bus.deadletter import DeadLetterLog
from engine.paths import SMALL_FILE_BYTES
from engine.plant.scenario import ScenarioError, load_scenario
from engine.services.jsonl_log import JsonlLog
from tui.status import read_stack_status

KINDS = ["fifo", "endless", "huge", "directory"]


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """``make(kind, name)``: a file at ``tmp_path/name`` of that kind. Any FIFO is opened for
    writing at teardown, so a reader still blocked on it (the bug) returns."""
    fifos: list[Path] = []

    def make(kind: str, name: str) -> Path:
        path = tmp_path / name
        if kind == "fifo":
            os.mkfifo(path)
            fifos.append(path)
        elif kind == "endless":
            path.symlink_to("/dev/zero")
        elif kind == "huge":
            with path.open("wb") as f:
                f.truncate(SMALL_FILE_BYTES + 1)  # sparse: costs no disk
        else:
            path.mkdir()
        return path

    yield make
    for fifo in fifos:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def promptly(call: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``call()``'s result or exception, failing the test if it has not returned in time."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(("ok", call()))
        except BaseException as exc:
            out.append(("raised", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert out, f"still reading after {timeout} s (blocked on the file)"
    how, value = out[0]
    if how == "raised":
        raise value
    return value


@pytest.mark.parametrize("kind", KINDS)
def test_settings_like_files_are_refused_promptly_by_name(
    hostile: Callable[[str, str], Path], kind: str
) -> None:
    tuning = hostile(kind, "tuning.json")
    with pytest.raises(TuningError, match=r"tuning\.json"):
        promptly(lambda: load_tuning(tuning))
    rules = hostile(kind, "rules.yaml")
    with pytest.raises(RuleError, match=r"rules\.yaml"):
        promptly(lambda: load_rules(files=[rules]))
    scenario = hostile(kind, "scenario.json")
    with pytest.raises(ScenarioError, match=r"scenario\.json"):
        promptly(lambda: load_scenario(scenario))
    creds = hostile(kind, "credentials.json")
    with pytest.raises(CredentialsError, match=r"credentials\.json"):
        promptly(lambda: load_credentials(creds))
    operators = hostile(kind, "operators.json")
    with pytest.raises(ValueError, match=r"operators\.json"):
        promptly(lambda: TokenRegistry(operators).verify("crt_" + "x" * 40))
    stack = hostile(kind, "stack.json")
    assert promptly(lambda: read_stack_status(stack)) is None


@pytest.mark.parametrize("kind", ["fifo", "huge"])
def test_the_review_service_starts_past_a_hostile_tuning_file(
    make_review: Any, var: Path, kind: str
) -> None:
    """``var/tuning.json`` is read at the review service's start: a FIFO there held the start
    for ever. It is reported and replaced by the store's tuning when there is one."""
    path = var / "tuning.json"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        with path.open("wb") as f:
            f.truncate(SMALL_FILE_BYTES + 1)
    try:
        review = promptly(make_review, timeout=30.0)
    finally:
        if kind == "fifo":  # let a start blocked on it (the bug) return
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert review.service is not None and review.server.started


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink"])
def test_append_only_files_are_written_only_when_they_are_files(tmp_path: Path, kind: str) -> None:
    """A FIFO at a dead-letter file hung the bus thread that dead-letters (the service stopped
    reading the bus); at a service's log, its start. A symbolic link had the service append to
    a file of someone else's choosing. Each is refused by name; a dead letter is counted."""
    target = tmp_path / "elsewhere"
    target.write_text("mine\n")
    paths = [tmp_path / "deadletter.jsonl", tmp_path / "service.jsonl"]
    fifos = []
    for path in paths:
        if kind == "fifo":
            os.mkfifo(path)
            fifos.append(path)
        elif kind == "directory":
            path.mkdir()
        else:
            path.symlink_to(target)
    try:
        letters = DeadLetterLog(paths[0], "t")
        promptly(lambda: letters.write("alerts/pump01", "bad", b"{}"))
        assert letters.stats.write_errors == 1 and letters.stats.written == 0
        with pytest.raises(OSError, match="service"):
            promptly(lambda: JsonlLog(paths[1], "t"))
    finally:
        for fifo in fifos:  # let an open blocked on it (the bug) return
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    assert target.read_text() == "mine\n"


def test_the_tuning_file_and_case_file_are_not_written_through_links(tmp_path: Path) -> None:
    """The review service writes ``var/tuning.json`` through ``tuning.json.part`` and appends
    ``var/false_positives.jsonl``: a symbolic link left at either wrote the operator's tuning
    (or a case) into a file of someone else's choosing."""
    from engine.schemas import Feedback, Tuning, utc_now

    target = tmp_path / "elsewhere"
    target.write_text("mine\n")
    (tmp_path / "tuning.json.part").symlink_to(target)
    save_tuning(Tuning(), tmp_path / "tuning.json")
    assert load_tuning(tmp_path / "tuning.json") == Tuning()
    (tmp_path / "false_positives.jsonl").symlink_to(target)
    case = Feedback(feedback_id="f-1", ticket_id="T-0001", asset="pump01", action="close",
                    who="ana", at=utc_now(), reason="false_positive")  # fmt: skip
    with pytest.raises(OSError):
        FalsePositiveLog(tmp_path / "false_positives.jsonl").append(case)
    assert target.read_text() == "mine\n"
