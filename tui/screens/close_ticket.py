"""Modal to close a ticket: a reason (resolved / false positive / duplicate) and an optional note.

The reason matters beyond bookkeeping: a false-positive close is what the feedback loop uses to
tune the thresholds that raised the alert, so the picker makes it a deliberate choice (no
default is preselected as "the" answer; the cursor starts on "resolved").
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Input, Label, OptionList
from textual.widgets.option_list import Option

from engine.schemas import CLOSE_REASONS
from tui.format import CLOSE_REASON_LABEL
from tui.safe import clean
from tui.screens.modal_form import TicketForm

REASON_HELP = {
    "resolved": "the fault was real and has been dealt with",
    "false_positive": "there was no fault: relaxes the thresholds that fired",
    "duplicate": "another ticket already covers this",
}


class CloseTicketScreen(TicketForm[tuple[str, str | None] | None]):
    """Dismisses with (reason, note or None), or None when cancelled."""

    CONFIRM_BUTTON = "close-confirm"
    TEXT_BOX = "close-note"

    BINDINGS = [  # noqa: RUF012
        Binding("ctrl+s", "confirm", "Close ticket", id="close.confirm"),
        Binding("escape", "cancel", "Cancel", id="close.cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="close-form", classes="modal-form"):
            yield self.heading("Close", clean(self.ticket.title, single_line=True))
            yield Label("Reason (↑↓, enter)")
            yield OptionList(
                *[
                    Option(
                        Text.assemble(
                            (CLOSE_REASON_LABEL[r], "bold"), "  ", (REASON_HELP[r], "dim")
                        ),
                        id=r,
                    )
                    for r in CLOSE_REASONS
                ],
                id="close-reason",
                compact=True,
            )
            with Horizontal(classes="form-row"):
                yield Label("Note", classes="form-label")
                yield Input(id="close-note", compact=True, placeholder="optional", max_length=500)
            with Horizontal(classes="form-buttons"):
                yield Button("Close ticket ^s", id="close-confirm", variant="error", compact=True)
                yield Button("Cancel esc", id="close-cancel", compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.start_on_first(self.query_one("#close-reason", OptionList))

    @property
    def reason(self) -> str:
        options = self.query_one("#close-reason", OptionList)
        index = options.highlighted or 0
        return options.get_option_at_index(index).id or CLOSE_REASONS[0]

    def action_confirm(self) -> None:
        note = self.query_one("#close-note", Input).value.strip() or None
        self.dismiss((self.reason, note))
