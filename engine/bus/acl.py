"""Who may publish and subscribe to what on the bus: the one table every broker we start
enforces, and the credentials of each identity.

``ACL`` below is the single place the topic permissions are written. The embedded Mosquitto gets
a ``password_file`` and an ``acl_file`` generated from it, the embedded amqtt an auth plugin
that reads it (``engine.bus.amqtt_embedded``), docker-compose's Mosquitto the same files written
by ``controlroom broker init``; ``docs/live.md`` shows the resulting ACL for an external broker.
To let a service use a new topic kind, add it to its ``Grant`` here (and nowhere else).

One identity per service (replicas share their service's), plus ``tui``: read-only. Each
identity may publish only the kinds its service produces, and subscribe only to what it reads.

Credentials are generated on first use into ``var/broker/credentials.json`` (directory 0700,
file 0600): a random password per identity. Every process of the stack runs as the same user
and reads its own password from there; the brokers get only salted hashes. What this buys: no
other local user (or anything else that can reach the port but not read ``var/``) can publish,
and a service can only publish its own topics, so one compromised or buggy service cannot forge
another's messages. What it does not: a process running as the stack's own user can read the
file; that user is trusted.

The TUI reads only ``tui.json`` beside it, which holds the read-only ``tui`` identity alone: a
colleague's TUI (their own SSH account in the operators' group, ``docs/tui.md``) can be let read
that one file (mode 0640 and the directory 0710, both in ``CONTROLROOM_REVIEW_SOCKET_GROUP``),
and never sees a password that can publish.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engine.paths import read_small_file, var_dir

CREDENTIALS_ENV = "CONTROLROOM_BROKER_CREDENTIALS"
"""Another credentials file than ``var/broker/credentials.json`` (e.g. a shared volume)."""

OPERATORS_GROUP_ENV = "CONTROLROOM_REVIEW_SOCKET_GROUP"
"""The operators' group: may connect to the review service's socket and read the TUI's broker
identity (``tui_credentials``)."""

ALL_KINDS = ("telemetry", "alerts", "diagnosis", "tickets", "feedback")


@dataclass(frozen=True)
class Grant:
    """Topic kinds (the first topic level) an identity may publish and subscribe to."""

    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()


ACL: dict[str, Grant] = {
    "simulator": Grant(publish=("telemetry",)),
    "monitor": Grant(publish=("alerts",), subscribe=("telemetry", "feedback")),
    "diagnosis": Grant(publish=("diagnosis",), subscribe=("telemetry", "alerts", "feedback")),
    "ticket": Grant(publish=("tickets",), subscribe=("alerts", "diagnosis")),
    "review": Grant(publish=("tickets", "feedback"), subscribe=("alerts",)),
    "tui": Grant(subscribe=ALL_KINDS),
}
"""identity -> what it may do. The TUI is read-only on the bus."""


def _kind(topic: str) -> str:
    return topic.split("/", 1)[0]


SYNC_KIND = "sync"
"""``sync/{identity}``: every identity may publish there and nobody subscribes — the bus client's
durability round trip (``engine.bus.client.Publication``)."""


def may_publish(identity: str | None, topic: str) -> bool:
    grant = ACL.get(identity or "")
    if grant is None or "+" in topic or "#" in topic:
        return False
    return _kind(topic) in grant.publish or topic == f"{SYNC_KIND}/{identity}"


def may_subscribe(identity: str | None, topic_filter: str) -> bool:
    """A filter whose first level is a granted kind (``alerts/+``, ``telemetry/#``), also
    inside a shared subscription (``$share/{group}/telemetry/#``)."""
    grant = ACL.get(identity or "")
    if topic_filter.startswith("$share/") and topic_filter.count("/") >= 2:
        topic_filter = topic_filter.split("/", 2)[2]
    return grant is not None and _kind(topic_filter) in grant.subscribe


# --------------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------------


class CredentialsError(RuntimeError):
    """The credentials file cannot be read or written; the message names it."""


def credentials_path(environ: Mapping[str, str], var: Path | None = None) -> Path:
    """``CONTROLROOM_BROKER_CREDENTIALS`` in ``environ`` (the entry's resolved environment),
    else ``var/broker/credentials.json``. A given ``var`` wins over the variable: a stack with
    its own ``var/`` keeps its own credentials."""
    named = environ.get(CREDENTIALS_ENV)
    if named and var is None:
        return Path(named)
    return default_credentials(var or var_dir(environ))


def default_credentials(var: Path) -> Path:
    """The credentials file of the stack whose runtime state is ``var``."""
    return var / "broker" / "credentials.json"


def load_credentials(path: Path) -> dict[str, str] | None:
    """identity -> password, or None when no file exists yet."""
    try:
        raw = json.loads(read_small_file(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"{path}: cannot read broker credentials: {exc}") from None
    identities = raw.get("identities") if isinstance(raw, dict) else None
    if not isinstance(identities, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in identities.items()
    ):
        raise CredentialsError(f"{path}: expected {{'identities': {{name: password}}}}")
    return dict(identities)


def tui_credentials(path: Path) -> Path:
    """The file beside the credentials file ``path`` holding the ``tui`` identity alone: the
    only one the TUI reads."""
    return path.with_name("tui.json")


def _document(identities: Mapping[str, str]) -> str:
    return json.dumps({"version": 1, "identities": dict(identities)}, indent=2) + "\n"


def ensure_credentials(path: Path, group: str | None = None) -> dict[str, str]:
    """The credentials, generated on first use (and completed when ``ACL`` gained an
    identity). Written atomically, mode 0600 in a 0700 directory; ``tui_credentials(path)``
    beside them, the TUI's alone. ``group``: the operators' group, which may then read the
    TUI's file (0640) through the directory (0710) — and nothing else in it."""
    existing = load_credentials(path) or {}
    creds = {name: existing.get(name) or secrets.token_urlsafe(24) for name in ACL}
    creds |= {k: v for k, v in existing.items() if k not in creds}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        gid = _gid(group)
        with contextlib.suppress(OSError):
            path.parent.chmod(0o700 if gid is None else 0o710)
            if gid is not None:
                os.chown(path.parent, -1, gid)
        if creds != existing:
            _write_private(path, _document(creds))
        tui = tui_credentials(path)
        _write_private(tui, _document({"tui": creds["tui"]}), gid)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot write broker credentials: {exc}") from None
    return creds


def _gid(group: str | None) -> int | None:
    if not group:
        return None
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise CredentialsError(f"operators' group {group!r}: no such group") from None


def _write_private(path: Path, text: str, gid: int | None = None) -> None:
    """Atomically, mode 0600 (0640 and group ``gid`` when given)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        if gid is not None:
            os.fchown(f.fileno(), -1, gid)
            os.fchmod(f.fileno(), 0o640)
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def credentials_for(
    identity: str, broker_url: str | None, path: Path | None
) -> tuple[str, str] | None:
    """(user, password) for ``identity`` from the credentials file ``path``, or None: when the
    broker URL names its own user (it wins), or no path, file or entry exists (connect
    anonymously)."""
    if (broker_url and urlsplit(broker_url).username) or path is None:
        return None
    try:
        creds = load_credentials(path)
    except CredentialsError:
        return None
    if not creds or identity not in creds:
        return None
    return identity, creds[identity]


# --------------------------------------------------------------------------------------------
# Mosquitto files
# --------------------------------------------------------------------------------------------

PBKDF2_ITERATIONS = 101
"""What ``mosquitto_passwd`` (2.x) uses for its ``$7$`` (PBKDF2-SHA512) hashes."""


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """A Mosquitto 2 password-file hash (``$7$``), as ``mosquitto_passwd`` writes it."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def mosquitto_password_file(creds: Mapping[str, str]) -> str:
    return "".join(f"{user}:{mosquitto_hash(pw)}\n" for user, pw in sorted(creds.items()))


def mosquitto_acl_file() -> str:
    """``ACL`` in Mosquitto's acl_file syntax (anything not granted is denied)."""
    lines = ["# Generated from engine/bus/acl.py (ACL): edit the table there, not this file."]
    for user, grant in ACL.items():
        lines.append(f"\nuser {user}")
        lines += [f"topic read {kind}/#" for kind in grant.subscribe]
        lines += [f"topic write {kind}/#" for kind in grant.publish]
        lines.append(f"topic write {SYNC_KIND}/{user}")
    return "\n".join(lines) + "\n"


def write_mosquitto_auth(directory: Path, creds: Mapping[str, str]) -> tuple[Path, Path]:
    """Write ``passwd`` and ``acl`` for Mosquitto into ``directory`` (mode 0600); return both
    paths."""
    directory.mkdir(parents=True, exist_ok=True)
    passwd, acl = directory / "passwd", directory / "acl"
    _write_private(passwd, mosquitto_password_file(creds))
    _write_private(acl, mosquitto_acl_file())
    return passwd, acl
