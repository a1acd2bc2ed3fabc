"""The ``.env`` file every ``controlroom`` command and service reads, kept apart from
``engine.settings`` (pydantic-settings) so that reading it costs no import of pydantic or the
wire schema (the CLI does it before every command; ``brief`` and ``--help`` must start fast).

Precedence: command-line flags > process environment > ``.env`` > defaults. ``.env`` is read
from ``CONTROLROOM_ENV_FILE`` if set, else ``./.env``, else ``.env`` at the project root; it only
fills variables the environment does not already set. Nothing here writes ``os.environ``:
:func:`process_environ` returns the merged mapping, and ``engine.settings.Config`` reads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from engine.paths import ROOT, read_small_file


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


def parse_env_file(text: str, where: str = ".env") -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments, blank lines and an ``export`` prefix allowed;
    matching single or double quotes around a value are removed. Stricter than python-dotenv on
    purpose: a malformed line is an error naming the file and line, not silently skipped."""
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


def resolve_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: the process environment) over the ``.env`` file: what every
    setting of this process is read from. A copy: the process environment is never changed."""
    base = dict(os.environ if environ is None else environ)
    path = env_file_path(base)
    if path is None or not path.is_file():
        return base
    try:
        text = read_small_file(path, 1024 * 1024).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read ({exc})") from None
    return {**parse_env_file(text, str(path)), **base}


def process_environ() -> dict[str, str]:
    """This process's environment over its ``.env``. Not cached: a pure function of the two,
    so a test that changes either sees the change; reading the small file costs microseconds."""
    return resolve_environ()
