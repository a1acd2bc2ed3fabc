"""What comes in before any detector sees it: runs, order, and values.

- **A new run is a new run.** When an asset's ``seq`` goes back by more than ``REORDER``, its
  simulated clock goes back by more than ``REORDER`` samples, or its ``scenario`` changes, the
  asset starts over: its open episodes clear (``clear_reason="new_run"``), everything it learned
  is dropped and it learns again from the new run's warm-up (another scenario may be another
  pump). Logged as a ``Rejection`` of kind ``new_run`` (informational).
- **A jump must be confirmed** before it is believed: a sample far back (a new run), more than
  ``JUMP`` steps ahead (a gap), or of another scenario is rejected as ``jump`` until
  ``CONFIRM`` samples in a row continue it. Otherwise one stale, replayed or corrupt sample — a
  QoS 1 redelivery from an hour ago, ``seq + 10**6`` — would start the asset over (clearing
  its alerts and blinding it for a warm-up), and a few of them would keep it blind for good.
  A real new run or outage costs ``CONFIRM - 1`` samples.
- **Late and duplicate samples are dropped and counted**: the same (seq, ts) again is a
  duplicate; a sample a few steps behind the last one (a reorder) is late. Neither enters a
  window (a swapped pair would otherwise look like noise, then like a step).
- **Signals that start late** (not in the asset's first samples): while the asset is still
  learning, its warm-up starts over with them, so a channel that starts late is learned, not
  ignored. Once it detects, each such signal is reported once (kind ``signal``, counted) and
  not watched until the asset's next run: relearning a new layout would blind every detector
  for a warm-up, and no input may do that. At most ``MAX_SIGNALS`` signals per asset.
- **Values past what the stream can produce** (after the warm-up: farther from the warm-up's
  median than ``VALUE_SPAN`` × the larger of its warm-up range and its median's magnitude — a
  stop or a fault stays far inside; 1e50 does not) are treated as missing for that
  sample, counted and reported — they never enter a window, a sum or a baseline. Values past the
  schema's bounds (|v| > 1e12, a pump instrument outside its plausible range, NaN) never get
  this far: the schema rejects the message.
- **The warm-up is screened too** (``warmup_outliers``): before the model and the limits are
  fitted, a warm-up row with a value farther from the warm-up's median than ``VALUE_SPAN`` × a
  *robust* spread (the 5–95 % quantile range, or the median's magnitude if larger) is dropped
  and rejected as ``value``; the warm-up goes on until it has enough clean rows. Without this
  one 1e6 sent during warm-up would stretch the learned range (and the baselines) so far that
  no later fault could alarm.

The monitor stays pure: it returns nothing for these, and keeps ``Rejection`` records (bounded)
that its service drains with ``Monitor.take_rejections()`` to dead-letter or count them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

REORDER = 16
"""A sample at most this many steps behind the last is late; farther back is a new run."""
JUMP = 1000
"""A sample more than this many steps ahead of the last (in seq or in time) is a jump."""
CONFIRM = 3
"""Samples in a row that must continue a jump before it is believed (see above)."""
VALUE_SPAN = 100.0
"""Learned value limits: the warm-up median ± this many times max(warm-up range, |median|)."""
MAX_SIGNALS = 256
"""Signals one asset may have (the schema's limit per message); more are reported, not used."""
MAX_REJECTIONS = 10_000
"""Rejection records kept until drained (counting goes on beyond)."""

WARMUP_QUANTILES = (0.05, 0.95)
"""The warm-up spread that screens its own rows: robust to a few percent of absurd rows."""

RejectionKind = Literal["duplicate", "late", "jump", "value", "new_run", "asset_cap", "signal"]
Verdict = Literal["ok", "duplicate", "late", "jump", "new_run"]


@dataclass(frozen=True)
class Rejection:
    """Something the monitor did not feed to its detectors, with why (one line)."""

    kind: RejectionKind
    asset: str
    msg_id: str
    seq: int
    ts: float
    reason: str


@dataclass(slots=True)
class RunState:
    """Order bookkeeping of one asset."""

    last_seq: int
    last_ts: float
    scenario: str | None
    dt: float = 1.0
    run: int = 0
    dt_known: bool = False
    """``dt`` is learnt from the second sample; until then time may step ahead any amount."""
    pending: tuple[int, float, str | None, int] | None = None
    """The unconfirmed jump: its latest (seq, ts, scenario) and how many samples continue it."""

    def classify(self, seq: int, ts: float, scenario: str | None) -> Verdict:
        """ "ok", "duplicate", "late", "jump" (not believed yet) or "new_run" (a confirmed
        jump back or to another scenario); the state follows "ok"."""
        if self.advance(seq, ts, scenario):
            return "ok"
        same = scenario is None or self.scenario is None or scenario == self.scenario
        reorder_s = REORDER * self.dt
        if same:
            if seq == self.last_seq and ts == self.last_ts:
                return "duplicate"
            near = seq >= self.last_seq - REORDER and ts >= self.last_ts - reorder_s
            if near and (seq <= self.last_seq or ts <= self.last_ts):
                return "late"
        p = self.pending
        follows = (
            p is not None
            and (scenario is None or p[2] is None or scenario == p[2])
            and 0 < seq - p[0] <= REORDER
            and 0 < ts - p[1] <= (reorder_s if self.dt_known else float("inf"))
        )
        n = p[3] + 1 if follows and p is not None else 1
        if n < CONFIRM:
            self.pending = (seq, ts, scenario, n)
            return "jump"
        if not same or seq < self.last_seq or ts < self.last_ts:
            return "new_run"  # the caller starts the asset over from this sample
        self._accept(seq, ts, scenario)  # a gap (an outage) confirmed: go on from here
        return "ok"

    def advance(self, seq: int, ts: float, scenario: str | None) -> bool:
        """The common case of ``classify``, on its own so a batch checks it cheaply: the next
        sample of the same run (ahead in seq and time, by no more than a jump) is accepted
        (True); anything else changes nothing (False) and goes through ``classify``."""
        if (
            self.last_seq < seq <= self.last_seq + JUMP
            and ts > self.last_ts
            and (scenario is None or self.scenario is None or scenario == self.scenario)
            and (not self.dt_known or ts - self.last_ts <= JUMP * self.dt)
        ):
            self.last_seq, self.last_ts = seq, ts  # as _accept, inline: once per sample
            self.pending = None
            if scenario is not None:
                self.scenario = scenario
            return True
        return False

    def _accept(self, seq: int, ts: float, scenario: str | None) -> None:
        self.last_seq, self.last_ts = seq, ts
        self.pending = None
        if scenario is not None:
            self.scenario = scenario


def warmup_outliers(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For warm-up rows ``raw`` (n, S): the mask of rows with any value past the robust
    limits, and those limits (lo, hi per signal)."""
    med = np.median(raw, axis=0)
    q_lo, q_hi = np.quantile(raw, WARMUP_QUANTILES, axis=0)
    span = np.maximum(q_hi - q_lo, np.abs(med))
    span = np.where(span > 0, span, 1.0)
    lo, hi = med - VALUE_SPAN * span, med + VALUE_SPAN * span
    return ((raw < lo) | (raw > hi)).any(axis=1), lo, hi
