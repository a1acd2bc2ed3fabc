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
- ``without_reference_cycles``: two Textual habits left the plant screen at 10 Hz making
  ~5,000 objects a second in reference cycles, freed only by the cyclic collector (every
  ``GC_FULL_S`` in ``tui/app.py``), found with ``gc.DEBUG_SAVEALL``:
  ``Strip.divide`` at a strip's own length returns ``[self]`` and keeps that list in the
  strip's own ``_divide_cache`` (strip -> cache -> list -> strip), for every such line the
  compositor paints (~2,000 strips a second, each with its seven caches); and
  ``LRUCache.clear`` drops its ring of links (each ``[prev, next, key, value]``) whole, a
  cycle holding every cached render, which ``DataTable`` does on most updates and
  ``KeyedTable`` after each sync. Patched: ``divide`` answers ``[self]`` without caching it
  (nothing was computed), ``clear`` empties each link first; both then free by refcount.

``tests/tui/test_tui_textual_compat.py`` fails loudly, naming the attribute, when an upgrade
breaks any of it; ``TESTED_WITH`` is the version these were read from.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from textual.cache import FIFOCache, LRUCache
from textual.strip import Strip

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


_TEXTUAL_DIVIDE = Strip.divide


def _divide(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
    """``Strip.divide`` without the self-reference: a single cut at (or past) the strip's end is
    the strip itself, answered without going through (and into) its divide cache."""
    cell_length = self.cell_length
    kept = [cut for cut in cuts if cut <= cell_length]
    if kept == [cell_length]:
        return [self]
    return _TEXTUAL_DIVIDE(self, kept)


def _clear(self: LRUCache[Any, Any]) -> None:
    """``LRUCache.clear`` that empties each link of its ring first (no cycle left behind)."""
    for link in self._cache.values():
        link.clear()
    self._cache.clear()
    self._full = False
    self._head = []


def without_reference_cycles() -> bool:
    """Install ``_divide`` as ``Strip.divide`` and ``_clear`` as ``LRUCache.clear`` (once, for
    the process); False when this Textual is not the one they were checked on (Textual's own
    are left)."""
    if Strip.divide is _divide:
        return True
    if version("textual") != TESTED_WITH:
        return False
    Strip.divide = _divide  # type: ignore[method-assign]
    LRUCache.clear = _clear  # type: ignore[method-assign]
    return True


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
    if not isinstance(getattr(Strip(()), "_divide_cache", None), FIFOCache):
        found.append("Strip._divide_cache is gone (without_reference_cycles: still needed?)")
    cache: LRUCache[int, int] = LRUCache(2)
    cache.set(1, 1)
    if not isinstance(getattr(cache, "_head", None), list) or not all(
        isinstance(link, list) for link in getattr(cache, "_cache", {}).values()
    ):
        found.append("LRUCache's links are no longer lists (without_reference_cycles)")
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
