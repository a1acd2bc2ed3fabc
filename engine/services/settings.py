"""Service configuration: environment variables, optionally from a ``.env`` file.

Precedence: command-line flags > process environment > ``.env`` > defaults. The ``.env`` file is
found and read by ``engine.env_file``; every variable is documented in ``.env.example``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.bus.routing import owns
from engine.env_file import SettingsError, load_env_file
from engine.paths import ROOT
from engine.schemas import MAX_BATCH_SAMPLES

SERVICE_NAMES = ("simulator", "monitor", "diagnosis", "ticket", "review")
DEFAULT_PORTS: dict[str, int] = {
    "simulator": 8101,
    "monitor": 8102,
    "diagnosis": 8103,
    "ticket": 8104,
    "review": 8105,
}


def ensure_writable_var(path: Path | None = None) -> Path:
    """``var/`` (``CONTROLROOM_VAR``), created if needed and proven writable; SettingsError
    with one line naming it otherwise (a read-only or foreign directory)."""
    raw = os.environ.get("CONTROLROOM_VAR")
    var = path or (Path(raw) if raw else ROOT / "var")
    probe = var / f".write-test-{os.getpid()}"
    try:
        var.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SettingsError(
            f"{var}: runtime state directory is not writable ({exc.strerror or exc}); "
            "set CONTROLROOM_VAR to a writable directory"
        ) from None
    return var


def port_env(name: str) -> str:
    return f"CONTROLROOM_{name.upper()}_PORT"


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


def _float(environ: Mapping[str, str], key: str, default: float) -> float:
    raw = environ.get(key)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r}: expected a number") from None


def _int(environ: Mapping[str, str], key: str, default: int) -> int:
    raw = environ.get(key)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r}: expected an integer") from None


def _bool(environ: Mapping[str, str], key: str) -> bool:
    return environ.get(key, "").strip().lower() in ("1", "true", "yes", "on")


def _share_group(raw: str | None) -> str | None:
    if raw is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,40}", raw):
        raise SettingsError(
            f"CONTROLROOM_SHARE_GROUP={raw!r}: 1-40 letters, digits, '_', '.' or '-'"
        )
    return raw


def _client_prefix(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,40}", raw):
        raise SettingsError(
            f"CONTROLROOM_CLIENT_PREFIX={raw!r}: 1-40 letters, digits, '_', '.' or '-'"
        )
    return raw


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

    @property
    def instance(self) -> str:
        """Name used for the client id, log and dead-letter files: ``monitor-2of3``."""
        return f"{self.service}{self.shard.suffix}"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> Settings:
        if service not in SERVICE_NAMES:
            raise SettingsError(f"unknown service {service!r} (one of {', '.join(SERVICE_NAMES)})")
        if environ is None:
            load_env_file()
            environ = os.environ
        seed = environ.get("CONTROLROOM_SEED")
        shard = environ.get("CONTROLROOM_SHARD")
        speed = _float(environ, "CONTROLROOM_SPEED", 1.0)
        rate = _float(environ, "CONTROLROOM_RATE_HZ", 1.0)
        assets = _int(environ, "CONTROLROOM_ASSETS", 1)
        if speed <= 0 or rate <= 0 or assets < 1:
            raise SettingsError(
                "CONTROLROOM_SPEED and CONTROLROOM_RATE_HZ must be > 0, CONTROLROOM_ASSETS >= 1"
            )
        sim_max = _int(environ, "CONTROLROOM_SIM_MAX_ASSETS", 10_000)
        if sim_max < 1 or assets > sim_max:
            raise SettingsError(
                f"CONTROLROOM_ASSETS={assets}: the simulator plays at most "
                f"CONTROLROOM_SIM_MAX_ASSETS={sim_max} pumps (raise it, it must be >= 1)"
            )
        batch = _int(environ, "CONTROLROOM_TELEMETRY_BATCH", 0)
        log_every = _int(environ, "CONTROLROOM_TELEMETRY_LOG_EVERY", 1)
        if not 0 <= batch <= MAX_BATCH_SAMPLES or log_every < 0:
            raise SettingsError(
                f"CONTROLROOM_TELEMETRY_BATCH must be 0..{MAX_BATCH_SAMPLES} and "
                "CONTROLROOM_TELEMETRY_LOG_EVERY >= 0"
            )
        bounds = {
            "deadletter_max_bytes": _int(environ, "CONTROLROOM_DEADLETTER_MAX_BYTES", 16 << 20),
            "max_body_bytes": _int(environ, "CONTROLROOM_MAX_BODY_BYTES", 1 << 20),
            "max_assets": _int(environ, "CONTROLROOM_MAX_ASSETS", 4096),
            "asset_idle_s": _float(environ, "CONTROLROOM_ASSET_IDLE_S", 3600.0),
        }
        low = [k for k, v in bounds.items() if v <= 0]
        if low:
            raise SettingsError(f"{', '.join(f'CONTROLROOM_{k.upper()}' for k in low)} must be > 0")
        return cls(
            service=service,
            host=environ.get("CONTROLROOM_HOST") or "127.0.0.1",
            port=_int(environ, port_env(service), DEFAULT_PORTS[service]),
            broker_url=environ.get("CONTROLROOM_BROKER") or None,
            ca_file=environ.get("CONTROLROOM_BROKER_CA_FILE") or None,
            cert_file=environ.get("CONTROLROOM_BROKER_CERT_FILE") or None,
            key_file=environ.get("CONTROLROOM_BROKER_KEY_FILE") or None,
            insecure=_bool(environ, "CONTROLROOM_BROKER_INSECURE"),
            shard=Shard.parse(shard) if shard else Shard(1, 1),
            log_level=(environ.get("CONTROLROOM_LOG_LEVEL") or "info").lower(),
            client_prefix=_client_prefix(environ.get("CONTROLROOM_CLIENT_PREFIX") or "controlroom"),
            scenario=environ.get("CONTROLROOM_SCENARIO") or None,
            hold=_bool(environ, "CONTROLROOM_SIMULATOR_HOLD"),
            speed=speed,
            rate_hz=rate,
            assets=assets,
            seed=_int(environ, "CONTROLROOM_SEED", 0) if seed else None,
            sim_max_assets=sim_max,
            telemetry_batch=batch,
            telemetry_log_every=log_every,
            restarts=_int(environ, "CONTROLROOM_RESTARTS", 0),
            legacy_topics=environ.get("CONTROLROOM_TELEMETRY_LEGACY", "1").strip().lower()
            not in ("0", "false", "no", "off"),
            share_group=_share_group(environ.get("CONTROLROOM_SHARE_GROUP") or None),
            deadletter_max_bytes=int(bounds["deadletter_max_bytes"]),
            max_body_bytes=int(bounds["max_body_bytes"]),
            max_assets=int(bounds["max_assets"]),
            asset_idle_s=float(bounds["asset_idle_s"]),
            env=dict(environ),
        )
