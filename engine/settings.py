"""The one place configuration is read: ``CONTROLROOM_*`` variables from the environment and the
``.env`` file, as one typed object (:class:`Config`, pydantic-settings).

Precedence: command-line flags > process environment > ``.env`` > defaults (the file is found
and read by ``engine/env_file.py``, which stays free of pydantic for a fast CLI start). Every
variable is documented in ``.env.example``.

Why one module: the service names, their ports and every variable's type and bound are written
once here, and every reader (the services, ``controlroom up``, the TUI, the review client) asks
this module instead of reading ``os.environ`` itself. Nothing here writes ``os.environ``: flags
are passed in (:meth:`Config.load`), and a parent hands its children an explicit environment.

It imports no I/O layer, so the TUI and the clients may use it (an import-linter contract).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from engine.env_file import (
    SettingsError,
    env_file_path,
    parse_env_file,
    process_environ,
    resolve_environ,
)
from engine.paths import ROOT
from engine.schemas import MAX_BATCH_SAMPLES

SERVICE_NAMES = ("simulator", "monitor", "diagnosis", "ticket", "review")
"""The plant services, in start order (the simulator first, the review API last)."""
DEFAULT_PORTS: Mapping[str, int] = {
    "simulator": 8101,
    "monitor": 8102,
    "diagnosis": 8103,
    "ticket": 8104,
    "review": 8105,
}
PREFIX = "CONTROLROOM_"
NAME_RE = r"^[A-Za-z0-9_.\-]{1,40}$"
__all__ = [
    "DEFAULT_PORTS",
    "SERVICE_NAMES",
    "Config",
    "SettingsError",
    "env_file_path",
    "parse_env_file",
    "port_env",
    "process_environ",
    "resolve_environ",
]


def port_env(name: str) -> str:
    """The variable that sets service ``name``'s HTTP port."""
    return f"{PREFIX}{name.upper()}_PORT"


# ---- the settings object ---------------------------------------------------------------------


