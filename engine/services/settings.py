"""A service process's settings: :class:`engine.settings.Config` (every variable, read once)
narrowed to one service, with its port, shard and instance name.

Precedence (flags > environment > ``.env`` > defaults) and every variable are in
``engine/settings.py``; this module only says what a service makes of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.bus.acl import default_credentials
from engine.bus.routing import owns
from engine.paths import var_path
from engine.settings import SERVICE_NAMES, Config, SettingsError

__all__ = ["Settings", "SettingsError", "Shard", "ensure_writable_var"]


def ensure_writable_var(environ: Mapping[str, str]) -> Path:
    """``var/`` (``CONTROLROOM_VAR`` in the entry's resolved ``environ``), created if needed
    and proven writable; SettingsError with one line naming it otherwise (a read-only or
    foreign directory)."""
    var = var_path(environ)
    probe = var / f".write-test-{os.getpid()}"
    try:
        var.mkdir(mode=0o755, parents=True, exist_ok=True)  # see var_dir
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SettingsError(
            f"{var}: runtime state directory is not writable ({exc.strerror or exc}); "
            "set CONTROLROOM_VAR to a writable directory"
        ) from None
    return var


@dataclass(frozen=True)
class Shard:
    """Replica ``index`` of ``count`` (1-based, as written on the command line: ``2/3``).

    An asset belongs to exactly one replica, chosen by its telemetry bucket (a stable hash of
    its id), so per-asset window state is never split; the broker routes by topic, which works
    on any broker (no ``$share`` needed)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        i, sep, n = text.partition("/")
        try:
            shard = cls(int(i), int(n))
        except ValueError:
            raise SettingsError(f"shard {text!r}: expected i/N, e.g. 1/2") from None
        if not sep or not 1 <= shard.index <= shard.count:
            raise SettingsError(f"shard {text!r}: need 1 <= i <= N")
        return shard

    def owns(self, asset: str) -> bool:
        """Through the asset's telemetry bucket, so what a replica subscribes to
        (``engine.bus.routing``) and what it owns are the same set."""
        return owns(self.index, self.count, asset)

    @property
    def suffix(self) -> str:
        return "" if self.count == 1 else f"-{self.index}of{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Settings:
    """Everything a service process needs to know, resolved once at start."""

    service: str
    host: str = "127.0.0.1"
    port: int = 0
    broker_url: str | None = field(default=None, repr=False)
    """May carry a password: kept out of ``repr``. None: ``mqtt://127.0.0.1:1883`` for a single
    service (``up`` passes its broker)."""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    shard: Shard = field(default_factory=lambda: Shard(1, 1))
    log_level: str = "info"
    client_prefix: str = "controlroom"
    """MQTT client ids are ``{client_prefix}-{instance}``: stable, so a restarted service resumes
    its persistent session. Two stacks sharing one broker need different prefixes."""
    restarts: int = 0
    """How many times ``controlroom up`` restarted this service after a crash (it says so)."""
    # telemetry routing (engine.bus.routing)
    legacy_topics: bool = True
    """Also read telemetry on the old one-level layout ``telemetry/{asset}`` (a migration from
    publishers that predate buckets). Costs nothing while nobody publishes there; switch it off
    (``CONTROLROOM_TELEMETRY_LEGACY=0``) once the old layout is gone."""
    share_group: str | None = None
    """Take telemetry through ``$share/{group}/telemetry/#`` instead of bucket filters: only
    for a broker whose shared subscriptions keep each topic on one member (EMQX
    ``hash_topic``); never on Mosquitto (round robin splits every asset's stream)."""
    # bounds
    deadletter_max_bytes: int = 16 * 1024 * 1024
    """Dead-letter file size before rotation (3 rotated files are kept)."""
    inbox_max_bytes: int = 16 * 1024 * 1024
    """Telemetry waiting for the bus dispatcher beyond this is dropped and counted
    (``engine.bus.client.INBOX_LIMIT_BYTES``): what a service that fell behind may hold."""
    max_body_bytes: int = 1024 * 1024
    """Largest HTTP request body any service accepts (413 beyond)."""
    max_assets: int = 4096
    """Assets a monitor/diagnosis replica keeps state for; new ones beyond are refused."""
    asset_idle_s: float = 3600.0
    """An asset silent this long (wall clock) is evicted to make room for a new one."""
    # simulator
    scenario: str | None = None
    hold: bool = False
    """Load ``scenario`` but play it only on ``POST /scenario/start``: a stack starts the
    simulator beside the consumers and starts the play once they are subscribed."""
    speed: float = 1.0
    rate_hz: float = 1.0
    assets: int = 1
    seed: int | None = None
    sim_max_assets: int = 10_000
    """Most pumps one simulator plays (``--assets``, ``POST /scenario/load``): 422 beyond."""
    telemetry_batch: int = 0
    """0: one message per sample (``telemetry/{bucket}/{asset}``). N: each tick's samples go
    out as TelemetryBatch messages of up to N samples per bucket
    (``telemetry/{bucket}/batch/{instance}``), Sparkplug-style — a fraction of the per-message
    cost for the broker and every subscriber."""
    telemetry_log_every: int = 1
    """Write every Nth sample of each asset to the simulator's JSONL log (1: all, which
    ``controlroom report`` needs for exact scoring; 0: none — a large fleet's log otherwise
    grows by ~0.5 KB per sample)."""
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The environment the settings were read from (service-specific extras, e.g. GitHub)."""
    var: Path = field(kw_only=True)
    """Runtime state (``CONTROLROOM_VAR``): logs, run files, dead letters, store, tuning.
    Required: a service never looks the directory up in the process environment itself."""
    credentials: Path | None = field(default=None, kw_only=True)
    """The broker credentials file (``CONTROLROOM_BROKER_CREDENTIALS`` or
    ``var/broker/credentials.json``); None: connect without (tests on an open broker)."""

    @property
    def instance(self) -> str:
        """Name used for the client id, log and dead-letter files: ``monitor-2of3``."""
        return f"{self.service}{self.shard.suffix}"

    def with_overrides(self, **changes: Any) -> Settings:
        """These settings with the command-line flags that were given (None: not given)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str]) -> Settings:
        """The settings of ``service`` from ``environ`` (the entry's resolved environment over
        ``.env``). SettingsError naming the variable on a bad value."""
        if service not in SERVICE_NAMES:
            raise SettingsError(f"unknown service {service!r} (one of {', '.join(SERVICE_NAMES)})")
        return cls.of(service, Config.load(environ), environ)

    @classmethod
    def of(cls, service: str, config: Config, env: Mapping[str, str]) -> Settings:
        """``config`` narrowed to ``service``; ``env`` is kept for the service-specific extras
        (the GitHub or Salesforce mirror)."""
        return cls(
            service=service,
            host=config.host,
            port=config.port(service),
            broker_url=config.broker,
            ca_file=config.broker_ca_file,
            cert_file=config.broker_cert_file,
            key_file=config.broker_key_file,
            insecure=config.broker_insecure,
            shard=Shard.parse(config.shard) if config.shard else Shard(1, 1),
            log_level=config.log_level,
            client_prefix=config.client_prefix,
            scenario=config.scenario,
            speed=config.speed,
            rate_hz=config.rate_hz,
            assets=config.assets,
            seed=config.seed,
            hold=config.simulator_hold,
            sim_max_assets=config.sim_max_assets,
            telemetry_batch=config.telemetry_batch,
            telemetry_log_every=config.telemetry_log_every,
            restarts=config.restarts,
            legacy_topics=config.telemetry_legacy,
            share_group=config.share_group,
            deadletter_max_bytes=config.deadletter_max_bytes,
            inbox_max_bytes=config.inbox_max_bytes,
            max_body_bytes=config.max_body_bytes,
            max_assets=config.max_assets,
            asset_idle_s=config.asset_idle_s,
            env=dict(env),
            var=config.var,
            credentials=config.broker_credentials or default_credentials(config.var),
        )
