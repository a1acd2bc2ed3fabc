"""Screens redrawn from the feed on a timer (fleet, alarms, trend): only while shown, and only
when what they are drawn from changed, so a screen costs nothing while another is in front and
little while the plant is quiet. A resize forces a redraw.

A screen names what it is drawn from in ``draw_key()`` and draws in ``draw()``.
"""

from __future__ import annotations

from textual.screen import Screen


class KeyedRedraw(Screen[None]):
    _drawn: tuple[object, ...] = ()

    def draw_key(self) -> tuple[object, ...]:
        raise NotImplementedError

    def draw(self) -> None:
        raise NotImplementedError

    def on_resize(self) -> None:
        self.redraw(force=True)

    def redraw(self, force: bool = False) -> None:
        if not self.is_current:
            return  # hidden (another screen or mode is shown): redrawn on resume
        key = self.draw_key()
        if not force and key == self._drawn:
            return
        self._drawn = key
        self.draw()
