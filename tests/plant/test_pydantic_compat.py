"""engine/pydantic_compat.py against the installed pydantic: an upgrade that changes how
pydantic lays out an instance fails here (and at import), not in the simulator's messages."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from engine import pydantic_compat
from engine.schemas import Telemetry, Truth

ROOT = Path(__file__).resolve().parents[2]


def test_pinned_version_is_the_one_installed_and_the_one_pyproject_pins() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"pydantic=={pydantic_compat.PINNED_VERSION}" in deps
    assert importlib.metadata.version("pydantic") == pydantic_compat.PINNED_VERSION


def test_trusted_builds_what_validation_builds() -> None:
    assert pydantic_compat.mismatch() is None
    values = {
        "msg_id": "sim-1",
        "asset": "pump01",
        "seq": 1,
        "ts": 2.0,
        "signals": {"flow_m3h": 40.0},
        "scenario": "s",
        "truth": Truth(),
        "wall_time": None,
    }
    fast = pydantic_compat.trusted(Telemetry, dict(values))
    real = Telemetry.model_validate(values)
    assert fast == real
    assert fast.model_dump_json() == real.model_dump_json()
    assert Telemetry.model_validate_json(fast.model_dump_json()) == real
    assert fast.model_copy(update={"seq": 2}).seq == 2  # the public API works on it


def test_restamp_changes_a_frozen_models_field_as_validation_would_have() -> None:
    """The simulator stamps each fresh sample with its batch's wall time in place: the stamped
    model must dump as one validated with that value."""
    from engine.pydantic_compat import restamp
    from engine.schemas import Telemetry

    t = Telemetry(msg_id="m1", asset="pump01", seq=0, ts=1.0, signals={"flow": 1.0})
    restamp(t, "wall_time", 123.5)
    again = Telemetry.model_validate({**t.model_dump(), "wall_time": 123.5})
    assert t.wall_time == 123.5 and t.model_dump_json() == again.model_dump_json()
