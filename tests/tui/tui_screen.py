"""Reading what the app shows, as a terminal would: plain text of the composed screen."""

from __future__ import annotations

from typing import Any

from textual.app import App

from tui.textual_compat import screen_text

__all__ = ["record_notifications", "screen_text", "settle"]


def record_notifications(app: App[object]) -> list[str]:
    """Every notification the app shows, kept in ``app.shown`` (they expire on screen, a test
    must still be able to read them)."""
    shown: list[str] = []
    notify = app.notify

    def record(message: str, **kwargs: Any) -> None:
        shown.append(str(message))
        notify(message, **kwargs)

    app.notify = record  # type: ignore[method-assign]
    app.shown = shown  # type: ignore[attr-defined]
    return shown


async def settle(pilot: Any, condition: Any, what: Any, timeout: float = 10.0) -> None:
    """Let the app process its messages until ``condition()`` holds (no fixed sleeps: each
    round waits for the message queues, not for a clock). ``what`` may be a function: it is
    called on a timeout, to say what the app looked like then."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {said}")
        await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
