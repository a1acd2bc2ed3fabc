"""Fixtures of the alarms area: the review service in-process with an injected clock."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alarm_data import Clock
from review_server import InProcessReview


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def var(tmp_path: Path) -> Path:
    path = Path(os.environ["CONTROLROOM_VAR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def make_review(broker: Any, var: Path, clock: Clock) -> Iterator[Callable[..., InProcessReview]]:
    started: list[InProcessReview] = []

    def make(**env: str) -> InProcessReview:
        r = InProcessReview(var, broker.url, clock, **env).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()
