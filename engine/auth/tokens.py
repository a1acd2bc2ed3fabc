"""Per-operator bearer tokens for TUIs that are not on the plant host.

``var/operators.json`` (mode 0600) maps each operator to the SHA-256 of their token; the token
itself is shown once when it is made and written to ``var/tokens/NAME.token`` (mode 0600) for
the administrator to hand over. A presented token is hashed and compared with every stored hash
in constant time (``hmac.compare_digest``, no early exit), so timing says nothing about which
byte or which operator was close. The service re-reads the file when it changes: adding or
revoking an operator needs no restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.auth.identity import check_operator_name
from engine.paths import read_small_file

TOKEN_PREFIX = "crt_"
MAX_TOKEN_CHARS = 256


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _write_private(path: Path, data: str) -> None:
    """Write ``data`` to ``path`` atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class TokenRegistry:
    """The operators' token hashes in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._hashes: dict[str, str] = {}

    @property
    def tokens_dir(self) -> Path:
        return self.path.parent / "tokens"

    # ---- reading ---------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            raw = json.loads(read_small_file(self.path))
        except FileNotFoundError:
            return {"operators": {}}
        except OSError as exc:  # not a file (a FIFO would hang every request), too large
            raise ValueError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise ValueError(f"{self.path}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("operators"), dict):
            raise ValueError(f"{self.path}: expected {{'operators': {{name: {{sha256: ...}}}}}}")
        return raw

    def _refresh(self) -> None:
        """Reload when the file changed (size, mtime or inode); called under the lock."""
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        hashes = {}
        for name, entry in self._read()["operators"].items():
            if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
                hashes[name] = entry["sha256"]
        self._hashes, self._stamp = hashes, stamp

    def names(self) -> list[str]:
        with self._lock:
            self._refresh()
            return sorted(self._hashes)

    def verify(self, token: str) -> str | None:
        """The operator whose token this is, or None."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        presented = _digest(token)
        with self._lock:
            self._refresh()
            found = None
            for name, stored in self._hashes.items():
                if hmac.compare_digest(presented, stored):
                    found = name
            return found

    # ---- administration (controlroom operators ...) -----------------------------------------

    def add(self, name: str, *, replace: bool = False) -> tuple[str, Path]:
        """Make a token for ``name``; returns it and the file (mode 0600) it was written to.
        ValueError for a bad name, or an existing operator without ``replace``."""
        check_operator_name(name)
        with self._lock:
            raw = self._read()
            if name in raw["operators"] and not replace:
                raise ValueError(
                    f"operator {name!r} already has a token (--replace makes a new one)"
                )
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            raw["operators"][name] = {
                "sha256": _digest(token),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            _write_private(self.path, json.dumps(raw, indent=2, sort_keys=True) + "\n")
            self.tokens_dir.mkdir(mode=0o700, exist_ok=True)
            token_file = self.tokens_dir / f"{name}.token"
            _write_private(token_file, token + "\n")
            self._stamp = None
        return token, token_file

    def remove(self, name: str) -> None:
        with self._lock:
            raw = self._read()
            if name not in raw["operators"]:
                raise ValueError(f"no operator {name!r} (see controlroom operators list)")
            del raw["operators"][name]
            _write_private(self.path, json.dumps(raw, indent=2, sort_keys=True) + "\n")
            (self.tokens_dir / f"{name}.token").unlink(missing_ok=True)
            self._stamp = None
