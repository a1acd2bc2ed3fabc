"""What the TUI could not do (a failed fetch, a refused call), written to ``var/logs/tui.log``.

The screen shows the effect ("Tickets · 0 open"); this file says why, so it is the first thing to
read when a screen looks wrong, and the demo's tmux test prints it on failure (a review service
that refused every call left a CI screen without tickets and nothing on record). Textual's own
log reaches only a developer's console.

Bounded: the file rotates at ``MAX_BYTES`` keeping one old file, and a warning that repeats at
every poll is written at most once per ``REPEAT_S``, with how many times it came meanwhile.
Several TUIs on one host share the file; each line names its process, and each write holds an
exclusive lock on ``var/logs`` (rotation included) and follows the file another TUI rotated:
without that, one TUI's rotation left another writing into ``tui.log.1`` or a file already
deleted (its latest lines lost), and two rotating at once removed each other's file (a full
file of lines gone, a write failed). A warning often quotes a
service's error detail: it is written on one line, cut, with control characters escaped, so
reading the file in a terminal runs nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
import time
from collections.abc import Callable
from logging.handlers import RotatingFileHandler
from pathlib import Path

from tui.safe import clean

MAX_BYTES = 512 * 1024
MAX_TEXT = 500
"""Characters of one warning written (a service's error detail is not ours to trust)."""
REPEAT_S = 60.0
LOCK_WAIT_S = 1.0
"""The longest a write waits for another TUI's (an honest TUI holds the lock for one write;
on a loaded host, 0.2 s was passed now and then): past it the line is dropped and counted
(``busy``, within ``failed``), never a frozen screen."""
_KEPT = 256
"""Distinct warnings remembered for the repeat limit (the oldest forgotten first)."""


class _Handler(RotatingFileHandler):
    """Writes only to a regular file at that very name: a ``tui.log`` that is a symbolic link
    would have the operator's TUI append to a file of someone else's choosing (a line of
    theirs in a shell's rc file), a FIFO would hang the TUI at its start. A write that fails
    (a full disk, a rotation onto something not a file) is counted, never printed: logging's
    default prints a traceback to stderr, which is where Textual draws the screen."""

    failed = 0
    busy = 0

    def __init__(self, filename: Path, *, max_bytes: int) -> None:
        self._dir_fd = os.open(filename.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            super().__init__(filename, maxBytes=max_bytes, backupCount=1, encoding="utf-8")
        except BaseException:
            os.close(self._dir_fd)
            raise

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed += 1

    def emit(self, record: logging.LogRecord) -> None:
        """One write, under the lock every TUI on this ``var/`` takes, into the file now at
        ``tui.log`` (not one another TUI rotated away)."""
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self._dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.busy += 1
                    self.handleError(record)
                    return
                time.sleep(0.005)
            except OSError:
                self.handleError(record)
                return
        try:
            self._follow()
            super().emit(record)  # rotates first if due; a failure goes to handleError
        finally:
            fcntl.flock(self._dir_fd, fcntl.LOCK_UN)

    def _follow(self) -> None:
        """Drop our stream if ``tui.log`` is no longer its file (another TUI rotated it): the
        next write opens the one there now."""
        if self.stream is None:
            return
        try:
            mine = os.fstat(self.stream.fileno())
        except (OSError, ValueError):
            return  # our descriptor itself is broken: the write fails and is counted
        try:
            now = os.lstat(self.baseFilename)
            moved = (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino)
        except OSError:
            moved = True  # removed: the next write makes it afresh
        if moved:
            stream, self.stream = self.stream, None
            with contextlib.suppress(OSError):
                stream.close()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._dir_fd >= 0:
                os.close(self._dir_fd)
                self._dir_fd = -1

    def _open(self):  # type: ignore[no-untyped-def]
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(self.baseFilename, flags | os.O_CLOEXEC, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{self.baseFilename} is not a regular file")
        os.set_blocking(fd, True)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


class ProblemLog:
    def __init__(
        self,
        var: Path | None,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}
        self._log: logging.Logger | None = None
        if var is None:
            return
        try:
            (var / "logs").mkdir(parents=True, exist_ok=True)
            handler = _Handler(var / "logs" / "tui.log", max_bytes=max_bytes)
        except OSError:
            return  # a read-only var/, a tui.log not a file: the screen works, no record
        handler.setFormatter(logging.Formatter(f"%(asctime)s tui[{os.getpid()}] %(message)s"))
        log = logging.Logger("controlroom.tui", logging.WARNING)  # its own: no root handlers
        log.addHandler(handler)
        self._log = log

    def warning(self, text: str) -> None:
        if self._log is None:
            return
        now = self._clock()
        text = text[:MAX_TEXT]  # what is written, and all that is kept: 256 of them, not MBs
        since, repeats = self._last.pop(text, (None, 0))
        if since is not None and now - since < REPEAT_S:
            self._last[text] = (since, repeats + 1)
            return
        more = f" (and {repeats} more times in the last minute)" if repeats else ""
        self._log.warning("%s%s", clean(text, single_line=True), more)
        self._last[text] = (now, 0)
        while len(self._last) > _KEPT:
            del self._last[next(iter(self._last))]

    def close(self) -> None:
        if self._log is not None:
            for handler in list(self._log.handlers):
                with contextlib.suppress(OSError):  # a file that cannot be flushed: exit anyway
                    handler.close()
                self._log.removeHandler(handler)
            self._log = None
