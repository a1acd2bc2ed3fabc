"""Messages that cross from a worker thread to the UI (module-level, so tests and screens share
one definition). ``post_message`` is thread-safe; widgets are only touched in the handlers."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class FactoryStepLogged(Message):
    """The factory pipeline finished one step: ``event`` is its ``engine.factory.StepEvent``
    (typed fields; ``event.line()`` is the log line)."""

    def __init__(self, event: Any, run: int) -> None:
        super().__init__()
        self.event = event
        self.run = run


class FactoryFinished(Message):
    """The pipeline returned; ``state`` is its FactoryState."""

    def __init__(self, state: Any, run: int) -> None:
        super().__init__()
        self.state = state
        self.run = run


class FactoryFailed(Message):
    """The pipeline raised (a bug or an unreadable factory file): shown, never swallowed."""

    def __init__(self, error: str, run: int) -> None:
        super().__init__()
        self.error = error
        self.run = run


class AssetRequested(Message):
    """Another screen asked the plant screen to show ``ControlRoomApp.requested_asset``."""
