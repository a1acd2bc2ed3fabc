"""Tuning: the bounded threshold adjustments feedback makes, read by both agents.

The model lives in ``engine.schemas`` (it crosses a boundary: the review service writes it, the
monitor and diagnosis services read it). Here, pure: parsing a tuning document with clear errors,
the lookups the agents use, and the two bounded update steps the feedback logic uses. Reading and
writing the file is ``engine.agent_files``.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import ValidationError

from engine.schemas import RULE_OFFSET_BOUNDS, THRESHOLD_SCALE_BOUNDS, Tuning, error_line

__all__ = [
    "RULE_OFFSET_BOUNDS",
    "THRESHOLD_SCALE_BOUNDS",
    "Tuning",
    "TuningError",
    "rule_offset",
    "threshold_scale",
    "tuning_from_json",
    "with_rule_offset",
    "with_threshold_scale",
]


class TuningError(ValueError):
    """A tuning file that cannot be used; the message names the file and the field."""


def tuning_from_json(text: str, source: str) -> Tuning:
    """Parse a tuning document; ``source`` (a path) names it in the error."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TuningError(f"{source}: not valid JSON: {exc}") from None
    try:
        return Tuning.model_validate(data)
    except ValidationError as exc:
        raise TuningError(f"{source}: {error_line(exc)}") from None


def _clamp(x: float, bounds: tuple[float, float]) -> float:
    return min(bounds[1], max(bounds[0], x))


def threshold_scale(tuning: Tuning | None, asset: str, signal: str) -> float:
    """The multiplier on ``signal``'s thresholds for ``asset``: product of every matching key
    (``asset/signal``, ``asset/*``, ``*/signal``, ``*/*``), clamped to the bounds."""
    if tuning is None or not tuning.thresholds:
        return 1.0
    m = 1.0
    for key in (f"{asset}/{signal}", f"{asset}/*", f"*/{signal}", "*/*"):
        m *= tuning.thresholds.get(key, 1.0)
    return _clamp(m, THRESHOLD_SCALE_BOUNDS)


def rule_offset(tuning: Tuning | None, rule_id: str) -> float:
    if tuning is None:
        return 0.0
    return _clamp(tuning.rule_offsets.get(rule_id, 0.0), RULE_OFFSET_BOUNDS)


def with_threshold_scale(
    tuning: Tuning,
    asset: str,
    signal: str,
    factor: float,
    note: str = "",
    at: datetime | None = None,
) -> Tuning:
    """A copy with the ``asset/signal`` multiplier scaled by ``factor`` (bounded); ``at`` becomes
    its ``updated_at`` (None: unchanged — the agents read no clock)."""
    key = f"{asset}/{signal}"
    thresholds = dict(tuning.thresholds)
    thresholds[key] = round(_clamp(thresholds.get(key, 1.0) * factor, THRESHOLD_SCALE_BOUNDS), 4)
    return _updated(tuning, note, at, thresholds=thresholds)


def with_rule_offset(
    tuning: Tuning, rule_id: str, delta: float, note: str = "", at: datetime | None = None
) -> Tuning:
    """A copy with ``rule_id``'s confidence offset moved by ``delta`` (bounded)."""
    offsets = dict(tuning.rule_offsets)
    offsets[rule_id] = round(_clamp(offsets.get(rule_id, 0.0) + delta, RULE_OFFSET_BOUNDS), 4)
    return _updated(tuning, note, at, rule_offsets=offsets)


def _updated(tuning: Tuning, note: str, at: datetime | None, **changes: object) -> Tuning:
    notes = [*tuning.notes, note][-1000:] if note else tuning.notes
    return Tuning.model_validate(
        {
            **tuning.model_dump(),
            **changes,
            "notes": notes,
            "updated_at": at if at is not None else tuning.updated_at,
        }
    )
