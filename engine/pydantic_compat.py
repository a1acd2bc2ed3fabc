"""Every use of pydantic's internals, in one place, checked against the pinned version.

Why: the simulator builds a model per pump per tick from values that are valid by construction
(every field given, each already of its type). ``model_construct`` costs ~9 µs, a third of a
tick; setting the four slots pydantic's own constructor fills costs a fraction of that. Output
is still checked: tests validate the simulator's JSON with the real models, and ``check()``
(run at import) builds a model both ways and compares them, so a pydantic whose instance layout
changed fails at start, naming this module, instead of producing broken messages later.
``tests/plant/test_pydantic_compat.py`` pins the version.

Public API first: where a caller can afford ``model_validate`` or ``model_construct``, it uses
them; only the per-sample paths use :func:`trusted`.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

log = logging.getLogger("controlroom")

PINNED_VERSION = "2.14.3"
"""The pydantic :func:`trusted` was written and tested against (pyproject pins it)."""
PYDANTIC_VERSION = importlib.metadata.version("pydantic")
SLOTS = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
"""The instance attributes pydantic's constructor sets, and so the ones :func:`trusted` sets."""

M = TypeVar("M", bound=BaseModel)
_new = object.__new__
_set = object.__setattr__


class PydanticCompatError(RuntimeError):
    """The installed pydantic lays out its instances differently from what ``trusted`` does."""


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """An instance of ``cls`` holding ``values`` (every field, each valid), unvalidated.

    ``values`` becomes the instance's field dict: do not reuse it."""
    obj = _new(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", set(values))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def restamp(obj: BaseModel, name: str, value: Any) -> None:
    """Set field ``name`` of ``obj`` in place, unvalidated, past ``frozen``: only on a fresh
    instance nobody else holds yet (the simulator's samples, stamped with their batch's wall
    time: a validated copy per sample cost more than encoding the batch)."""
    obj.__dict__[name] = value


class _Probe(BaseModel):
    name: str
    value: float
    tags: list[str]


def mismatch() -> str | None:
    """How an instance from :func:`trusted` differs from a validated one (None: it does not)."""
    values: Mapping[str, Any] = {"name": "p", "value": 1.5, "tags": ["a"]}
    real = _Probe.model_validate(values)
    fake = trusted(_Probe, dict(values))
    for slot in SLOTS:
        if not hasattr(real, slot):
            return f"pydantic instances no longer have {slot}"
        if getattr(real, slot) != getattr(fake, slot):
            return f"{slot}: {getattr(fake, slot)!r} != pydantic's {getattr(real, slot)!r}"
    if fake != real or fake.model_dump_json() != real.model_dump_json():
        return "an instance from trusted() does not compare or serialise like a validated one"
    return None


def check() -> None:
    """Fail loudly (PydanticCompatError) if ``trusted`` no longer builds a real instance; warn
    when pydantic is not the pinned version but still passes."""
    problem = mismatch()
    if problem is not None:
        raise PydanticCompatError(
            f"pydantic {PYDANTIC_VERSION}: {problem}; engine/pydantic_compat.py was written "
            f"for {PINNED_VERSION}: pin pydantic=={PINNED_VERSION} or use model_construct"
        )
    if PYDANTIC_VERSION != PINNED_VERSION:
        log.warning(
            "pydantic %s is not the pinned %s; engine/pydantic_compat.py checks passed",
            PYDANTIC_VERSION,
            PINNED_VERSION,
        )


check()
