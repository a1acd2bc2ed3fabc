"""Routing by the broker: which telemetry topics a replica subscribes to.

A monitor or diagnosis replica owns a fixed subset of the assets (``--shard i/N``), so an
asset's windows are never split. Telemetry topics carry the asset's bucket
(``telemetry/{bucket}/{asset}``, ``engine.schemas.telemetry_bucket``), and replica ``i`` of
``N`` owns bucket ``b`` when ``b % N == i - 1``; it subscribes to its buckets only
(``telemetry/{b}/+`` and ``telemetry/{b}/batch/+``). The broker then delivers each replica its
own traffic and nothing else: plain topic filters, which every MQTT broker has (Mosquitto, EMQX,
HiveMQ, VerneMQ, amqtt), nothing broker-specific.

Two other layouts, both optional:

- **The old layout** ``telemetry/{asset}`` (before buckets): during a migration, while some
  publisher still uses it, replicas also subscribe to ``telemetry/+`` and drop other replicas'
  assets by topic before decoding (``not_mine``) — the old cost, paid only for old-layout
  traffic, and nothing at all once no one publishes there. ``legacy=False`` ends it.
- **Shared subscriptions** (``$share/{group}/telemetry/#``): the broker picks the member for
  each message. Only safe with a broker whose shared-subscription strategy keeps one topic on
  one member — EMQX's ``hash_topic`` (or ``sticky`` with stable members) — because a per-message
  round robin splits every asset's stream across replicas. Mosquitto 2 has round robin only
  (no hash or sticky policy), so it must not be used there; buckets work everywhere. With
  ``$share`` the broker, not ``--shard``, decides ownership, and a member joining or leaving
  moves assets between replicas (their windows learn again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.schemas import BATCH_LEVEL, TELEMETRY_BUCKETS, bucket_level, telemetry_bucket

LEGACY_TELEMETRY = "telemetry/+"
"""The old single-level layout, ``telemetry/{asset}``."""
ALL_TELEMETRY = "telemetry/#"
"""Every telemetry message in either layout, single or batch (the TUI, a recorder)."""


def owner(bucket: int, count: int) -> int:
    """The replica (1-based) of ``count`` that owns ``bucket``."""
    return bucket % count + 1


def owns(index: int, count: int, asset: str) -> bool:
    """Whether replica ``index`` of ``count`` owns ``asset`` (through its bucket)."""
    return owner(telemetry_bucket(asset), count) == index


def buckets_of(index: int, count: int) -> list[int]:
    """The buckets replica ``index`` of ``count`` owns."""
    if not 1 <= index <= count:
        raise ValueError(f"replica {index} of {count}: need 1 <= i <= N")
    if count > TELEMETRY_BUCKETS:
        raise ValueError(
            f"{count} replicas: telemetry has {TELEMETRY_BUCKETS} buckets, so at most "
            f"{TELEMETRY_BUCKETS} replicas can split it (scale past that with a cluster)"
        )
    return [b for b in range(TELEMETRY_BUCKETS) if owner(b, count) == index]


@dataclass(frozen=True)
class TelemetryRoute:
    """How one replica takes its telemetry: the filters it subscribes to, and the asset check
    for what those filters cannot separate (the old layout)."""

    filters: tuple[str, ...]
    accept: Callable[[str], bool] | None
    """For ``BusClient(accept=...)``: None when every message the filters bring is this
    replica's (no old layout, or a single replica)."""


def telemetry_route(
    index: int = 1, count: int = 1, *, legacy: bool = True, share_group: str | None = None
) -> TelemetryRoute:
    """The subscriptions of replica ``index`` of ``count``.

    One replica: ``telemetry/#`` (everything). Several: ``telemetry/{b}/+`` and
    ``telemetry/{b}/batch/+`` per owned bucket, plus ``telemetry/+`` when ``legacy``, and an
    ownership check on every sample (free for bucketed topics, which only bring this replica's
    assets; it is what separates the old layout's). With ``share_group``: one shared
    subscription for the whole service (see the module docstring for when that is safe) and no
    check — the broker decides."""
    if share_group is not None:
        if not share_group or any(c in share_group for c in "/+#"):
            raise ValueError(f"share group {share_group!r}: one topic level, no wildcards")
        return TelemetryRoute((f"$share/{share_group}/{ALL_TELEMETRY}",), None)
    if count == 1:
        if legacy:
            return TelemetryRoute((ALL_TELEMETRY,), None)
        return TelemetryRoute(("telemetry/+/+", f"telemetry/+/{BATCH_LEVEL}/+"), None)
    filters = tuple(
        f
        for b in buckets_of(index, count)
        for f in (f"telemetry/{bucket_level(b)}/+", f"telemetry/{bucket_level(b)}/{BATCH_LEVEL}/+")
    )

    def accept(asset: str) -> bool:
        return owns(index, count, asset)

    return TelemetryRoute((*filters, LEGACY_TELEMETRY) if legacy else filters, accept)
