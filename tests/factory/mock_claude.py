"""Messages API replies for driving the real ``anthropic`` SDK through a MockTransport."""

from __future__ import annotations

import json
from typing import Any

import httpx2


def message(
    payload: Any = None,
    *,
    text: str | None = None,
    stop_reason: str = "end_turn",
    stop_details: dict[str, Any] | None = None,
    model: str = "claude-test",
) -> dict:
    """A Messages API reply body; ``payload`` is JSON-encoded into the text block."""
    content = (
        []
        if text is None and payload is None
        else [{"type": "text", "text": text if text is not None else json.dumps(payload)}]
    )
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_details": stop_details,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 10},
    }


def agent_of(request: httpx2.Request) -> str:
    """Which agent sent a request, read from its structured-output schema."""
    body = json.loads(request.content)
    props = body["output_config"]["format"]["schema"]["properties"]
    if "objective" in props:
        return "intent"
    if "scenarios" in props:
        return "futures"
    return "briefing"
