"""Showing untrusted text (ticket titles, bodies, evidence, anything from the bus) literally.

Two dangers: Textual/Rich *markup* (``[@click=app.quit]x`` in a string given to a Static, a
DataTable cell or a Label becomes a live action) and terminal *control characters* (``\\x1b[2J``
written to the terminal clears it; a stray ``\\r`` or backspace rewrites what the operator reads).
Every string that did not come from our own source code goes through ``clean`` and is wrapped in a
``rich.text.Text`` (never parsed as markup) before it reaches a widget.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.text import Text

if TYPE_CHECKING:
    from textual.widget import Widget

# C0 controls except tab and newline, DEL and C1 controls; every Unicode *format* character
# (category Cf: the bidi marks, embeddings, overrides and isolates that make text read differently
# from what it is — "Trojan Source" — and the zero-width space, joiners, word joiner, BOM, soft
# hyphen, invisible operators, tag characters); the line and paragraph separators; and the
# invisible fillers (Hangul fillers, combining grapheme joiner) that render as nothing.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f"
    "\u0890\u0891\u08e2\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064"
    "\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clean(value: object, *, single_line: bool = False) -> str:
    """``value`` as text with every control character shown as a visible escape (``\\x1b``).

    With ``single_line`` newlines and tabs become spaces too (table cells, one-line summaries).
    """
    text = value if isinstance(value, str) else str(value)
    if single_line:
        text = text.replace("\r\n", " ").replace("\n", " ").replace("\t", " ")
    return _CONTROL.sub(_escape, text)


def safe_text(value: object, style: str = "", *, single_line: bool = True) -> Text:
    """A Rich ``Text`` of ``value`` that no widget will parse as markup."""
    return Text(clean(value, single_line=single_line), style=style, end="")


def truncate(value: str, width: int) -> str:
    """``value`` cut to ``width`` cells with an ellipsis (for fixed-width columns)."""
    if width <= 0:
        return ""
    if len(value) <= width:
        return value
    return value[: max(width - 1, 0)] + "…"


def set_border_title(widget: Widget, title: str) -> None:
    """Set a pane title as literal text (a plain ``str`` would be parsed as markup), and only
    when it changed: every assignment repaints the pane."""
    text = clean(title, single_line=True)
    current = widget.border_title
    if not (isinstance(current, Text) and current.plain == text):
        widget.border_title = Text(text)
