"""The diagnosis agent's state as data: what a restarted agent needs to carry on as if it had never
stopped (``DiagnosisAgent.export_state`` / ``restore_state``).

Pure models, no I/O: the diagnosis service persists them where it keeps its durable outbox, and
parses them back with ``DiagnosisState.model_validate_json`` (a corrupt or foreign file fails
there, with the field, and never reaches the agent). Per asset:

- the sample-side state: sampling period, the last reading of every signal (partial samples
  hold them), the model observer (meter/fluid/thermal lags), the steady-running counter, the
  healthy reference (or the warm-up rows gathered towards it);
- the history rows that pending final diagnoses still need (from 5 minutes before the earliest
  pending onset, and at least the trend window), plus the last ``tail_s`` seconds if asked;
- every tracked alert: its latest revision, the pending final (due, deadline, whether the
  provisional was deferred), the last report published for it (an escalation repeats its cause),
  and the severity an escalation update already announced.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.agents.diagnosis_history import COLUMNS, N_SIG, AssetHistory, Reference
from engine.plant.signals import SIGNAL_ORDER
from engine.schemas import AlertEvent, AssetId, DiagnosisReport, Severity

MAX_ROWS = 200_000
"""More rows than any history holds (a day at 2 Hz): a larger file is not ours."""


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ObserverState(_State):
    aligned: list[float] | None
    q_fluid: float
    q_pred: float
    thermal: float | None


class ReferenceState(_State):
    median: list[float] = Field(min_length=len(COLUMNS), max_length=len(COLUMNS))
    d2_spread: list[float] = Field(min_length=len(COLUMNS), max_length=len(COLUMNS))


class RowsState(_State):
    """Rows of ``COLUMNS`` (and their ts, for history)."""

    ts: list[float] = Field(default_factory=list, max_length=MAX_ROWS)
    rows: list[list[float]] = Field(default_factory=list, max_length=MAX_ROWS)

    @model_validator(mode="after")
    def _shape(self) -> RowsState:
        if self.ts and len(self.ts) != len(self.rows):
            raise ValueError(f"{len(self.ts)} timestamps for {len(self.rows)} rows")
        if any(len(r) != len(COLUMNS) for r in self.rows):
            raise ValueError(f"every row needs {len(COLUMNS)} values ({', '.join(COLUMNS)})")
        return self


class PendingState(_State):
    due: float
    deadline: float
    deferred: bool
    """No provisional report yet: the history could not support one when the alert came."""


class AlertState(_State):
    alert: AlertEvent
    """The latest revision seen."""
    revision: int = Field(ge=0)
    raised_ts: float
    pending: PendingState | None = None
    reported: DiagnosisReport | None = None
    escalated_to: Severity | None = None


class AssetState(_State):
    asset: AssetId
    pump: bool
    first_ts: float | None
    last_ts: float
    dt: float | None
    """None until the second sample fixed the period."""
    last_signals: list[float] = Field(min_length=N_SIG, max_length=N_SIG)
    unseen: list[str] = Field(default_factory=list, max_length=N_SIG)
    last_speed: float = 0.0
    steady_for: int = Field(default=0, ge=0)
    observer: ObserverState | None = None
    reference: ReferenceState | None = None
    warm: RowsState | None = None
    history: RowsState | None = None
    alerts: list[AlertState] = Field(default_factory=list, max_length=1000)
    closed: list[str] = Field(default_factory=list, max_length=1000)
    """Alert ids recently cleared (a late, older revision of one must not reopen it)."""


class DiagnosisState(_State):
    version: Literal[1] = 1
    columns: list[str] = Field(default_factory=lambda: list(COLUMNS))
    assets: list[AssetState] = Field(default_factory=list, max_length=100_000)

    @model_validator(mode="after")
    def _same_layout(self) -> DiagnosisState:
        if tuple(self.columns) != COLUMNS:
            raise ValueError("columns: saved by a version with another history layout")
        return self


def _finite(values: Any) -> list[Any]:
    """Plain floats (nested lists for rows), NaN/inf made finite, in one numpy call: a pump's
    15 minutes of history is ~18k values, saved whenever its alert state changes."""
    return list(np.nan_to_num(np.asarray(values, dtype=np.float64)).tolist())


def asset_history_state(h: AssetHistory, since_ts: float) -> dict[str, Any]:
    """The sample side of one asset as ``AssetState`` fields; history rows from ``since_ts``."""
    obs, steady = h.observer, h.steady
    fields: dict[str, Any] = {
        "pump": h.pump,
        "first_ts": h.first_ts,
        "last_ts": h.last_ts,
        "dt": h.dt if h.hist is not None else None,
        "last_signals": _finite(h.last_signals),
        "unseen": sorted(h.unseen),
    }
    if steady is not None:
        fields["last_speed"], fields["steady_for"] = steady.last_speed, steady.steady_for
    if obs is not None:
        fields["observer"] = ObserverState(
            aligned=None if obs.aligned is None else _finite(obs.aligned),
            q_fluid=obs.q_fluid,
            q_pred=obs.q_pred,
            thermal=obs.thermal.value,
        )
    if h.ref is not None:
        fields["reference"] = ReferenceState(
            median=_finite(h.ref.median), d2_spread=_finite(h.ref.d2_spread)
        )
    elif h.warm is not None and h.warm_k:
        fields["warm"] = RowsState(rows=_finite(h.warm[: h.warm_k]))
    if h.hist is not None and since_ts < float("inf"):
        ts, rows = h.hist.since(since_ts)
        if ts.size:
            fields["history"] = RowsState(ts=_finite(ts), rows=_finite(rows))
    return fields


def restore_asset_history(
    s: AssetState, history_s: float, warmup_s: float, settle_s: float
) -> AssetHistory:
    """An ``AssetHistory`` in the state ``s`` describes."""
    h = AssetHistory(history_s, warmup_s, settle_s)
    h.pump, h.first_ts, h.last_ts = s.pump, s.first_ts, s.last_ts
    h.last_signals = list(s.last_signals)
    h.unseen = set(s.unseen) & set(SIGNAL_ORDER)
    if s.dt is None:
        return h
    hist = h.setup(s.dt)
    assert h.steady is not None and h.observer is not None
    h.steady.last_speed, h.steady.steady_for = s.last_speed, s.steady_for
    h.steady.running = s.last_speed > h.steady.min_running_rpm
    if s.observer is not None:
        o = s.observer
        h.observer.aligned = None if o.aligned is None else list(o.aligned)
        h.observer.q_fluid, h.observer.q_pred = o.q_fluid, o.q_pred
        h.observer.thermal.value = o.thermal
    if s.reference is not None:
        h.ref = Reference(np.array(s.reference.median), np.array(s.reference.d2_spread))
        h.warm = None
    elif s.warm is not None and h.warm is not None:
        k = min(len(s.warm.rows), h.warm.shape[0] - 1)
        if k:
            h.warm[:k] = s.warm.rows[:k]
        h.warm_k = k
    if s.history is not None:
        for ts, row in zip(s.history.ts, s.history.rows, strict=True):
            hist.push(ts, row)
        h.since = s.history.ts[0] if s.history.ts else None
    return h
