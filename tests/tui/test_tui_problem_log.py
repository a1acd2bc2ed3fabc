"""``var/logs/tui.log``: why the TUI could not fetch or call, on record, and bounded."""

from __future__ import annotations

from pathlib import Path

from tui.problem_log import MAX_BYTES, REPEAT_S, ProblemLog


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
