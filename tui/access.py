"""The typed way for a screen or widget to reach the app's own state (feed, api, clock, ...).

``self.app`` is typed as Textual's ``App``; our attributes live on ``ControlRoomApp``. One cast
here, checked by mypy at every use, instead of an ``attr-defined`` ignore at each one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from tui.app import ControlRoomApp


def control(node: DOMNode) -> ControlRoomApp:
    """The running ``ControlRoomApp`` of a mounted screen or widget."""
    return cast("ControlRoomApp", node.app)
