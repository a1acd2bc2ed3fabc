"""Agent A — the monitor: telemetry in, one alert per anomaly *episode* out.

Every threshold is in ``MonitorConfig`` (``engine/agents/monitor_config.py``). How it decides,
per asset:

1. **Intake** (``monitor_intake``): a new run starts the asset over; duplicate and late samples
   are dropped; values past what the stream can produce are treated as missing. All counted.
2. **Model of normal** (``monitor_normal``, ``monitor_pump``), learned from the stream's own
   warm-up: a pump's curves and relations (and its manoeuvres afterwards), or for any other
   stream each signal regressed on the others. Its residuals are the level channels.
3. **Detectors** (``monitor_bank``): level (window mean vs baseline, threshold calibrated on the
   warm-up's own scores), noise, stuck, engineering limits; hysteresis per channel.
4. **Episodes** (``monitor_episodes``): one alert per episode, escalating with the deviation
   (revisions of the same alert), cleared when the data is back to normal.

Pure and causal: ``feed(msg) -> list[AlertEvent]`` uses samples ≤ t only, no I/O, no clock,
never reads ``truth``. ``feed_batch(msgs)`` does the same for one tick of many assets at once
(numpy over assets × channels); ``feed`` is a batch of one — one path, the same arithmetic, so
the same alerts (``tests/plant/test_monitor_batch.py`` checks it on a suite and hostile ticks).

Why one module of ~700 lines: ``Monitor`` is the one place where intake, the per-group detector
banks and the episode trackers meet for a wave of samples; split, each half would need the
other's row bookkeeping (which asset sits in which bank row).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy import count_nonzero

from engine.agents.fleet_runs import FleetRuns
from engine.agents.monitor_bank import F64, NOISE, STUCK, DetectorBank, Sizes
from engine.agents.monitor_config import MonitorConfig
from engine.agents.monitor_episodes import AssetEpisodes, EpisodeTracker
from engine.agents.monitor_intake import (
    CONFIRM,
    MAX_REJECTIONS,
    MAX_SIGNALS,
    VALUE_SPAN,
    Rejection,
    RejectionKind,
    RunState,
    warmup_outliers,
)
from engine.agents.monitor_normal import CrossRegression
from engine.agents.monitor_pump import PumpModel
from engine.agents.tuning import threshold_scale
from engine.plant.fleet_tick import FleetTick
from engine.plant.signals import SIGNAL_ORDER, is_pump
from engine.schemas import AlertEvent, Telemetry, Tuning

__all__ = ["Monitor", "MonitorConfig", "Rejection"]

MAX_ASSETS = 20_000
"""Per-asset state is bounded: samples of more assets than this are refused and counted."""
DUE_CHECK_FROM = 4
"""Busy rows from which the tracker's vectorised check (``EpisodeTracker.due``) is cheaper than
updating every one; fewer are updated directly (the check is exact: the same alerts)."""


class _WarmRows:
    """One asset's warm-up rows until its fit, in arrays grown by doubling.

    WHY not a list of row arrays: a 1,000-pump fleet warms up at once, and a list held ~600 B
    per sample (two small ndarrays, an id tuple, its int and float) -- ~360 MB at the end of
    the warm-up, the replay's peak. Here a sample costs its floats plus its msg_id string.
    """

    __slots__ = ("k", "msg_ids", "raw", "rec", "seq", "ts")

    def __init__(self) -> None:
        self.k = 0
        self.rec: F64 = np.empty((0, 0))
        self.raw: F64 = np.empty((0, 0))
        self.ts: F64 = np.empty(0)
        self.msg_ids: list[str] = []
        self.seq: list[int] = []  # not int64: a hostile seq may not fit

    def add(self, rec: F64, raw: F64, stamp: tuple[int, float, str], cap: int) -> None:
        k = self.k
        if k == len(self.ts):
            size = min(max(2 * k, 16), max(cap, k + 1))
            self.rec = _grown(self.rec, size, rec.shape[0])
            self.raw = _grown(self.raw, size, raw.shape[0])
            self.ts = np.resize(self.ts, size)
        seq, ts, msg_id = stamp
        self.rec[k] = rec
        self.raw[k] = raw
        self.seq.append(seq)
        self.ts[k] = ts
        self.msg_ids.append(msg_id)
        self.k = k + 1

    def keep(self, keep: npt.NDArray[np.bool_]) -> None:
        """Drop the rows not kept (screened-out outliers), in order."""
        k = int(count_nonzero(keep))
        self.rec[:k] = self.rec[: self.k][keep]
        self.raw[:k] = self.raw[: self.k][keep]
        self.ts[:k] = self.ts[: self.k][keep]
        kept = keep.tolist()
        self.msg_ids = [m for m, y in zip(self.msg_ids, kept, strict=True) if y]
        self.seq = [q for q, y in zip(self.seq, kept, strict=True) if y]
        self.k = k


def _stamp(msgs: Sequence[Telemetry], r: int) -> tuple[int, float, str]:
    """(seq, ts, msg_id) of message ``r`` (a ``FleetTick`` builds no message for it)."""
    if isinstance(msgs, FleetTick):
        return msgs.stamp(r)
    t = msgs[r]
    return t.seq, t.ts, t.msg_id


@dataclass(slots=True)
class _FleetPlan:
    """A ``FleetTick`` whose every pump took the common path, into one contiguous slice of one
    bank: the next tick of the same pumps goes straight to ``_step`` (``Monitor._fleet``)."""

    runs: FleetRuns
    group: _Group
    lo: int
    perm: list[int] | None
    """The group's signal order as columns of the tick's values (None: ``SIGNAL_ORDER``)."""
    index: dict[str, int]


def _grown(a: F64, rows: int, cols: int) -> F64:
    out: F64 = np.empty((rows, cols))
    if len(a):
        out[: len(a)] = a
    return out


@dataclass
class _Asset:
    """One asset's bookkeeping outside the arrays."""

    name: str
    run: RunState
    names: tuple[str, ...]
    first_ts: float
    group: _Group | None = None
    row: int = -1
    episodes: AssetEpisodes | None = None
    warm: _WarmRows = field(default_factory=_WarmRows)
    """The warm-up's rows with their (msg_id, seq, ts): a row screened out is rejected by name."""
    unwatched: set[str] = field(default_factory=set)
    """Signals that appeared after the warm-up (reported once each, not watched this run)."""


