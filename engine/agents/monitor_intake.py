"""What comes in before any detector sees it: runs, order, and values.

- **A new run is a new run.** When an asset's ``seq`` goes back by more than ``REORDER``, its
  simulated clock goes back by more than ``REORDER`` samples, or its ``scenario`` changes, the
  asset starts over: its open episodes clear (``clear_reason="new_run"``), everything it learned
  is dropped and it learns again from the new run's warm-up (another scenario may be another
  pump). Logged as a ``Rejection`` of kind ``new_run`` (informational).
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

The monitor stays pure: it returns nothing for these, and keeps ``Rejection`` records (bounded)
that its service drains with ``Monitor.take_rejections()`` to dead-letter or count them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

REORDER = 16
"""A sample at most this many steps behind the last is late; farther back is a new run."""
VALUE_SPAN = 100.0
"""Learned value limits: the warm-up median ± this many times max(warm-up range, |median|)."""
MAX_SIGNALS = 256
"""Signals one asset may have (the schema's limit per message); more are reported, not used."""
MAX_REJECTIONS = 10_000
"""Rejection records kept until drained (counting goes on beyond)."""

RejectionKind = Literal["duplicate", "late", "value", "new_run", "asset_cap", "signal"]


@dataclass(frozen=True)
class Rejection:
    """Something the monitor did not feed to its detectors, with why (one line)."""

    kind: RejectionKind
    asset: str
    msg_id: str
    seq: int
    ts: float
    reason: str


@dataclass
class RunState:
    """Order bookkeeping of one asset."""

    last_seq: int
    last_ts: float
    scenario: str | None
    dt: float = 1.0
    run: int = 0

    def classify(self, seq: int, ts: float, scenario: str | None) -> str:
        """ "ok", "duplicate", "late" or "new_run" (updates the state for "ok")."""
        if scenario is not None and self.scenario is not None and scenario != self.scenario:
            return "new_run"
        if seq == self.last_seq and ts == self.last_ts:
            return "duplicate"
        if seq < self.last_seq - REORDER or ts < self.last_ts - REORDER * self.dt:
            return "new_run"
        if seq <= self.last_seq or ts <= self.last_ts:
            return "late"
        self.last_seq, self.last_ts = seq, ts
        if scenario is not None:
            self.scenario = scenario
        return "ok"