class _FromMapping(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of
    ``os.environ`` (so a caller can say exactly what the settings come from)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        # only the upper-case names (the environment is case-sensitive; ``controlroom_speed``
        # is not ours), lower-cased as pydantic-settings matches them; an empty value counts as
        # unset (``CONTROLROOM_SEED=`` in .env.example)
        self._given = {
            k.lower(): v
            for k, v in environ.items()
            if k.startswith(PREFIX) and k == k.upper() and v != ""
        }
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._given


_READING: ContextVar[Mapping[str, str] | None] = ContextVar("controlroom_environ", default=None)
"""The mapping :meth:`Config.load` is reading (per thread and task, so loads never mix)."""


class Config(BaseSettings):
    """Every ``CONTROLROOM_*`` setting a process shares with the others, typed and bounded.

    Field ``x`` is variable ``CONTROLROOM_X``; ``.env.example`` says what each one does. Build
    it with :meth:`load` (which names the variable in any error), not the constructor."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, case_sensitive=False, extra="ignore", frozen=True
    )

    # where things are
    host: str = "127.0.0.1"
    broker: str | None = None
    broker_ca_file: str | None = None
    broker_cert_file: str | None = None
    broker_key_file: str | None = None
    broker_insecure: bool = False
    broker_credentials: Path | None = None
    """The identities' passwords (default ``var/broker/credentials.json``)."""
    simulator_port: int = Field(DEFAULT_PORTS["simulator"], ge=0, le=65535)
    monitor_port: int = Field(DEFAULT_PORTS["monitor"], ge=0, le=65535)
    diagnosis_port: int = Field(DEFAULT_PORTS["diagnosis"], ge=0, le=65535)
    ticket_port: int = Field(DEFAULT_PORTS["ticket"], ge=0, le=65535)
    review_port: int = Field(DEFAULT_PORTS["review"], ge=0, le=65535)
    review_url: str | None = None
    review_socket: str | None = None
    var: Path = ROOT / "var"
    """Runtime state (store, logs, dead letters, tuning, credentials); ``paths.var_dir``
    reads the same variable for the commands that do not build a Config."""
    # how a service runs
    shard: str | None = None
    log_level: str = "info"
    client_prefix: str = Field("controlroom", pattern=NAME_RE)
    restarts: int = Field(0, ge=0)
    telemetry_legacy: bool = True
    share_group: str | None = Field(None, pattern=NAME_RE)
    # bounds
    deadletter_max_bytes: int = Field(16 << 20, gt=0)
    inbox_max_bytes: int = Field(16 << 20, gt=0)
    max_body_bytes: int = Field(1 << 20, gt=0)
    max_assets: int = Field(4096, gt=0)
    asset_idle_s: float = Field(3600.0, gt=0)
    # the simulator
    scenario: str | None = None
    speed: float = Field(1.0, gt=0)
    rate_hz: float = Field(1.0, gt=0)
    assets: int = Field(1, ge=1)
    seed: int | None = None
    simulator_hold: bool = False
    """Load the scenario but play it only on ``POST /scenario/start`` (``up`` and ``demo``)."""
    sim_max_assets: int = Field(10_000, ge=1)
    telemetry_batch: int = Field(0, ge=0, le=MAX_BATCH_SAMPLES)
    telemetry_log_every: int = Field(1, ge=0)

    @field_validator("log_level")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @model_validator(mode="after")
    def _fleet_fits(self) -> Config:
        if self.assets > self.sim_max_assets:
            raise ValueError(
                f"{self.assets} pumps (--assets or {PREFIX}ASSETS): the simulator plays at most "
                f"{PREFIX}SIM_MAX_ASSETS={self.sim_max_assets} (raise it)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: Any, *_: Any, **__: Any
    ) -> tuple[Any, ...]:
        # flags (init) over the given environment; the .env file is already folded into that
        # mapping by resolve_environ, with its own stricter parser
        return (init_settings, _FromMapping(settings_cls, _READING.get() or {}))

    @classmethod
    def load(cls, environ: Mapping[str, str], **flags: object) -> Config:
        """The settings from ``environ`` (the entry's :func:`process_environ`, resolved once)
        with command-line ``flags`` over them (a flag left None does not count). SettingsError
        naming the variable (or the flag) on a bad value."""
        env = environ
        given: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
        token = _READING.set(env)
        try:
            return cls(**given)
        except ValidationError as exc:
            raise SettingsError(_one_line(exc, env, given)) from None
        finally:
            _READING.reset(token)

    def port(self, service: str) -> int:
        """Service ``service``'s HTTP port (``CONTROLROOM_<SERVICE>_PORT`` or 8101..8105)."""
        if service not in SERVICE_NAMES:
            raise SettingsError(f"unknown service {service!r} (one of {', '.join(SERVICE_NAMES)})")
        port: int = getattr(self, f"{service}_port")
        return port

    def service_urls(self, host: str | None = None) -> dict[str, str]:
        """Base URL of each service on ``host`` (default: this config's host)."""
        where = host or self.host
        return {name: f"http://{where}:{self.port(name)}" for name in SERVICE_NAMES}


def _one_line(exc: ValidationError, environ: Mapping[str, str], flags: Mapping[str, object]) -> str:
    """The first error as ``CONTROLROOM_X='bad': why`` (or ``--x 'bad': why`` for a flag)."""
    err = exc.errors(include_url=False)[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not err["loc"]:
        return msg
    field = str(err["loc"][0])
    var = f"{PREFIX}{field.upper()}"
    if field in flags:
        flag = "port" if field.endswith("_port") else field.removeprefix("broker_")
        return f"--{flag.replace('_', '-')} {flags[field]!r}: {msg}"
    raw = next((v for k, v in environ.items() if k.upper() == var), err.get("input"))
    return f"{var}={raw!r}: {msg}"
