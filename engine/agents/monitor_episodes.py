"""Episodes: what the operator sees. One alert per anomaly episode, whose severity follows the
deviation, and which ends.

- A channel turning on joins the asset's active episode if that was raised less than ``join``
  samples ago, if the channel is already part of it, or if it shares a fault family with the
  channels that raised it (a worsening bearing lights vibration, then temperature and power over
  hours: one alarm); otherwise it opens a new episode — one "active" AlertEvent, revision 0.
- Severity follows the episode's largest current score (1 = threshold; bands in
  ``MonitorConfig.severity_bands``) and is CRITICAL once a signal is past its engineering limit.
  It only rises within an episode; each rise, held for ``persist`` samples, is published as a
  new revision of the same alert (contract C1).
- The episode clears when none of its channels is on: one "cleared" AlertEvent, same id, last
  revision. Its channels then wait ``holdoff`` samples before they can raise again (a chattering
  channel makes one alarm, not many).
- A new run (``Monitor`` decides) clears every open episode with ``clear_reason="new_run"``.

Alert ids are ``{asset}-A{n:04d}-{tag}``: readable, and unguessable from outside — the tag is a
keyed hash (BLAKE2b) of the asset, its run and n under the monitor's secret key (random per
process live; derived from the replay's seed in replay, so a replay is reproducible).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.agents.monitor_bank import DETECTOR_NAMES, LEVEL, LIMIT, NOISE, STUCK, DetectorBank
from engine.schemas import SEVERITIES, AlertEvent, SignalEvidence, WindowStats

MAX_EVIDENCE = 32


@dataclass
class Episode:
    alert_id: str
    onset_ts: float
    raised_k: int
    channels: set[int]
    founders: frozenset[int]
    severity: int
    score: float
    detector: str
    revision: int = 0
    candidate: int = -1
    candidate_n: int = 0


@dataclass
class AssetEpisodes:
    """Episode state of one asset (Python: touched only when a channel changes or an episode is
    open)."""

    asset: str
    row: int
    key: bytes
    run: int = 0
    counter: int = 0
    shelved_until: dict[int, int] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    episodes: list[Episode] = field(default_factory=list)

    def new_id(self) -> str:
        self.counter += 1
        msg = f"{self.asset}|{self.run}|{self.counter}".encode()
        tag = hashlib.blake2b(msg, key=self.key, digest_size=6).hexdigest()
        return f"{self.asset}-A{self.counter:04d}-{tag}"


def severity_of(score: float, bands: tuple[float, float, float]) -> int:
    """0 low, 1 medium, 2 high, 3 critical."""
    return sum(score >= b for b in bands)


class EpisodeTracker:
    """Turns one bank row's channel states into alerts. ``evidence`` describes channels.

    Per row it keeps, in arrays, what ``due`` needs to tell at once for a whole tick which rows
    can change anything: the channels on at the row's last update, the lowest severity of its
    open episodes, and whether it is settled (nothing pending, no escalation being confirmed,
    no episode raised at the last update)."""

    def __init__(self, bank: DetectorBank, describe: Any) -> None:
        self.bank = bank
        self.describe = describe
        """``describe(row, channel, detector) -> (value, baseline_mean, baseline_std, direction)``
        from the model that owns the channels."""
        self.names = bank.layout.names
        self.families = bank.layout.families
        self.limit0 = bank.R + bank.S
        self.bands = np.array(bank.cfg.severity_bands, dtype=np.float64)
        self.prev_on = np.zeros((0, bank.H), dtype=bool)
        self.floor = np.zeros(0, dtype=np.int64)
        self.settled = np.zeros(0, dtype=bool)
        self.grow(bank.cap)

    def grow(self, cap: int) -> None:
        n = len(self.floor)
        if cap <= n:
            return
        prev_on = np.zeros((cap, self.bank.H), dtype=bool)
        prev_on[:n] = self.prev_on
        floor = np.full(cap, 3, dtype=np.int64)
        floor[:n] = self.floor
        settled = np.ones(cap, dtype=bool)
        settled[:n] = self.settled
        self.prev_on, self.floor, self.settled = prev_on, floor, settled

    def reset_row(self, i: int) -> None:
        self.prev_on[i] = False
        self.floor[i] = 3
        self.settled[i] = True

    def due(self, rows: list[int]) -> list[int]:
        """The rows (of those with a channel on or over) whose ``update`` could do anything.
        A row is skipped only when ``update`` would provably be a no-op: its channels are as
        at its last update (so nothing starts, joins or clears), it is settled, and no channel
        outside the limits scores past the band of its least severe episode (so nothing
        escalates; a limit channel on in an episode has already made it critical)."""
        bank = self.bank
        idx = np.array(rows, dtype=np.int64)
        same = (bank.on[idx] == self.prev_on[idx]).all(axis=1)
        top = np.fmax.reduce(bank.score[idx, : self.limit0], axis=1)
        sev = (top[:, None] >= self.bands).sum(axis=1)
        skip = same & self.settled[idx] & (sev <= self.floor[idx])
        if not skip.any():
            return rows
        out: list[int] = idx[~skip].tolist()
        return out

    def update(self, st: AssetEpisodes, ts: float) -> list[AlertEvent]:
        bank = self.bank
        i = st.row
        on = bank.on[i]
        k = int(bank.k[i])
        prev = self.prev_on[i]
        turn_on = (on & ~prev).nonzero()[0].tolist()
        prev[:] = on
        out: list[AlertEvent] = []
        starting: list[int] = []
        for c in turn_on:
            if k < st.shelved_until.get(c, -1):
                st.pending.add(c)
            else:
                starting.append(c)
        for c in list(st.pending):
            if not on[c]:
                st.pending.discard(c)
            elif k >= st.shelved_until.get(c, -1):
                st.pending.discard(c)
                starting.append(c)
        fresh: list[int] = []
        for c in starting:
            ep = next((e for e in reversed(st.episodes) if self._joins(c, e, k)), None)
            if ep is not None:
                ep.channels.add(c)
            else:
                fresh.append(c)
        score = bank.score[i]
        if fresh:
            over = bank.over[i]
            onset_k = min(k - int(over[c]) for c in fresh)
            onset = max(0.0, ts - (k - onset_k - 1) * bank.sz.dt)
            top = max(fresh, key=lambda c: score[c])
            ep = Episode(
                alert_id=st.new_id(),
                onset_ts=onset,
                raised_k=k,
                channels=set(fresh),
                founders=frozenset(fresh),
                severity=self._severity(i, fresh),
                score=round(float(score[top]), 3),
                detector=self._detector(i, top),
            )
            st.episodes.append(ep)
            out.append(self._alert(st, ep, "active", ts, fresh))
        settled = not st.pending
        for ep in list(st.episodes):
            if not any(on[c] for c in ep.channels):
                st.episodes.remove(ep)
                for c in ep.channels:
                    st.shelved_until[c] = k + bank.sz.holdoff
                ep.revision += 1
                out.append(self._alert(st, ep, "cleared", ts, sorted(ep.channels)))
                continue
            if ep.revision == 0 and out and out[-1].alert_id == ep.alert_id:
                settled = False
                continue  # raised this very sample
            self._escalate(st, ep, ts, out)
            settled = settled and ep.candidate_n == 0
        self.settled[i] = settled
        self.floor[i] = min((ep.severity for ep in st.episodes), default=3)
        return out

    def end_run(self, st: AssetEpisodes, ts: float) -> list[AlertEvent]:
        """Every open episode ends (the asset started a new run)."""
        out = []
        for ep in st.episodes:
            ep.revision += 1
            out.append(self._alert(st, ep, "cleared", ts, sorted(ep.channels), reason="new_run"))
        st.episodes = []
        st.pending = set()
        st.shelved_until = {}
        self.reset_row(st.row)
        return out

    # ------------------------------------------------------------------ internals

    def _joins(self, c: int, ep: Episode, k: int) -> bool:
        if c in ep.channels or k - ep.raised_k < self.bank.sz.join:
            return True
        fam = self.families[c]
        return bool(fam) and any(fam & self.families[o] for o in ep.founders)

    def _severity(self, i: int, channels: Any) -> int:
        bank = self.bank
        on = bank.on[i]
        best = 0.0
        for c in channels:
            if c >= self.limit0:
                if on[c]:
                    return 3
                continue
            best = max(best, float(bank.score[i, c]))
        return severity_of(best, bank.cfg.severity_bands)

    def _escalate(self, st: AssetEpisodes, ep: Episode, ts: float, out: list[AlertEvent]) -> None:
        i = st.row
        on = self.bank.on[i]
        # A limit channel that turns on joins its signal's episode at once.
        for c in range(self.limit0, len(self.names)):
            if on[c] and c not in ep.channels and self._joins(c, ep, int(self.bank.k[i])):
                ep.channels.add(c)
        sev = self._severity(i, ep.channels)
        if sev <= ep.severity:
            ep.candidate, ep.candidate_n = -1, 0
            return
        ep.candidate = sev if ep.candidate_n == 0 else min(ep.candidate, sev)
        ep.candidate_n += 1
        at_limit = sev == 3 and self._limit_on(i, ep)
        if ep.candidate_n >= self.bank.sz.persist or at_limit:
            ep.severity = 3 if at_limit else ep.candidate
            ep.candidate, ep.candidate_n = -1, 0
            ep.revision += 1
            ep.score = round(max(float(self.bank.score[i, c]) for c in ep.channels), 3)
            out.append(self._alert(st, ep, "active", ts, sorted(ep.channels)))

    def _limit_on(self, i: int, ep: Episode) -> bool:
        on = self.bank.on[i]
        return any(c >= self.limit0 and on[c] for c in ep.channels)

    def _detector(self, i: int, c: int) -> str:
        d = int(self.bank.det[i, c])
        if d == LEVEL:
            return str(self.describe.level_detector)
        return DETECTOR_NAMES[d]

    def _alert(
        self,
        st: AssetEpisodes,
        ep: Episode,
        status: str,
        ts: float,
        channels: list[int],
        *,
        reason: str | None = None,
    ) -> AlertEvent:
        bank = self.bank
        i = st.row
        score = bank.score[i]
        order = sorted(channels, key=lambda c: -float(score[c]))
        evidence = []
        seen: set[str] = set()
        for c in order:
            det = int(bank.det[i, c])
            value, base_mean, base_sd, direction = self.describe(i, c, det)
            name = self.names[c]
            key = f"{name}/{det}"
            if key in seen:
                continue
            seen.add(key)
            evidence.append(
                SignalEvidence(
                    signal=name,
                    value=_f(value),
                    baseline_mean=_f(base_mean),
                    baseline_std=_f(base_sd),
                    score=_f(score[c]),
                    detector=self._detector(i, c),
                    direction=direction,
                    windows=self._window_stats(i, c),
                )
            )
        names: list[str] = []
        for c in order if status == "active" else sorted(ep.channels, key=lambda c: -score[c]):
            if self.names[c] not in names:
                names.append(self.names[c])
        return AlertEvent(
            alert_id=ep.alert_id,
            asset=st.asset,
            revision=ep.revision,
            status=status,
            ts=ts,
            onset_ts=min(ep.onset_ts, ts),
            cleared_ts=ts if status == "cleared" else None,
            clear_reason=(reason or "normal") if status == "cleared" else None,
            severity=SEVERITIES[ep.severity],
            score=ep.score,
            signals=names,
            evidence=evidence[:MAX_EVIDENCE],
            detector=ep.detector,
        )

    def _window_stats(self, i: int, c: int) -> list[WindowStats]:
        bank = self.bank
        col = c if c < bank.C else bank.R + int(bank.lim_idx[c - bank.C])
        out = []
        for sec, n in zip((60.0, 120.0), bank.sz.evidence, strict=True):
            y = bank.last(i, n)[:, col]
            n = len(y)
            if n == 0:
                continue
            t = np.arange(n) * bank.sz.dt
            tc = t - t.mean()
            denom = float((tc * tc).sum())
            slope = float((tc * (y - y.mean())).sum() / denom) if denom > 0 else 0.0
            out.append(
                WindowStats(
                    seconds=sec,
                    n=int(n),
                    mean=_f(y.mean()),
                    std=_f(y.std()),
                    slope=_f(slope),
                    diff=_f(y[-1] - y[0]),
                )
            )
        return out


def _f(v: Any) -> float:
    v = float(v)
    return round(v, 6) if math.isfinite(v) else 0.0


__all__ = [
    "LEVEL",
    "LIMIT",
    "NOISE",
    "STUCK",
    "AssetEpisodes",
    "Episode",
    "EpisodeTracker",
    "severity_of",
]
