"""A one-line text widget that repaints without asking for a new layout.

``Static.update`` requests a layout pass (its content may change size), which at ten redraws a
second re-lays out and repaints the whole screen. A status line has a fixed size: this widget
repaints only itself, and only when the text actually changed.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class TextLine(Widget):
    DEFAULT_CSS = """
    TextLine { height: 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._text = Text()

    def set(self, text: Text) -> None:
        if text.plain != self._text.plain or text.spans != self._text.spans:
            self._text = text
            self.refresh()

    def render(self) -> Text:
        return self._text