class _Group:
    """A detector bank, its model of normal and the assets (rows) that share its layout."""

    def __init__(self, names: tuple[str, ...], cfg: MonitorConfig, dt: float) -> None:
        self.names = names
        self.index = {n: j for j, n in enumerate(names)}
        self.get: Callable[[dict[str, float]], tuple[float, ...]] = (
            itemgetter(*names) if len(names) > 1 else lambda sig: (sig[names[0]],)
        )
        """A complete sample's values in the group's order (KeyError if one is missing)."""
        self.sz = Sizes(cfg, dt)
        self.cfg = cfg
        self.pump = is_pump(names)
        self.model: CrossRegression | PumpModel = (
            PumpModel(names, self.sz, cfg, 4)
            if self.pump
            else CrossRegression(names, self.sz, 4, cross=cfg.level_model != "per-signal")
        )
        self.bank = DetectorBank(self.model.layout(), cfg, self.sz, 4)
        self.tracker = EpisodeTracker(self.bank, self)
        self.level_detector = self.model.level_detector
        S = len(names)
        self.last = np.zeros((4, S))
        self.lim_lo = np.full((4, S), -np.inf)
        self.lim_hi = np.full((4, S), np.inf)
        self.assets: list[_Asset | None] = []
        self.free: list[int] = []

    def add(self, asset: _Asset) -> int:
        if self.free:
            i = self.free.pop()
        else:
            i = self.bank.add_row()
            cap = self.bank.cap
            self.model.grow(cap)
            self.tracker.grow(cap)
            for name in ("last", "lim_lo", "lim_hi"):
                a = getattr(self, name)
                if a.shape[0] < cap:
                    new = np.full((cap, a.shape[1]), a[0, 0] if name != "last" else 0.0)
                    new[: a.shape[0]] = a
                    setattr(self, name, new)
            self.assets.append(None)
        self.assets[i] = asset
        self.bank.reset_row(i)
        self.model.reset_row(i)
        self.tracker.reset_row(i)
        self.last[i] = 0.0
        self.lim_lo[i] = -np.inf
        self.lim_hi[i] = np.inf
        return i

    def release(self, i: int) -> None:
        self.assets[i] = None
        self.bank.reset_row(i)
        self.model.reset_row(i)
        self.tracker.reset_row(i)
        self.free.append(i)

    # ------------------------------------------------------------------ evidence

    def __call__(self, i: int, c: int, det: int) -> tuple[float, float, float, str]:
        """(value, baseline mean, baseline sd, direction) of hysteresis channel c of row i."""
        bank = self.bank
        R, S = bank.R, bank.S
        wm = bank.window_mean(i)
        if c < R:
            dev = float(wm[c] - bank.base[i, c])
            direction = "up" if dev >= 0 else "down"
            if c < S and isinstance(self.model, CrossRegression):
                return (
                    float(wm[R + c]),
                    float(wm[R + c]) - dev,
                    float(bank.raw_sd[i, c]),
                    direction,
                )
            return float(wm[c]), float(bank.base[i, c]), float(bank.s0[i, c]), direction
        if c < R + S:
            j = c - R
            if det == STUCK:
                return float(bank.last(i, 1)[0, R + j]), float(bank.raw_mean[i, j]), 0.0, "flat"
            if det == NOISE:
                return float(wm[R + j]), float(bank.raw_mean[i, j]), 0.0, "noisy"
        j = int(bank.lim_idx[c - R - S])
        return float(wm[R + j]), float(bank.raw_mean[i, j]), float(bank.raw_sd[i, j]), "up"


