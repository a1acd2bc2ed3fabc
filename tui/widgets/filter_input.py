"""A one-line filter box: ``/`` opens it, typing filters at once, ``enter`` keeps the filter and
returns to the list, ``esc`` clears it. What the operator types is untrusted text too: it is
shown through ``clean`` wherever it is echoed (pane titles)."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input


class FilterInput(Input):
    BINDINGS = [  # noqa: RUF012
        Binding("escape", "clear_filter", "Clear filter", id="filter.clear"),
    ]

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Submitted(self, "", None))
