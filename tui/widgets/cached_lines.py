"""A widget drawn line by line from strips it builds once and keeps until they go stale.

Textual asks ``render_line`` for every visible row on each repaint; building the whole picture
(sparklines, a trend plot) per row would redo it height times. Subclasses build all their rows in
``_build`` and set ``_lines`` to None whenever what they show changes; a resize does it here.
"""

from __future__ import annotations

from textual.strip import Strip
from textual.widget import Widget


class CachedLines(Widget):
    _lines: list[Strip] | None = None

    def _build(self) -> list[Strip]:
        raise NotImplementedError

    def on_resize(self) -> None:
        self._lines = None

    def render_line(self, y: int) -> Strip:
        if self._lines is None:
            self._lines = self._build()
        if y < len(self._lines):
            return self._lines[y]
        return Strip.blank(self.size.width, self.rich_style)
