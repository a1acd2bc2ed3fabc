"""How to reach the review service, and whether a socket it names is safe to use.

``resolve_endpoint`` picks the way in, once, from the environment the entry (the CLI, the TUI)
resolved and passes to it (this module never reads the process's own); ``untrusted_socket``
says why a socket a ``/health`` answer names must not get this operator's actions. The calls
themselves are ``engine.review_client``'s.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SOCKET_URL = "http://review"
"""The base URL requests carry over the Unix socket (the host part is not used)."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    socket: Path | None = None
    token: str | None = None

    @property
    def discoverable(self) -> bool:
        """Worth asking ``/health`` for a local socket: loopback, no socket, no token."""
        return (
            self.socket is None and self.token is None and urlsplit(self.url).hostname in LOOPBACK
        )

    def describe(self) -> str:
        return f"unix:{self.socket}" if self.socket else self.url


def _token(environ: Mapping[str, str], token_file: str | None) -> str | None:
    path = token_file or environ.get("CONTROLROOM_TOKEN_FILE")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"token file {path}: {exc.strerror or exc}") from None
        if not text:
            raise ValueError(f"token file {path} is empty")
        return text
    return environ.get("CONTROLROOM_TOKEN", "").strip() or None


def resolve_endpoint(
    api: str | None = None,
    *,
    token_file: str | None = None,
    environ: Mapping[str, str],
) -> Endpoint:
    """Where and how to reach the review API (see the module docstring). ValueError: a token
    file that cannot be read."""
    raw = (api or "").strip()
    if raw.startswith("unix:"):
        return Endpoint(SOCKET_URL, socket=Path(raw[5:]))
    if not raw and environ.get("CONTROLROOM_REVIEW_SOCKET"):
        return Endpoint(SOCKET_URL, socket=Path(environ["CONTROLROOM_REVIEW_SOCKET"]))
    if not raw:
        raw = environ.get("CONTROLROOM_REVIEW_URL", "").strip()
    if not raw:
        from engine.settings import Config

        raw = Config.load(environ).service_urls("127.0.0.1")["review"]
    return Endpoint(raw.rstrip("/"), token=_token(environ, token_file))


def untrusted_socket(path: Path) -> str | None:
    """Why the socket a ``/health`` names must not get this operator's actions (and, through
    ``SO_PEERCRED``, their identity), or None. ``/health`` is anyone's to answer while the
    review port is free: a local user's squatter may name their own socket. Trusted: a socket
    (not a symbolic link) owned by this user or root, or shared through one of this user's
    groups (``CONTROLROOM_REVIEW_SOCKET_GROUP``), in a directory only its owner (this user,
    root or the socket's owner) can write, so nobody else can put another socket there later
    (the path is connected to afresh at every new connection)."""
    from engine.auth.socket_path import unsafe_directory

    try:
        st = path.lstat()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link, not the socket the service bound"
    uid = os.geteuid()
    shared = st.st_gid in (os.getegid(), *os.getgroups()) and st.st_mode & stat.S_IWGRP
    if st.st_uid not in (uid, 0) and not shared:
        return f"belongs to uid {st.st_uid}, not to you (uid {uid}) nor to a group of yours"
    if unsafe_directory(path.parent, (uid, 0, st.st_uid)) is not None:
        return "is in a directory others can write to"
    return None
