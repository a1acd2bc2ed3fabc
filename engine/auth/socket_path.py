"""Unix socket paths of any length, for the review service and its clients alike.

Unix socket paths are limited to 107 bytes. A longer path (a deep checkout, pytest's temp
dirs) is reached through ``/proc/self/fd/N/`` of its open directory, which Linux resolves for
``bind`` and ``connect`` alike. Apart from ``peer.py`` (server side, uvicorn) so that a client
(the TUI, the CLI) does not import the server.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_SUN_PATH = 100


class ShortPath:
    """A socket path usable with ``bind``/``connect`` even when longer than the kernel's limit.
    Keep the object alive while the path is in use (it holds the directory open)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        text = str(path)
        if len(text.encode()) > MAX_SUN_PATH:
            self._fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            text = f"/proc/self/fd/{self._fd}/{path.name}"
        self.text = text

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


def unsafe_directory(directory: Path, owners: tuple[int, ...]) -> str | None:
    """Why a socket in ``directory`` could be replaced by someone else, or None. Safe: the
    directory (symbolic links resolved) belongs to one of ``owners`` and nobody else (no group,
    no other) may write to it. The review service binds its socket only there, and a client
    trusts a socket only there: both sides hold the same rule."""
    try:
        st = directory.resolve().stat()
    except (OSError, RuntimeError) as exc:
        return f"its directory cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if st.st_uid not in owners:
        return f"its directory belongs to uid {st.st_uid}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"its directory (mode {stat.S_IMODE(st.st_mode):04o}) is one others can write to, "
            "so anyone there could replace it"
        )
    return None
