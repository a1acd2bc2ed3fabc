"""Modal list to pick one name (a scenario from ``scenarios/``, a factory config)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList
from textual.widgets.option_list import Option

from tui.safe import clean


class PickerScreen(ModalScreen[str | None]):
    BINDINGS = [  # noqa: RUF012
        Binding("escape", "cancel", "Cancel", id="picker.cancel"),
    ]

    def __init__(
        self, title: str, entries: list[tuple[str, str]], current: str | None = None
    ) -> None:
        """``entries``: (name, one-line description)."""
        super().__init__()
        self.title_text = title
        self.entries = entries
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-form picker"):
            yield Label(Text(f"{self.title_text} (↑↓, enter; esc cancels)", style="bold"))
            options = [
                Option(
                    Text.assemble(
                        (clean(name, single_line=True), "bold"),
                        "  ",
                        (clean(desc, single_line=True), "dim"),
                    ),
                    id=name,
                )
                for name, desc in self.entries
            ]
            yield OptionList(*options, compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        names = [n for n, _ in self.entries]
        options.highlighted = names.index(self.current) if self.current in names else 0
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
