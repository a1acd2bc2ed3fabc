"""Fails loudly when a Textual upgrade breaks one of the internals tui/textual_compat.py uses."""

from __future__ import annotations

from tui.textual_compat import DATATABLE_RENDER_CACHES, problems
from tui.widgets.keyed_table import _RENDER_CACHES, KeyedTable


def test_textual_internals_still_hold() -> None:
    assert problems() == [], "update tui/textual_compat.py for this Textual:\n" + "\n".join(
        problems()
    )


def test_keyed_table_gets_its_small_caches() -> None:
    table = KeyedTable()
    assert set(_RENDER_CACHES) <= set(DATATABLE_RENDER_CACHES)
    for name, size in _RENDER_CACHES.items():
        assert getattr(table, name).maxsize == size, name
