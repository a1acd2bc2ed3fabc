"""One small form for every alarm action: acknowledge (optional note), shelve (how long, or until
it clears; optional note), unshelve (optional note), out of service (a reason) and back in
service. ``enter`` confirms from the text box, ``esc`` cancels without a request.

What the operator types goes to the review API as is; the service refuses control, bidi and
zero-width characters and over-long notes with a message, which the screen shows.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui.screens.modal_form import ModalForm

MAX_TEXT = 500

SHELVE_CHOICES: tuple[tuple[str, str], ...] = (
    ("15", "15 min"),
    ("30", "30 min"),
    ("60", "1 h"),
    ("120", "2 h"),
    ("240", "4 h"),
    ("480", "8 h (the longest: one shift)"),
    ("until_clear", "until it clears (one-shot)"),
)
"""Shelve durations offered (minutes, or one-shot until the condition clears)."""


class AlarmActionScreen(ModalForm[tuple[str | None, str | None] | None]):
    """Dismisses with (choice or None, text or None), or None when cancelled."""

    TEXT_BOX = "alarm-form-text"

    BINDINGS = [  # noqa: RUF012
        Binding("ctrl+s", "confirm", "Confirm", id="alarm_form.confirm"),
        Binding("escape", "cancel", "Cancel", id="alarm_form.cancel"),
    ]

    def __init__(
        self,
        title: str,
        subject: Text,
        *,
        choices: Sequence[tuple[str, str]] = (),
        text_label: str = "Note",
        required: bool = False,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.subject = subject
        self.choices = list(choices)
        self.text_label = text_label
        self.required = required

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-form", id="alarm-form"):
            yield Static(Text(self.title_text, style="bold"))
            yield Static(self.subject, id="alarm-form-subject")
            if self.choices:
                yield Label("For how long (↑↓, enter)")
                yield OptionList(
                    *[Option(label, id=key) for key, label in self.choices],
                    id="alarm-form-choice",
                    compact=True,
                )
            with Horizontal(classes="form-row"):
                yield Label(self.text_label, classes="form-label")
                yield Input(
                    id="alarm-form-text",
                    compact=True,
                    max_length=MAX_TEXT,
                    placeholder="required" if self.required else "optional; enter confirms",
                )
            yield Static("", id="alarm-form-error", classes="form-errors")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.choices:
            self.start_on_first(self.query_one("#alarm-form-choice", OptionList))
        else:
            self.query_one("#alarm-form-text", Input).focus()

    def action_confirm(self) -> None:
        text = self.query_one("#alarm-form-text", Input).value.strip() or None
        if self.required and not text:
            self.query_one("#alarm-form-error", Static).update(
                Text(f"{self.text_label.lower()}: required", style="bold red")
            )
            self.query_one("#alarm-form-text", Input).focus()
            return
        choice = None
        if self.choices:
            options = self.query_one("#alarm-form-choice", OptionList)
            choice = options.get_option_at_index(options.highlighted or 0).id
        self.dismiss((choice, text))