class Monitor:
    """Telemetry in, AlertEvents out. Pure and causal; per-asset state in per-layout banks."""

    def __init__(
        self,
        config: MonitorConfig | None = None,
        *,
        id_prefix: str | None = None,
        tuning: Tuning | None = None,
        max_assets: int = MAX_ASSETS,
    ) -> None:
        """``id_prefix``: a seed for the alert-id key (replay: reproducible ids); None = a
        random secret key (live: ids nobody can predict)."""
        self.config = config or MonitorConfig()
        self.tuning = tuning
        seed = id_prefix.encode() if id_prefix is not None else secrets.token_bytes(32)
        self._key = hashlib.blake2b(seed, digest_size=32, person=b"alert-ids").digest()
        self.max_assets = max_assets
        self._assets: dict[str, _Asset] = {}
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self._rejections: list[Rejection] = []
        self._clears: list[AlertEvent] = []
        self._plan: _FleetPlan | None = None
        self.counters: dict[str, int] = {
            "samples": 0,
            "duplicate": 0,
            "late": 0,
            "jump": 0,
            "value": 0,
            "new_run": 0,
            "asset_cap": 0,
            "signal": 0,
        }

    # ------------------------------------------------------------------ public API

    def feed(self, t: Telemetry) -> list[AlertEvent]:
        """One sample: a batch of one (one path, so one asset alone and a fleet decide alike)."""
        return self.feed_batch((t,))

    def feed_batch(self, msgs: Sequence[Telemetry]) -> list[AlertEvent]:
        """One tick of many assets at once (each asset at most once per call is the fast path;
        repeats are processed in order). Alerts come in the order of their asset's message.

        The common case is checked first, in this loop: the next sample of a placed asset with
        exactly its signals (in any order) costs a few comparisons and its values in the
        group's order; anything else goes through ``_intake`` (values None: ``_values`` holds
        what is missing). A ``FleetTick`` of the same pumps as the last one all of whose
        samples took that case goes to its bank at once (``_fleet``: the same decisions)."""
        if isinstance(msgs, FleetTick):
            plan = self._plan
            if plan is not None and plan.runs.advance(msgs):
                return self._fleet(plan, msgs)
        self._plan = None
        split = False
        out: list[AlertEvent] = []
        assets: list[_Asset] = []
        taken: list[Telemetry] = []
        values: list[tuple[float, ...] | None] = []
        seen: set[str] = set()
        ok = 0
        find = self._assets.get
        for t in msgs:
            name = t.asset
            if name in seen:
                split = True
                out += self._wave(assets, taken, values)
                assets, taken, values, seen = [], [], [], set()
            a = find(name)
            vals = None
            if a is not None and a.group is not None and a.run.advance(t.seq, t.ts, t.scenario):
                ok += 1
                sig = t.signals
                if len(sig) == len(a.names):
                    try:  # noqa: SIM105 (suppress() costs a context manager per sample)
                        vals = a.group.get(sig)
                    except KeyError:
                        pass
                if vals is None and tuple(sig) != a.names:
                    self._new_signals(a, t)
            else:
                a = self._intake(t)
                if self._clears:
                    out += self._take_clears()
                if a is None:
                    continue
            assets.append(a)
            taken.append(t)
            values.append(vals)
            seen.add(name)
        self.counters["samples"] += ok
        out += self._wave(assets, taken, values)
        if isinstance(msgs, FleetTick) and not split and ok == len(msgs) == len(assets):
            self._plan = _fleet_plan(msgs, assets, values)
        return out

    def _fleet(self, plan: _FleetPlan, tick: FleetTick) -> list[AlertEvent]:
        """The next tick of a planned fleet (its runs already advanced): ``_wave``'s one-slice
        case, with the value matrix taken from the tick (a copy: the tick's stays as built)."""
        n = len(tick)
        self.counters["samples"] += n
        v = tick.values
        x = np.ascontiguousarray(v[:, plan.perm]) if plan.perm is not None else v.copy()
        out = self._step(plan.group, plan.lo, plan.lo + n, (x, None), tick)
        if len(out) > 1:
            index = plan.index
            out.sort(key=lambda al: index.get(al.asset, 0))
        return out

    def take_rejections(self) -> list[Rejection]:
        """Samples or values the monitor did not use since the last call (bounded)."""
        out, self._rejections = self._rejections, []
        return out

    def forget(self, asset: str) -> list[AlertEvent]:
        """Drop an asset's state (a service evicts long-silent assets to bound its memory);
        its open episodes end as a run does (their clears are returned, to publish)."""
        self._plan = None
        a = self._assets.pop(asset, None)
        if a is None or a.group is None:
            return []
        out = a.group.tracker.end_run(a.episodes, a.run.last_ts) if a.episodes else []
        if a.row >= 0:
            a.group.release(a.row)
        return out

    def apply_tuning(self, tuning: Tuning | None) -> None:
        """Scale thresholds per asset/signal from feedback (bounded; see engine.agents.tuning)."""
        self.tuning = tuning
        for a in self._assets.values():
            if a.group is not None and a.row >= 0:
                a.group.bank.set_tune(a.row, self._tune(a.group, a.name))

    def baseline(self, asset: str) -> dict[str, tuple[float, float]] | None:
        """Learned baseline (level channels: baseline and scale) or None while still learning."""
        a = self._assets.get(asset)
        if a is None or a.group is None or not a.group.bank.ready[a.row]:
            return None
        bank = a.group.bank
        return {
            nm: (float(bank.base[a.row, j]), float(bank.scale[a.row, j]))
            for j, nm in enumerate(bank.layout.level_names)
        }

    def unwatched(self, asset: str) -> list[str]:
        """Signals of the asset that started after its warm-up: not watched this run."""
        a = self._assets.get(asset)
        return sorted(a.unwatched) if a is not None else []

    def active_alerts(self, asset: str | None = None) -> list[str]:
        return [
            e.alert_id
            for name, a in self._assets.items()
            if asset in (None, name) and a.episodes is not None
            for e in a.episodes.episodes
        ]

    # ------------------------------------------------------------------ intake

    def _reject(self, kind: RejectionKind, t: Telemetry, reason: str) -> None:
        self.counters[kind] += 1
        if len(self._rejections) < MAX_REJECTIONS:
            self._rejections.append(Rejection(kind, t.asset, t.msg_id, t.seq, t.ts, reason))

    def _intake(self, t: Telemetry) -> _Asset | None:
        """The asset ready to take this sample, or None (first sample, rejected, ...)."""
        a = self._assets.get(t.asset)
        if a is None:
            if len(self._assets) >= self.max_assets:
                self._reject("asset_cap", t, f"more than {self.max_assets} assets: refused")
                return None
            self._assets[t.asset] = _Asset(
                t.asset, RunState(t.seq, t.ts, t.scenario), tuple(t.signals), t.ts
            )
            return None  # the first sample fixes the channels; the second, the period
        verdict = a.run.classify(t.seq, t.ts, t.scenario)
        if verdict == "duplicate":
            self._reject("duplicate", t, f"duplicate of seq {t.seq} at ts {t.ts:g}")
            return None
        if verdict == "late":
            self._reject("late", t, f"late: seq {t.seq} ts {t.ts:g} after seq {a.run.last_seq}")
            return None
        if verdict == "jump":
            self._reject(
                "jump",
                t,
                f"jump: seq {t.seq} ts {t.ts:g} scenario {t.scenario!r} after seq "
                f"{a.run.last_seq} ts {a.run.last_ts:g}: not believed until {CONFIRM} samples "
                f"in a row continue it",
            )
            return None
        if verdict == "new_run":
            self._new_run(a, t)
            return None
        if a.group is None:
            dt = t.ts - a.first_ts
            a.run.dt = dt if 0.0 < dt <= 3600.0 else 1.0
            a.run.dt_known = True
            if tuple(t.signals) != a.names:
                a.names = self._with_new_signals(a, t)
            self._place(a)
        elif tuple(t.signals) != a.names:
            self._new_signals(a, t)
        self.counters["samples"] += 1
        return a

    def _with_new_signals(self, a: _Asset, t: Telemetry) -> tuple[str, ...]:
        """The asset's signals and the ones this sample adds (in the sample's order, so the
        following complete samples take the fast path), at most ``MAX_SIGNALS``."""
        if all(n in a.names for n in t.signals):
            return a.names
        names = tuple(t.signals) + tuple(n for n in a.names if n not in t.signals)
        return names[:MAX_SIGNALS] if len(names) > MAX_SIGNALS else names

    def _new_signals(self, a: _Asset, t: Telemetry) -> None:
        """A sample carries signals the asset's first samples did not (a channel that starts
        late). Still learning: the warm-up starts over with them. Detecting: each is reported
        once and not watched until the next run (a new layout would blind every detector for
        a warm-up; see ``monitor_intake``)."""
        g = a.group
        assert g is not None
        names = self._with_new_signals(a, t)
        if names == a.names:
            return
        if not g.bank.ready[a.row]:
            held = dict(zip(a.names, g.last[a.row].tolist(), strict=True))
            g.release(a.row)
            a.names, a.warm = names, _WarmRows()
            self._place(a)
            assert a.group is not None
            a.group.last[a.row] = [held.get(n, 0.0) for n in names]
            return
        for n in names:
            if n not in g.index and n not in a.unwatched and len(a.unwatched) < MAX_SIGNALS:
                a.unwatched.add(n)
                self._reject(
                    "signal",
                    t,
                    f"signals.{n}: not among the signals learned in the warm-up "
                    f"({len(a.names)}); not watched until the asset's next run",
                )

    def _place(self, a: _Asset) -> None:
        cfg = self.config
        sz = Sizes(cfg, a.run.dt)
        key = (a.names, sz.key(), round(a.run.dt, 9))
        g = self._groups.get(key)
        if g is None:
            g = self._groups[key] = _Group(a.names, cfg, a.run.dt)
        a.group = g
        a.row = g.add(a)
        a.episodes = AssetEpisodes(a.name, a.row, self._key, run=a.run.run)
        g.bank.set_tune(a.row, self._tune(g, a.name))

    def _new_run(self, a: _Asset, t: Telemetry) -> None:
        self._reject(
            "new_run",
            t,
            f"new run: seq {t.seq} ts {t.ts:g} scenario {t.scenario!r} after seq "
            f"{a.run.last_seq} ts {a.run.last_ts:g} scenario {a.run.scenario!r}",
        )
        out: list[AlertEvent] = []
        if a.group is not None and a.episodes is not None:
            out = a.group.tracker.end_run(a.episodes, t.ts)
            a.group.release(a.row)
        run = a.run.run + 1
        a.group, a.row, a.episodes = None, -1, None
        a.warm, a.unwatched = _WarmRows(), set()
        a.run = RunState(t.seq, t.ts, t.scenario, run=run)
        a.names = tuple(t.signals)
        a.first_ts = t.ts
        self._clears.extend(out)

    def _take_clears(self) -> list[AlertEvent]:
        if not self._clears:
            return []
        out, self._clears = self._clears, []
        return out

    def _tune(self, g: _Group, asset: str) -> F64:
        names = g.bank.layout.names
        return np.array([threshold_scale(self.tuning, asset, nm) for nm in names])

    # ------------------------------------------------------------------ stepping

    def _values(
        self, g: _Group, msgs: list[Telemetry], vals: list[tuple[float, ...] | None], lo: int
    ) -> tuple[F64, Any]:
        """Value matrix (n, S) with missing signals held at their last value, and the mask of
        missing ones (None when every sample is complete). ``vals``: each complete sample's
        values in the group's order, None for the others."""
        if None not in vals:
            return np.array(vals, dtype=np.float64), None
        n = len(msgs)
        S = len(g.names)
        names = g.names
        x = np.empty((n, S))
        missing = None
        for r, t in enumerate(msgs):
            v = vals[r]
            if v is not None:
                x[r] = v
            else:
                sig = t.signals
                if missing is None:
                    missing = np.zeros((n, S), dtype=bool)
                row = g.last[lo + r].copy()
                for j, nm in enumerate(names):
                    got = sig.get(nm)
                    if got is None:
                        missing[r, j] = True
                    else:
                        row[j] = got
                x[r] = row
        return x, missing

    def _step(
        self, g: _Group, lo: int, hi: int, xm: tuple[F64, Any], msgs: Sequence[Telemetry]
    ) -> list[AlertEvent]:
        x, missing = xm
        bank = g.bank
        # Values past what the stream can produce: treated as missing, counted.
        bad = (x < g.lim_lo[lo:hi]) | (x > g.lim_hi[lo:hi])
        if count_nonzero(bad):
            for r, j in zip(*np.nonzero(bad), strict=True):
                t = msgs[int(r)]
                self._reject(
                    "value",
                    t,
                    f"signals.{g.names[int(j)]}: {float(x[r, j])!r} outside the range learned "
                    f"in warm-up ({g.lim_lo[lo + r, j]:.6g}..{g.lim_hi[lo + r, j]:.6g})",
                )
            x = np.where(bad, g.last[lo:hi], x)
            missing = bad if missing is None else (missing | bad)
        g.last[lo:hi] = x
        alarmed = bank.on[lo:hi, : bank.C]
        obs = g.model.observe(lo, hi, x, missing, alarmed)
        if hi - lo > 1:
            busy = bank.step(lo, hi, obs, x, missing)
        else:
            busy = bank.step_one(lo, obs, x, missing)
        # Warm-up: collect rows until the model and the detectors can be fitted.
        warming = ~bank.ready[lo:hi]
        if not bank.ready[lo] if hi - lo == 1 else count_nonzero(warming):
            stamp = msgs.stamp if isinstance(msgs, FleetTick) else partial(_stamp, msgs)
            assets, record, cap = g.assets, obs.record, g.sz.warm
            for r in (warming & obs.warm_ok).nonzero()[0].tolist():
                a = assets[lo + r]
                assert a is not None
                w = a.warm
                w.add(record[r], x[r], stamp(r), cap)
                if w.k >= cap:
                    self._fit(g, a)
        out: list[AlertEvent] = []
        tick_ts = msgs.ts if isinstance(msgs, FleetTick) else None
        for i in g.tracker.due(busy) if len(busy) > DUE_CHECK_FROM else busy:
            a = g.assets[i]
            assert a is not None and a.episodes is not None
            ts = tick_ts if tick_ts is not None else msgs[i - lo].ts
            out += g.tracker.update(a.episodes, ts)
        return out

    def _fit(self, g: _Group, a: _Asset) -> None:
        w = a.warm
        rec = w.rec[: w.k].copy()
        raw = w.raw[: w.k].copy()
        bad, lo, hi = warmup_outliers(raw)
        if bad.any():  # absurd rows never shape a baseline; learn on until enough are clean
            for r in np.flatnonzero(bad):
                msg_id, seq, ts = w.msg_ids[int(r)], w.seq[int(r)], float(w.ts[r])
                j = int(np.flatnonzero((raw[r] < lo) | (raw[r] > hi))[0])
                self.counters["value"] += 1
                if len(self._rejections) < MAX_REJECTIONS:
                    why = (f"signals.{g.names[j]}: {float(raw[r, j])!r} outside the warm-up's "
                           f"robust range ({lo[j]:.6g}..{hi[j]:.6g})")  # fmt: skip
                    self._rejections.append(Rejection("value", a.name, msg_id, seq, ts, why))
            keep = ~bad
            w.keep(keep)
            if w.k < g.sz.warm:
                return
            rec, raw = rec[keep], raw[keep]
        a.warm = _WarmRows()
        level, floors = g.model.fit(a.row, rec)
        g.bank.calibrate(a.row, level, raw, floors, self._tune(g, a.name))
        med = np.median(raw, axis=0)
        span = np.maximum(raw.max(axis=0) - raw.min(axis=0), np.abs(med))
        span = np.where(span > 0, span, 1.0)
        g.lim_lo[a.row] = med - VALUE_SPAN * span
        g.lim_hi[a.row] = med + VALUE_SPAN * span

    def _wave(
        self,
        assets: list[_Asset],
        msgs: list[Telemetry],
        values: list[tuple[float, ...] | None],
    ) -> list[AlertEvent]:
        """Step every (asset, sample) of one wave: grouped by bank, contiguous rows at once
        (a fleet's tick in the order its assets were placed is one slice of one bank)."""
        if len(assets) <= 1:
            if not assets:
                return []
            a = assets[0]
            assert a.group is not None
            xm = self._values(a.group, msgs, values, a.row)
            return self._step(a.group, a.row, a.row + 1, xm, msgs)
        out: list[AlertEvent] = []
        g0 = assets[0].group
        parts: list[tuple[_Group, list[int]]]
        if all(a.group is g0 for a in assets):
            assert g0 is not None
            parts = [(g0, list(range(len(assets))))]
        else:
            by_group: dict[int, tuple[_Group, list[int]]] = {}
            for n, a in enumerate(assets):
                g = a.group
                assert g is not None
                by_group.setdefault(id(g), (g, []))[1].append(n)
            parts = list(by_group.values())
        for g, idx in parts:
            rows = [assets[n].row for n in idx]
            whole = len(idx) == len(assets)  # idx is 0, 1, ... n - 1: the wave's own lists
            if rows != sorted(rows):
                idx = [n for _, n in sorted(zip(rows, idx, strict=True))]
                rows = [assets[n].row for n in idx]
                whole = False
            start = 0
            while start < len(idx):
                end = len(idx)
                if rows[-1] - rows[start] != end - 1 - start:  # not one contiguous slice
                    end = start + 1
                    while end < len(idx) and rows[end] == rows[end - 1] + 1:
                        end += 1
                lo, hi = rows[start], rows[end - 1] + 1
                if whole and start == 0 and end == len(idx):
                    part_msgs, part_vals = msgs, values
                else:
                    part_msgs = [msgs[n] for n in idx[start:end]]
                    part_vals = [values[n] for n in idx[start:end]]
                xm = self._values(g, part_msgs, part_vals, lo)
                out += self._step(g, lo, hi, xm, part_msgs)
                start = end
        if len(out) > 1:
            order = {a.name: n for n, a in enumerate(assets)}
            out.sort(key=lambda al: order.get(al.asset, 0))
        return out


def _fleet_plan(
    tick: FleetTick, assets: list[_Asset], values: list[tuple[float, ...] | None]
) -> _FleetPlan | None:
    """The plan for ``tick``'s pumps if they sit in one contiguous slice of one bank, in the
    tick's order, each with every signal of the fleet's (None otherwise)."""
    g, lo = assets[0].group, assets[0].row
    if g is None or None in values or sorted(g.names) != sorted(SIGNAL_ORDER):
        return None
    if any(a.group is not g or a.row != lo + k for k, a in enumerate(assets)):
        return None
    runs = FleetRuns.of(tick, [a.run for a in assets])
    if runs is None:
        return None
    perm = None if g.names == SIGNAL_ORDER else [SIGNAL_ORDER.index(n) for n in g.names]
    return _FleetPlan(runs, g, lo, perm, {a.name: k for k, a in enumerate(assets)})
