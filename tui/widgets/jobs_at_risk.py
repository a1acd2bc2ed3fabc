"""Jobs at risk: one row per job, its fate in each scenario (the planner's first question).

Rows come from ``engine.factory.jobs_at_risk_rows``, the same rows the briefing's markdown table
is built from, so screen and briefing can never disagree. Worst jobs first.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from tui.safe import clean, safe_text, set_border_title
from tui.widgets.keyed_table import KeyedTable

STATUS_STYLE = {"on time": "green", "late": "bold red", "incomplete": "bold red reverse"}


class JobsAtRisk(KeyedTable):
    def show(self, state: Any) -> None:
        from engine.factory import jobs_at_risk_rows

        rows = sorted(jobs_at_risk_rows(state), key=lambda r: r.worst, reverse=True)
        labels = [spec.label for spec in state.scenarios if spec.label in state.metrics]
        wanted = ["job", *labels]
        if [c.label.plain for c in self.ordered_columns] != wanted:
            self.reset()
            self.clear(columns=True)
            self.add_column("job", key="job")
            for i, label in enumerate(labels):
                self.add_column(safe_text(label), key=f"s{i}")
        table_rows = []
        for row in rows:
            name = Text(clean(row.job_id, single_line=True), style="bold" if row.at_risk else "")
            name.append(f" {clean(row.job_name, single_line=True)}", style="dim")
            cells = [name]
            for label in labels:
                cell = row.cells.get(label)
                if cell is None:
                    cells.append(Text("—", style="dim"))
                else:
                    cells.append(Text(cell.text, style=STATUS_STYLE.get(cell.status, "")))
            table_rows.append((row.job_id, cells))
        self.sync(table_rows)
        late = sum(1 for r in rows if r.at_risk)
        set_border_title(self, f"{late} of {len(rows)} jobs late or incomplete somewhere")
