"""What the modal forms share (close a ticket, edit a ticket, act on an alarm), and what the two
ticket forms share: the ticket, and a first line naming it.

``escape`` and the cancel button dismiss with None (no request is made); ``ctrl+s`` and the
confirm button call ``action_confirm``. A form that opens on a pick (the close reason, the
shelve duration) starts on its first option; picking one moves on to the form's text box, and
``enter`` there confirms.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from rich.text import Text
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static

from engine.schemas import Ticket
from tui.safe import clean

R = TypeVar("R")


class ModalForm(ModalScreen[R]):
    CONFIRM_BUTTON: ClassVar[str] = ""
    """The id of the button that confirms (any other button cancels)."""
    TEXT_BOX: ClassVar[str] = ""
    """The id of the text box a picked option hands the focus to."""

    def action_confirm(self) -> None:
        raise NotImplementedError

    def action_cancel(self) -> None:
        self.dismiss(None)

    def start_on_first(self, options: OptionList) -> None:
        options.highlighted = 0
        options.focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == self.CONFIRM_BUTTON:
            self.action_confirm()
        else:
            self.action_cancel()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.query_one(f"#{self.TEXT_BOX}", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_confirm()


class TicketForm(ModalForm[R]):
    """A form about one ticket."""

    def __init__(self, ticket: Ticket) -> None:
        super().__init__()
        self.ticket = ticket

    def heading(self, verb: str, detail: str) -> Static:
        """The form's first line: what it does, to which ticket (``detail``: shown after it)."""
        ticket_id = clean(self.ticket.ticket_id, single_line=True)
        return Static(Text(f"{verb} {ticket_id} · {detail}", style="bold"))
