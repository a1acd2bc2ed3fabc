"""Jobs at risk: one row per job, its fate in each scenario (the planner's first question).

Rows come from ``engine.factory.jobs_at_risk_rows``, the same rows the briefing's markdown table
is built from, so screen and briefing can never disagree. Worst jobs first. The table fits its
width: when the full cells ("on time (2h slack)") would push a scenario off the right edge, the
cells get shorter ("ok · 2h slack") and job names are cropped, so every scenario stays in view
at 80 columns.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from tui.safe import clean, safe_text, set_border_title
from tui.widgets.keyed_table import KeyedTable

STATUS_STYLE = {"on time": "green", "late": "bold red", "incomplete": "bold red reverse"}
PADDING = 2
"""Cell padding DataTable adds around each column (1 each side)."""


def compact(cell: Any) -> str:
    if cell.status == "on time":
        return f"ok · {cell.due_time - (cell.completion_time or 0)}h slack"
    return str(cell.text)


class JobsAtRisk(KeyedTable):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._state: Any = None
        self._width = -1

    def on_resize(self) -> None:
        width = self.content_region.width
        if width != self._width and self._state is not None:
            self._width = width
            self.show(self._state)

    def show(self, state: Any) -> None:
        from engine.factory import jobs_at_risk_rows

        self._state = state
        rows = sorted(jobs_at_risk_rows(state), key=lambda r: r.worst, reverse=True)
        labels = [spec.label for spec in state.scenarios if spec.label in state.metrics]
        width = self.content_region.width or 78
        full = [[c.text for c in r.cells.values()] for r in rows]
        short = [[compact(c) for c in r.cells.values()] for r in rows]
        texts, job_width = self._fit(rows, labels, full, short, width)
        self.reset()
        self.clear(columns=True)
        self.add_column("job", key="job", width=job_width)
        for i, label in enumerate(labels):
            col = [t[i] for t in texts if i < len(t)]
            self.add_column(safe_text(label), key=f"s{i}", width=max([len(label), *map(len, col)]))
        table_rows = []
        for row, cells_text in zip(rows, texts, strict=True):
            name = Text(clean(row.job_id, single_line=True), style="bold" if row.at_risk else "")
            name.append(f" {clean(row.job_name, single_line=True)}", style="dim")
            name.truncate(job_width, overflow="ellipsis")
            cells = [name]
            for label, text in zip(labels, cells_text, strict=False):
                cell = row.cells.get(label)
                if cell is None:
                    cells.append(Text("—", style="dim"))
                else:
                    cells.append(Text(text, style=STATUS_STYLE.get(cell.status, "")))
            table_rows.append((row.job_id, cells))
        self.sync(table_rows)
        late = sum(1 for r in rows if r.at_risk)
        set_border_title(self, f"{late} of {len(rows)} jobs late or incomplete somewhere")

    @staticmethod
    def _fit(
        rows: list[Any],
        labels: list[str],
        full: list[list[str]],
        short: list[list[str]],
        width: int,
    ) -> tuple[list[list[str]], int]:
        """(cell texts, job column width) that fit ``width``: full texts if they fit beside a
        job column of ids, else the short ones; the job column takes what is left."""
        ids = max((len(r.job_id) for r in rows), default=3)
        names = max((len(r.job_id) + 1 + len(r.job_name) for r in rows), default=3)
        for texts in (full, short):
            cols = [
                max([len(label), *(len(t[i]) for t in texts if i < len(t))])
                for i, label in enumerate(labels)
            ]
            used = sum(cols) + PADDING * (len(cols) + 1)
            if used + ids <= width:
                return texts, max(ids, min(names, width - used))
        return short, ids
