"""The factory pipeline's steps as they complete: agent, latency, status, summary.

The orchestrator reports each step as one log line (spec section 6:
``{time} | {agent} | Latency: {ms}ms | Status: {valid|invalid|error} | …``, and the closing
``Pipeline completed in {ms}ms, errors: {n}``). ``parse_step`` turns a line into columns and
never fails: a line it does not recognise is shown whole as the summary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich.text import Text

from tui.safe import clean, safe_text
from tui.widgets.keyed_table import KeyedTable

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?")
_COMPACT = re.compile(r"^(?P<name>[^:|]{1,60}): (?P<ms>\d+(?:\.\d+)?)\s*ms,?\s*(?P<rest>.*)$")
_PIPELINE = re.compile(r"^Pipeline (?P<verb>\w+) in (?P<ms>\d+(?:\.\d+)?)\s*ms", re.I)
_ERRORS = re.compile(r"errors:\s*(?P<n>\d+)", re.I)
_MS = re.compile(r"(\d+(?:\.\d+)?)\s*ms")


@dataclass(frozen=True)
class StepEntry:
    name: str
    latency_ms: float | None
    status: str
    summary: str


def _status_of(text: str) -> str:
    low = text.lower()
    if "valid=false" in low or "status: invalid" in low or "invalid" in low.split():
        return "invalid"
    if "error" in low and "errors: 0" not in low:
        return "error"
    if "fallback: true" in low or "fallback=true" in low:
        return "fallback"
    return "ok"


def parse_step(line: str) -> StepEntry:
    line = clean(line, single_line=True).strip()
    m = _PIPELINE.match(line)
    if m:
        errors_m = _ERRORS.search(line)
        errors = int(errors_m.group("n")) if errors_m else 0
        verb = m.group("verb").lower()
        status = f"{errors} errors" if errors else "ok" if verb == "completed" else verb
        return StepEntry("Pipeline", float(m.group("ms")), status, line[m.end() :].lstrip(" ,|"))
    if " | " in line:
        parts = [p.strip() for p in line.split(" | ")]
        if _TIMESTAMP.match(parts[0]) and len(parts) > 1:
            parts = parts[1:]
        name, rest = parts[0], parts[1:]
        latency = None
        status = None
        fields: dict[str, str] = {}
        summary = []
        for part in rest:
            key, sep, value = part.partition(":")
            key = key.strip().lower()
            if key == "latency" and (ms := _MS.search(value)):
                latency = float(ms.group(1))
            elif key == "status":
                status = value.strip().lower() or None
            elif sep and key in ("input", "output", "source", "fallback"):
                fields[key] = value.strip()
            else:
                summary.append(part)
        # An agent line says what it produced; its input is the previous step's output.
        text = " · ".join(([fields["output"]] if "output" in fields else []) + summary)
        if fields.get("fallback", "").lower() == "true":
            status = "fallback"
        return StepEntry(name, latency, status or _status_of(text), text)
    m = _COMPACT.match(line)
    if m:
        rest = m.group("rest")
        return StepEntry(m.group("name").strip(), float(m.group("ms")), _status_of(rest), rest)
    return StepEntry(line[:40], None, _status_of(line), line)


STATUS_STYLE = {
    "ok": "green",
    "valid": "green",
    "fallback": "yellow",
    "invalid": "bold yellow",
    "error": "bold red",
}


class StepLog(KeyedTable):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._entries: list[StepEntry] = []
        self._width = -1

    def on_resize(self) -> None:
        """The summary takes the rest of the row: cropped, never scrolled sideways."""
        width = self.content_region.width
        if width == self._width:
            return
        self._width = width
        self.reset()
        self.clear(columns=True)
        self.add_column("step", key="step", width=22)
        self.add_column("ms", key="ms", width=5)
        self.add_column("status", key="status", width=10)
        used = 22 + 5 + 10 + 2 * 4
        self.add_column("summary", key="summary", width=max(width - used - 1, 10))
        self._show()

    def clear_steps(self) -> None:
        self._entries = []
        self.sync([])

    def add_line(self, line: str) -> StepEntry:
        entry = parse_step(line)
        self._entries.append(entry)
        self._show()
        return entry

    def _show(self) -> None:
        if not self.ordered_columns:
            return
        rows = []
        for i, e in enumerate(self._entries):
            ms = "" if e.latency_ms is None else f"{e.latency_ms:.0f}"
            mark = "✓ " if e.status in ("ok", "valid") else "! "
            rows.append(
                (
                    f"step{i}",
                    [
                        safe_text(e.name, "bold" if e.name == "Pipeline" else ""),
                        Text(ms, justify="right"),
                        Text(mark + e.status, style=STATUS_STYLE.get(e.status, "yellow")),
                        safe_text(e.summary, "dim"),
                    ],
                )
            )
        self.sync(rows)
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)
