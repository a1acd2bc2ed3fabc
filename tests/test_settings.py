"""engine/settings.py: one typed Config from flags > environment > .env > defaults, read
without ever writing os.environ, and errors that name the variable, the flag or the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.settings import (
    DEFAULT_PORTS,
    SERVICE_NAMES,
    Config,
    SettingsError,
    port_env,
    process_environ,
    resolve_environ,
)


def test_flags_over_environment_over_env_file_over_defaults(tmp_path: Path) -> None:
    env_file = tmp_path / "x.env"
    env_file.write_text(
        "# a comment\nexport CONTROLROOM_SPEED=3\nCONTROLROOM_RATE_HZ='4'\n"
        "CONTROLROOM_REVIEW_PORT=9105  # trailing comment\n",
        encoding="utf-8",
    )
    environ = resolve_environ({"CONTROLROOM_ENV_FILE": str(env_file), "CONTROLROOM_SPEED": "5"})
    config = Config.load(environ, rate_hz=6.0)
    assert config.speed == 5.0  # the environment wins over .env
    assert config.rate_hz == 6.0  # a flag wins over both
    assert config.port("review") == 9105  # .env fills what the environment does not set
    assert config.port("monitor") == DEFAULT_PORTS["monitor"]
    assert config.service_urls("h")["review"] == "http://h:9105"
    assert list(config.service_urls()) == list(SERVICE_NAMES)


def test_reading_never_writes_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "y.env"
    env_file.write_text("CONTROLROOM_SHARE_GROUP=g1\n", encoding="utf-8")
    monkeypatch.setenv("CONTROLROOM_ENV_FILE", str(env_file))
    before = dict(os.environ)
    assert Config.load(process_environ()).share_group == "g1"
    assert dict(os.environ) == before


@pytest.mark.parametrize(
    ("environ", "flags", "expected"),
    [
        ({"CONTROLROOM_SPEED": "fast"}, {}, "CONTROLROOM_SPEED='fast': Input should be a valid"),
        ({"CONTROLROOM_ASSETS": "0"}, {}, "CONTROLROOM_ASSETS='0': Input should be greater"),
        ({port_env("ticket"): "70000"}, {}, "CONTROLROOM_TICKET_PORT='70000'"),
        ({"CONTROLROOM_CLIENT_PREFIX": "a b"}, {}, "CONTROLROOM_CLIENT_PREFIX='a b'"),
        ({"CONTROLROOM_BROKER_INSECURE": "maybe"}, {}, "CONTROLROOM_BROKER_INSECURE='maybe'"),
        ({}, {"speed": -1.0}, "--speed -1.0: Input should be greater than 0"),
        ({}, {"review_port": 99999}, "--port 99999:"),
        ({}, {"broker_ca_file": 3}, "--ca-file 3:"),
        ({"CONTROLROOM_ASSETS": "20"}, {"sim_max_assets": 10}, "20 pumps (--assets or"),
    ],
)
def test_a_bad_value_names_its_variable_or_flag(
    environ: dict[str, str], flags: dict[str, object], expected: str
) -> None:
    with pytest.raises(SettingsError) as err:
        Config.load(environ, **flags)
    assert str(err.value).startswith(expected) or expected in str(err.value), str(err.value)


def test_empty_and_foreign_names_are_not_settings() -> None:
    config = Config.load({"CONTROLROOM_SEED": "", "controlroom_speed": "-1", "SPEED": "x"})
    assert config.seed is None and config.speed == 1.0


def test_a_malformed_env_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("CONTROLROOM_SPEED=2\nNOT A SETTING\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"bad\.env:2: expected KEY=VALUE"):
        resolve_environ({"CONTROLROOM_ENV_FILE": str(bad)})


def test_unknown_service_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown service 'x'"):
        Config.load({}).port("x")


def test_runtime_state_is_a_setting_carried_to_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The var/ a service uses is the one in the mapping its entry resolved, whatever the
    process environment says by then (nothing below the entry looks it up again)."""
    from engine.paths import ROOT
    from engine.services.settings import Settings

    monkeypatch.setenv("CONTROLROOM_VAR", str(tmp_path / "elsewhere"))
    assert Config.load({}).var == ROOT / "var"
    settings = Settings.from_env("ticket", {"CONTROLROOM_VAR": str(tmp_path / "v")})
    assert settings.var == tmp_path / "v"
    assert settings.credentials == tmp_path / "v" / "broker" / "credentials.json"
    named = {"CONTROLROOM_VAR": str(tmp_path), "CONTROLROOM_BROKER_CREDENTIALS": "/c.json"}
    assert Settings.from_env("ticket", named).credentials == Path("/c.json")


def test_only_the_entries_resolve_the_process_environment() -> None:
    """``process_environ()`` is called at a process's entry (``engine.cli``) and nowhere below
    it in the product: a library part that called it would read settings behind its caller's
    back (issue 11, one settings object)."""
    import ast

    from engine.paths import ROOT

    callers = set()
    for path in [*(ROOT / "engine").rglob("*.py"), *(ROOT / "tui").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name == "process_environ":
                    callers.add(path.relative_to(ROOT).as_posix())
    assert callers == {"engine/cli/__init__.py"}
