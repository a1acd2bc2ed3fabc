"""Modal form to edit a ticket's title, body, labels and severity.

Validated here with the same limits the wire schema enforces (so the operator sees "title: may
not be empty" next to the field, not a 422 from the service later); only fields that actually
changed are sent. ``ctrl+s`` saves, ``escape`` cancels without a request.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Input, Label, Select, Static, TextArea

from engine.schemas import SEVERITIES
from tui.safe import clean
from tui.screens.modal_form import TicketForm

MAX_TITLE = 500
MAX_BODY = 20_000
MAX_LABEL = 64
MAX_LABELS = 20
_LABEL_OK = re.compile(r"^[^\x00-\x1f\x7f,]+$")


def parse_labels(text: str) -> list[str]:
    seen: list[str] = []
    for part in text.split(","):
        label = part.strip()
        if label and label not in seen:
            seen.append(label)
    return seen


def validate_edit(
    title: str, body: str, labels_text: str, severity: object
) -> tuple[dict[str, Any], list[str]]:
    """(clean values, errors). Pure so the rules are unit-testable."""
    errors: list[str] = []
    title = title.strip()
    if not title:
        errors.append("title: may not be empty")
    elif len(title) > MAX_TITLE:
        errors.append(f"title: at most {MAX_TITLE} characters (has {len(title)})")
    if len(body) > MAX_BODY:
        errors.append(f"body: at most {MAX_BODY} characters (has {len(body)})")
    labels = parse_labels(labels_text)
    if len(labels) > MAX_LABELS:
        errors.append(f"labels: at most {MAX_LABELS}")
    for label in labels:
        if len(label) > MAX_LABEL:
            errors.append(f"label {label[:20]!r}…: at most {MAX_LABEL} characters")
        elif not _LABEL_OK.match(label):
            errors.append(f"label {clean(label)!r}: no control characters")
    if severity not in SEVERITIES:
        errors.append(f"severity: one of {', '.join(SEVERITIES)}")
    return {"title": title, "body": body, "labels": labels, "severity": severity}, errors


class EditTicketScreen(TicketForm[dict[str, Any] | None]):
    """Dismisses with the changed fields, or None when cancelled / nothing changed."""

    CONFIRM_BUTTON = "edit-save"

    BINDINGS = [  # noqa: RUF012
        Binding("ctrl+s", "confirm", "Save", id="edit.save"),
        Binding("escape", "cancel", "Cancel", id="edit.cancel"),
    ]

    def compose(self) -> ComposeResult:
        t = self.ticket
        with Vertical(id="edit-form", classes="modal-form"):
            yield self.heading("Edit", t.asset)
            with Horizontal(classes="form-row"):
                yield Label("Title", classes="form-label")
                # The cursor lands at the end: the first key must not replace the whole title.
                yield Input(
                    t.title,
                    id="edit-title",
                    compact=True,
                    max_length=MAX_TITLE,
                    select_on_focus=False,
                )
            with Horizontal(classes="form-row"):
                yield Label("Labels", classes="form-label")
                yield Input(
                    ", ".join(t.labels),
                    id="edit-labels",
                    compact=True,
                    placeholder="comma-separated",
                    select_on_focus=False,
                )
            with Horizontal(classes="form-row"):
                yield Label("Severity", classes="form-label")
                yield Select(
                    [(s, s) for s in SEVERITIES],
                    value=t.severity,
                    allow_blank=False,
                    compact=True,
                    id="edit-severity",
                )
            yield Label("Body", classes="form-label")
            yield TextArea(t.body, id="edit-body", soft_wrap=True, show_line_numbers=False)
            yield Static("", id="edit-errors", classes="form-errors")
            with Horizontal(classes="form-buttons"):
                yield Button("Save ^s", id="edit-save", variant="primary", compact=True)
                yield Button("Cancel esc", id="edit-cancel", compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#edit-title", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.prevent_default()  # enter moves to the next field here; ctrl+s saves
        event.stop()
        self.focus_next()

    def action_confirm(self) -> None:
        values, errors = validate_edit(
            self.query_one("#edit-title", Input).value,
            self.query_one("#edit-body", TextArea).text,
            self.query_one("#edit-labels", Input).value,
            self.query_one("#edit-severity", Select).value,
        )
        if errors:
            self.query_one("#edit-errors", Static).update(Text("\n".join(errors), style="bold red"))
            return
        t = self.ticket
        current = {
            "title": t.title,
            "body": t.body,
            "labels": list(t.labels),
            "severity": t.severity,
        }
        changes = {k: v for k, v in values.items() if v != current[k]}
        self.dismiss(changes or None)
