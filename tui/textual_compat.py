"""Every use of a Textual internal, in one place, checked against the version it was written for.

Textual is pinned (pyproject); what we reach past its public API is listed here and nowhere else:

- ``DataTable``'s four render caches (``bound_datatable_caches``): keyed by the table's update
  counter, so in a table that changes every second each entry is dead after one update, yet they
  fill to their generous limits (10,000 cells, 1,000 rows...), megabytes per table. Textual has no
  public knob; we swap in smaller ``LRUCache``s. If a cache is renamed, the table keeps
  Textual's own (correct, only bigger) and ``problems()`` names it.
- ``update_generation`` / ``drop_render_caches``: every key of those caches holds the table's
  ``_update_count``, so once it moves no entry can be hit again; ``KeyedTable`` clears them then,
  and they hold one screenful, not their limit's worth of dead ones.
- ``layout_requests`` (tests): a widget's count of layouts asked for (``_layout_updates``), to
  show that ``KeyedTable.sync`` no longer reflows the whole screen when ``DataTable.remove_row``
  asks (it always does, ``refresh(layout=True)``, even when its size cannot change).
- ``first_binding``: the binding a key would run, from the focused widget up
  (``Screen._modal_binding_chain``). The public ``active_bindings`` leaves out bindings whose
  ``check_action`` is False (hidden from the footer), and a hidden key must still say why it does
  nothing.
- ``screen_text`` (tests): the composed screen as plain text, as a terminal shows it, from the
  compositor (Textual's public screenshot is SVG only).

``tests/tui/test_tui_textual_compat.py`` fails loudly, naming the attribute, when an upgrade
breaks any of it; ``TESTED_WITH`` is the version these were read from.
"""

from __future__ import annotations

import io
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from textual.cache import LRUCache

if TYPE_CHECKING:
    from textual.app import App
    from textual.binding import Binding
    from textual.screen import Screen
    from textual.widget import Widget
    from textual.widgets import DataTable

TESTED_WITH = "8.2.8"

DATATABLE_RENDER_CACHES = (
    "_cell_render_cache",
    "_row_render_cache",
    "_row_renderable_cache",
    "_line_cache",
)


def bound_datatable_caches(table: DataTable[Any], sizes: dict[str, int]) -> list[str]:
    """Replace the table's render caches named in ``sizes`` with smaller ones; returns the names
    it could not find (left as Textual made them)."""
    missing = []
    for name, size in sizes.items():
        if isinstance(getattr(table, name, None), LRUCache):
            setattr(table, name, LRUCache(size))
        else:
            missing.append(name)
    return missing


def update_generation(table: DataTable[Any]) -> int:
    """The table's update counter, which every render-cache key holds (-1 if gone)."""
    return int(getattr(table, "_update_count", -1))


def drop_render_caches(table: DataTable[Any]) -> None:
    """Empty the table's render caches (after an update: their entries are dead)."""
    for name in DATATABLE_RENDER_CACHES:
        cache = getattr(table, name, None)
        if isinstance(cache, LRUCache):
            cache.clear()


def render_cache_entries(table: DataTable[Any]) -> int:
    """Entries in the table's render caches (tests)."""
    return sum(len(getattr(table, name, ())) for name in DATATABLE_RENDER_CACHES)


def layout_requests(widget: Widget) -> int:
    """How many times ``widget`` has asked for a layout of its screen (tests)."""
    return int(widget._layout_updates)


def first_binding(screen: Screen[Any], key: str) -> Binding | None:
    """The first non-priority binding of ``key`` from the focused widget up to the app, whether
    or not its action applies now (None: the key is not bound here)."""
    for _node, bindings in screen._modal_binding_chain:
        for binding in bindings.key_to_bindings.get(key, ()):
            if not binding.priority:
                return binding
    return None


def problems() -> list[str]:
    """What no longer matches in the installed Textual (empty when everything holds)."""
    from textual.widgets import DataTable

    found = []
    installed = version("textual")
    if installed != TESTED_WITH:
        found.append(
            f"textual {installed} installed; tui/textual_compat.py was checked on {TESTED_WITH}"
        )
    from textual.screen import Screen

    if not isinstance(getattr(Screen, "_modal_binding_chain", None), property):
        found.append("Screen._modal_binding_chain is gone (first_binding)")
    table: DataTable[str] = DataTable()
    if not isinstance(getattr(table, "_update_count", None), int):
        found.append("DataTable._update_count is gone (update_generation)")
    if not isinstance(getattr(table, "_layout_updates", None), int):
        found.append("Widget._layout_updates is gone (layout_requests)")
    for name in DATATABLE_RENDER_CACHES:
        if not isinstance(getattr(table, name, None), LRUCache):
            found.append(f"DataTable.{name} is no longer an LRUCache")
    return found


def screen_text(app: App[Any]) -> str:
    """The whole screen (modals included) as plain text, one line per row (tests)."""
    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()
