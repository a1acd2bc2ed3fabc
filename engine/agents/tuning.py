"""Tuning files: the bounded threshold adjustments feedback makes, read by both agents.

The model lives in ``engine.schemas`` (it crosses a boundary: the review service writes it, the
monitor and diagnosis services read it). Here: loading and saving with clear errors, the lookup
the agents use, and the two bounded update steps the feedback logic uses.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from engine.schemas import RULE_OFFSET_BOUNDS, THRESHOLD_SCALE_BOUNDS, Tuning

__all__ = [
    "RULE_OFFSET_BOUNDS",
    "THRESHOLD_SCALE_BOUNDS",
    "Tuning",
    "TuningError",
    "load_tuning",
    "rule_offset",
    "save_tuning",
    "threshold_scale",
    "with_rule_offset",
    "with_threshold_scale",
]


class TuningError(ValueError):
    """A tuning file that cannot be used; the message names the file and the field."""


def load_tuning(path: str | Path) -> Tuning:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TuningError(f"{path}: no such tuning file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TuningError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TuningError(f"{path}: not valid JSON: {exc}") from None
    try:
        return Tuning.model_validate(data)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in e.get("loc", ())) or "(root)"
        raise TuningError(f"{path}: {loc}: {e.get('msg', 'invalid')}") from None


def save_tuning(tuning: Tuning, path: str | Path) -> None:
    """Write atomically (temp file + rename) so a watching agent never reads half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(tuning.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
    tuning: Tuning, asset: str, signal: str, factor: float, note: str = ""
) -> Tuning:
    """A copy with the ``asset/signal`` multiplier scaled by ``factor`` (bounded)."""
    key = f"{asset}/{signal}"
    thresholds = dict(tuning.thresholds)
    thresholds[key] = round(_clamp(thresholds.get(key, 1.0) * factor, THRESHOLD_SCALE_BOUNDS), 4)
    return _updated(tuning, thresholds=thresholds, note=note)


def with_rule_offset(tuning: Tuning, rule_id: str, delta: float, note: str = "") -> Tuning:
    """A copy with ``rule_id``'s confidence offset moved by ``delta`` (bounded)."""
    offsets = dict(tuning.rule_offsets)
    offsets[rule_id] = round(_clamp(offsets.get(rule_id, 0.0) + delta, RULE_OFFSET_BOUNDS), 4)
    return _updated(tuning, rule_offsets=offsets, note=note)


def _updated(tuning: Tuning, note: str, **changes: object) -> Tuning:
    notes = [*tuning.notes, note][-1000:] if note else tuning.notes
    return Tuning.model_validate(
        {
            **tuning.model_dump(),
            **changes,
            "notes": notes,
            "updated_at": datetime.now(UTC),
        }
    )
