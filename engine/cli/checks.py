"""Checks a command makes before it starts work, so a bad address fails in a second with one
line naming it, not after services waited half a minute for it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from engine.cli.errors import RuntimeFailure, UsageError

if TYPE_CHECKING:
    from engine.bus.broker import BrokerAddress


def http_url(url: str, source: str) -> str:
    """``url`` when it is an ``http(s)://host[:port]`` URL; UsageError naming ``source`` (the
    flag or environment variable it came from) otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise UsageError(f"{source} {url!r}: not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{source} {url!r}: expected http://host:port or https://host:port")
    return url


def broker_address(url: str) -> BrokerAddress:
    """``url`` parsed; a URL that is not a broker's is bad input (UsageError naming what is
    wrong), not the runtime failure ``BrokerError`` is everywhere else."""
    from engine.bus.broker import BrokerError, parse_broker_url

    try:
        return parse_broker_url(url)
    except BrokerError as exc:
        raise UsageError(str(exc)) from None


def require_broker(url: str, timeout: float = 3.0) -> None:
    """The named broker accepts TCP connections (TLS or not); else RuntimeFailure naming it
    (UsageError for a URL that is not a broker's, or a host name that does not resolve)."""
    import socket  # here, not at the top: `detect --help` and `brief` never need it

    from engine.bus.broker import redact_url

    addr = broker_address(url)
    try:
        with socket.create_connection((addr.host, addr.port), timeout=timeout):
            return
    except socket.gaierror:
        raise UsageError(f"broker {redact_url(url)}: unknown host {addr.host!r}") from None
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot reach the broker at {redact_url(url)}: {exc.strerror or exc} "
            "(is it running? without --broker an embedded one is started)"
        ) from None


def output_path(text: str) -> Path:
    """argparse ``type=`` for a file a command will write ('-' = stdout): a typo'd directory
    fails at once, not after a long run. The nearest existing directory on its path must be
    writable (the command creates the ones below it, or fails naming them)."""
    path = Path(text)
    if text == "-":
        return path
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory")
    existing = path.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {existing} is not a directory")
    if not os.access(existing, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: cannot write in {existing}: permission denied")
    return path


def port_number(text: str) -> int:
    """argparse ``type=`` for a TCP port (0..65535), so 99999 is a usage error, not a crash
    inside ``bind()``."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0..65535)")
    return port
