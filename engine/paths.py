"""Where the project's data lives.

The scenarios, rules and factory configs ship beside the code (the README installs the project
editable), and runtime state goes under ``var/``. ``CONTROLROOM_HOME`` moves the root (tests and
containers), ``CONTROLROOM_VAR`` moves only the runtime state.

``CONTROLROOM_HOME`` is the one variable read from the process environment here, at import: it
must be known before the ``.env`` file can be found (``.env`` at the project root is a
candidate), so it cannot itself come from ``.env`` nor from the settings object built from it.
Everything else, ``CONTROLROOM_VAR`` included, is resolved once at a process's entry and passed
down (:func:`var_dir` takes that mapping; a service's ``Settings`` carries ``var``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(os.environ.get("CONTROLROOM_HOME") or Path(__file__).resolve().parents[1])
SCENARIOS_DIR = ROOT / "scenarios"
FACTORY_DIR = SCENARIOS_DIR / "factory"
RULES_DIR = ROOT / "rules"


def var_dir(environ: Mapping[str, str]) -> Path:
    """Runtime state (SQLite store, JSONL logs, dead letters, tuning): ``CONTROLROOM_VAR`` in
    ``environ`` (the entry's environment over ``.env``) or ``ROOT/var``. Created on first use.
    Kept free of pydantic so the CLI can ask without importing ``engine.settings``."""
    path = var_path(environ)
    # 0755 whatever the umask (002 on many desktops): a group-writable var/ would let others
    # replace the operators' socket, and the review service refuses to bind it there
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    return path


def var_path(environ: Mapping[str, str]) -> Path:
    """Where ``var/`` is, without creating it (for a caller that reports its own error)."""
    return Path(environ.get("CONTROLROOM_VAR") or ROOT / "var")


SMALL_FILE_BYTES = 8 * 1024 * 1024
"""The most of one settings-like file (rules, tuning, scenario, tokens, status) read at once."""


def read_small_file(path: Path, max_bytes: int = SMALL_FILE_BYTES) -> bytes:
    """The bytes of ``path``, a regular file of at most ``max_bytes``. OSError naming the file
    otherwise: a FIFO put in its place would block the reader for ever (a service's start, a
    request's worker, the TUI), a device (``/dev/zero``) never end, a huge file fill memory.
    Opened non-blocking, so even a FIFO is only looked at."""
    import errno
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        data = bytearray()
        while len(data) <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - len(data)))
            if not chunk:
                return bytes(data)
            data += chunk
        raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
    finally:
        os.close(fd)


def open_append(path: Path) -> int:
    """A descriptor appending to ``path`` (created 0644), a regular file and not a symbolic
    link; OSError naming it otherwise. Opened non-blocking, then set blocking: a FIFO put in
    its place would hang the open (and the service's start or its bus thread) for ever."""
    import errno
    import stat

    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    os.set_blocking(fd, True)
    return fd
