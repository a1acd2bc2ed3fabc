"""Dead letters: every rejected message, kept so nothing silently disappears — within a bound.

One JSONL file per service (``var/deadletter/{service}.jsonl``), one ``DeadLetter`` per line,
each payload cut to 64 KiB (less when the file limit is small: a line never outgrows it). When
the file would pass ``max_bytes`` it is rotated
(``.jsonl`` -> ``.jsonl.1`` -> … -> ``.jsonl.{keep}``) and the oldest is deleted, so a flood of
junk costs at most ``max_bytes * (keep + 1)`` of disk, however long it lasts. Every letter is
counted whether or not it could be written (a full disk must not stop a service).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.paths import open_append
from engine.schemas import DeadLetter, utc_now

log = logging.getLogger("controlroom.bus")

PAYLOAD_CHARS = 64 * 1024
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_KEEP = 3


@dataclass
class DeadLetterStats:
    """The log's counters since the service started, shown under ``deadletter`` in /health."""

    written: int = 0
    """Letters appended to the file (in any of its rotations); one that could not be written
    counts in ``write_errors`` instead, so the two add up to every letter."""
    bytes: int = 0
    """Size of the current file."""
    rotations: int = 0
    """Times the current file passed ``max_bytes`` and was moved to ``.jsonl.1`` (deleted when
    ``keep`` is 0); each one pushes the older files a place down."""
    files_dropped: int = 0
    """Rotated files deleted at the bound (their letters are gone; this says how often)."""
    write_errors: int = 0
    """Letters that could not be written (disk full, read-only): the service goes on, and
    while this is not 0 its /health lists the problem."""


class DeadLetterLog:
    """Append-only, size-capped JSONL of rejected messages (thread-safe)."""

    def __init__(
        self,
        path: Path,
        service: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep: int = DEFAULT_KEEP,
    ) -> None:
        self.path = path
        self.service = service
        self.max_bytes = max_bytes
        self.keep = keep
        self.payload_chars = max(256, min(PAYLOAD_CHARS, max_bytes // 8))
        """JSON escapes at most 6 bytes per character: a line stays under ``max_bytes``."""
        self.stats = DeadLetterStats()
        self._lock = threading.Lock()
        self._size: int | None = None

    def write(self, topic: str, reason: str, payload: bytes | str) -> None:
        """Append one letter; OSError (disk full, read-only) is counted and logged, not raised."""
        raw = payload if isinstance(payload, bytes) else payload.encode("utf-8", "replace")
        text = raw[: self.payload_chars * 4].decode("utf-8", "replace")
        record = DeadLetter(
            at=utc_now(),
            service=self.service,
            topic=topic[:500],
            reason=reason[:500],
            payload=text[: self.payload_chars],
            size=len(raw),
        )
        line = (record.to_json() + "\n").encode("utf-8")
        with self._lock:
            try:
                self._append(line)
            except OSError as exc:
                self.stats.write_errors += 1
                log.error("%s: cannot write dead letter to %s: %s", self.service, self.path, exc)

    def _append(self, line: bytes) -> None:
        if self._size is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._size = self.path.stat().st_size if self.path.exists() else 0
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        with os.fdopen(open_append(self.path), "ab") as f:
            f.write(line)
        self._size += len(line)
        self.stats.written += 1
        self.stats.bytes = self._size

    def _rotate(self) -> None:
        oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
        if oldest.exists():
            oldest.unlink()
            self.stats.files_dropped += 1
        for i in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.keep > 0:
            self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
            self.stats.files_dropped += 1
        self.stats.rotations += 1
        self._size = 0

    def files(self) -> list[Path]:
        """The current file and its rotated predecessors, newest first."""
        names = [self.path] + [
            self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.keep + 1)
        ]
        return [p for p in names if p.exists()]
