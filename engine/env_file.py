"""The ``.env`` file every ``controlroom`` command and service reads, kept apart from
``engine.services.settings`` so that reading it costs no import of the wire schema (the CLI does
it before every command; ``brief`` and ``--help`` must start fast).

Precedence: command-line flags > process environment > ``.env`` > defaults. ``.env`` is read
from ``CONTROLROOM_ENV_FILE`` if set, else ``./.env``, else ``.env`` at the project root; it only
fills variables the environment does not already set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from engine.paths import ROOT


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


def parse_env_file(text: str, where: str = ".env") -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments, blank lines and an ``export`` prefix allowed;
    matching single or double quotes around a value are removed."""
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise SettingsError(f"{where}:{n}: expected KEY=VALUE, got {raw.strip()[:60]!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def env_file_path(environ: Mapping[str, str] | None = None) -> Path | None:
    environ = os.environ if environ is None else environ
    named = environ.get("CONTROLROOM_ENV_FILE")
    if named:
        return Path(named)
    for cand in (Path.cwd() / ".env", ROOT / ".env"):
        if cand.is_file():
            return cand
    return None


def load_env_file(environ: MutableMapping[str, str] | None = None) -> Path | None:
    """Fill ``environ`` (default ``os.environ``) from the ``.env`` file without overriding
    anything already set. Returns the file read, if any."""
    environ = os.environ if environ is None else environ
    path = env_file_path(environ)
    if path is None or not path.is_file():
        return None
    for key, value in parse_env_file(path.read_text(encoding="utf-8"), str(path)).items():
        environ.setdefault(key, value)
    return path
