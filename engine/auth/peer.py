"""The kernel's word on who is at the other end of the review API's Unix socket.

``SO_PEERCRED`` gives the connecting process's pid, uid and gid. uvicorn does not put it in the
ASGI scope, so ``PeerCredProtocol`` (uvicorn's h11 protocol with one override) reads it when a
connection is made and hands it to the application in the connection's ``scope["state"]``
(``request.state.peer`` in FastAPI). That is the only place we lean on uvicorn's internals:
``check_uvicorn()`` pins the version it was written for and the attributes it uses, and
``tests/alarms/test_auth.py`` fails loudly if an upgrade breaks it.

Long socket paths go through ``engine/auth/socket_path.py`` (shared with the clients).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.auth.socket_path import ShortPath, unsafe_directory
from engine.http_server import BoundedH11Protocol

UVICORN_VERSION = "0.54.0"
PEER_KEY = "peer"


@dataclass(frozen=True)
class PeerCred:
    pid: int
    uid: int
    gid: int


def check_uvicorn() -> None:
    """Fail at start, with the reason, if uvicorn changed under the protocol override."""
    if uvicorn.__version__ != UVICORN_VERSION:
        raise RuntimeError(
            f"engine/auth/peer.py was written for uvicorn {UVICORN_VERSION}, found "
            f"{uvicorn.__version__}: check PeerCredProtocol against h11_impl.H11Protocol"
        )
    init = H11Protocol.__init__.__code__.co_names
    kept = {"app_state", "connections", "limit_concurrency"}
    if not kept <= set(init) or not hasattr(H11Protocol, "connection_made"):
        raise RuntimeError(
            f"uvicorn's H11Protocol no longer keeps {sorted(kept - set(init))}: "
            "fix engine/auth/peer.py"
        )


def peer_of(sock: socket.socket) -> PeerCred | None:
    if sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCred(pid, uid, gid)


TCP_SHARE = 0.75
"""Of the service's ``limit_concurrency`` (``engine.http_server.MAX_CONNECTIONS``), what TCP
connections may hold at once; the rest stays for the operators' Unix socket. The TCP port is
reachable by anyone on the host, the socket only by the operators' group: without a share, one
TCP client holding every connection (idle ones, reopened as the head bound closes them) had
each operator's call answered 503."""
REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 19\r\nconnection: close\r\n\r\nService Unavailable"
)


class PeerCredProtocol(BoundedH11Protocol):
    """uvicorn's h11 protocol (request heads bounded in time, ``engine.http_server``), plus the
    peer's credentials on Unix-socket connections; TCP connections past their share
    (``TCP_SHARE``) first close the longest-idle TCP one, and are answered 503 and closed as
    they come when every TCP connection has a request running."""

    _tcp = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's signature (BaseTransport); uvicorn's annotation narrows it to Transport,
        # which every stream transport the event loop hands a protocol is
        stream = cast(asyncio.Transport, transport)
        super().connection_made(stream)
        sock = transport.get_extra_info("socket")
        self._tcp = sock is None or sock.family != socket.AF_UNIX
        if self._tcp:
            limit = self.limit_concurrency
            share = None if limit is None else int(limit * TCP_SHARE)
            if not self.make_room(share, lambda c: getattr(c, "_tcp", False)):
                stream.write(REFUSED)
                stream.close()
        else:
            try:
                cred = peer_of(sock)
            except OSError:
                cred = None
            # uvicorn copies app_state into every request's scope["state"]; a per-connection
            # copy carries this connection's peer and nothing else changes.
            self.app_state = {**self.app_state, PEER_KEY: cred}


def request_peer(state: Any) -> PeerCred | None:
    """The peer of the connection a request came on (``request.state``), if a Unix socket."""
    return getattr(state, PEER_KEY, None)


# ---- socket paths ----------------------------------------------------------------------------


def socket_in_use(path: Path) -> bool:
    """Something accepts connections on ``path`` (another review service)."""
    short = ShortPath(path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(short.text)
        return True
    except OSError:
        return False
    finally:
        short.close()


def bind_unix(path: Path, mode: int = 0o660, group: str | None = None) -> socket.socket:
    """A listening Unix socket at ``path`` with ``mode`` (and ``group``). A stale file left by
    a killed service is replaced; a live one is an error (two services on one socket). A
    directory others can write to is an error too: anyone there could put their own socket in
    its place (and get every operator's actions), and the clients refuse such a socket anyway
    (``engine.review_client``)."""
    why = unsafe_directory(path.parent, (os.geteuid(), 0))
    if why is not None:
        raise OSError(
            errno.EPERM,
            f"review socket {path}: {why} (chmod go-w {path.parent}, or "
            "CONTROLROOM_REVIEW_SOCKET in a directory only this user can write)",
        )
    try:
        st = path.lstat()
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        if socket_in_use(path):
            raise OSError(errno.EADDRINUSE, f"{path}: another review service is listening")
        path.unlink()
    short = ShortPath(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # never world- or group-accessible before the chmod below
    try:
        sock.bind(short.text)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
        short.close()
    if group:
        import grp

        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    os.chmod(path, mode)
    sock.listen(128)
    return sock
