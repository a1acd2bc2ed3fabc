"""Who an authenticated request is: a name that is safe to print in an audit line."""

from __future__ import annotations

import pwd
import re
from dataclasses import dataclass
from typing import Literal

Via = Literal["unix_socket", "token"]

OPERATOR_NAME = re.compile(r"[a-z][a-z0-9._-]{0,31}")
"""Token operators: lowercase, like POSIX login names; no spaces, controls, bidi or zero-width
characters, so a name can never forge or reorder an audit line."""
_LOGIN_NAME = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._@-]{0,63}")

RESERVED = ("system", "mirror", "review", "reviewer")
"""Names the services sign automatic changes with (plus every ``agent-*``): no operator may take
them, so an audit line signed ``agent-ticket`` was written by the ticket agent."""


class AuthError(Exception):
    """The request carries no valid identity; the message says how to get one."""


@dataclass(frozen=True)
class Operator:
    name: str
    via: Via


def is_reserved(name: str) -> bool:
    return name in RESERVED or name.startswith("agent")


def check_operator_name(name: str) -> str:
    """A name for a new token operator, or ValueError saying what is wrong with it."""
    if not OPERATOR_NAME.fullmatch(name):
        raise ValueError(
            f"operator name {name!r}: 1-32 characters, a lowercase letter first, then lowercase "
            "letters, digits, '.', '_' or '-'"
        )
    if is_reserved(name):
        raise ValueError(f"operator name {name!r} is reserved for the services' own entries")
    return name


def name_for_uid(uid: int) -> str:
    """The login name of ``uid`` as the audit shows it; ``uid:N`` when it has no passwd entry,
    or a name that is not a plain login name or collides with a reserved one."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"
    if not _LOGIN_NAME.fullmatch(name) or is_reserved(name):
        return f"uid:{uid}"
    return name
