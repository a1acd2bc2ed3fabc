"""Who is acting: the name every review action records in a ticket's audit trail."""

from __future__ import annotations

import getpass
from collections.abc import Mapping

from engine.env_file import process_environ


def operator_name(environ: Mapping[str, str] | None = None) -> str:
    """``CONTROLROOM_OPERATOR`` if set; else the login name, plus the SSH client's address when
    running in an SSH session (so a shared ``ForceCommand`` account still leaves a useful audit
    trail). The TUI and ``controlroom tickets`` both use it."""
    environ = process_environ() if environ is None else environ
    named = environ.get("CONTROLROOM_OPERATOR", "").strip()
    if named:
        return named[:128]
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers)
        user = "operator"
    client = environ.get("SSH_CONNECTION", "").split(" ")[0]
    return (f"{user}@{client}" if client else user)[:128]
