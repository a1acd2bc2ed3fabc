"""Fixtures for the factory-day tests: the shipped factories, and a Claude client whose HTTP
layer is an ``httpx2.MockTransport`` replaying Messages API replies (the real SDK runs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from engine.factory.config import load_factory
from engine.factory.llm import ClaudeClient
from engine.factory.models import FactoryConfig


@pytest.fixture(autouse=True)
def _offline_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's API key must not turn ``auto`` into real network calls in tests."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("CONTROLROOM_CLAUDE_MODEL", raising=False)


@pytest.fixture(scope="session")
def toy() -> FactoryConfig:
    return load_factory("toy_day")


@pytest.fixture(scope="session")
def press() -> FactoryConfig:
    return load_factory("press_shop")


@pytest.fixture(scope="session")
def two_shift() -> FactoryConfig:
    return load_factory("two_shift")


Handler = Callable[[httpx2.Request], httpx2.Response]


@pytest.fixture
def claude(tmp_path: Any) -> Callable[..., ClaudeClient]:
    """``claude(handler, **kw)`` -> a ClaudeClient on a MockTransport; ``.seen`` lists the
    request bodies the SDK actually sent."""

    def make(handler: Handler, **kwargs: Any) -> ClaudeClient:
        seen: list[dict[str, Any]] = []

        def recording(request: httpx2.Request) -> httpx2.Response:
            seen.append(json.loads(request.content))
            return handler(request)

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("cache_path", tmp_path / "llm-cache")
        client = ClaudeClient(
            api_key="test",
            http_client=httpx2.Client(transport=httpx2.MockTransport(recording)),
            **kwargs,
        )
        client.seen = seen  # type: ignore[attr-defined]
        return client

    return make
