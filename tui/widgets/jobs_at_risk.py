"""Jobs at risk: one row per job, its lateness in each scenario (the planner's first question)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from tui.safe import safe_text
from tui.widgets.keyed_table import KeyedTable


def lateness_cell(hours: int | None, present: bool) -> Text:
    if not present:
        return Text("—", style="dim")
    if hours is None:
        return Text("incomplete", style="bold red")
    if hours == 0:
        return Text("on time", style="green")
    return Text(f"{hours}h late", style="bold red" if hours >= 3 else "yellow")


def risk_rows(metrics: Mapping[str, Any], due: Mapping[str, int], *, only_at_risk: bool = False) -> list[tuple[str, list[Text]]]:
    """Rows of (job id, cells): job, due, then one cell per scenario; worst jobs first."""
    labels = list(metrics)
    jobs: list[str] = []
    for m in metrics.values():
        jobs += [j for j in m.lateness_by_job if j not in jobs]

    def badness(job: str) -> tuple[int, int]:
        values = [metrics[label].lateness_by_job.get(job, 0) for label in labels]
        incomplete = sum(1 for v in values if v is None)
        return (-incomplete, -max((v or 0) for v in values) if values else 0)

    rows = []
    for job in sorted(jobs, key=lambda j: (*badness(j), jobs.index(j))):
        late_anywhere = any(job in metrics[label].late_job_ids for label in labels)
        if only_at_risk and not late_anywhere:
            continue
        cells = [safe_text(job, "bold" if late_anywhere else ""), Text(f"{due.get(job, '?')}h", justify="right")]
        for label in labels:
            lateness = metrics[label].lateness_by_job
            cells.append(lateness_cell(lateness.get(job), job in lateness))
        rows.append((job, cells))
    return rows


class JobsAtRisk(KeyedTable):
    def show(self, metrics: Mapping[str, Any], due: Mapping[str, int], labels: Sequence[str]) -> None:
        wanted = ["job", "due", *labels]
        if [str(c.label) for c in self.ordered_columns] != wanted:
            self.reset()
            self.clear(columns=True)
            self.add_column("job", key="job")
            self.add_column("due", key="due")
            for i, label in enumerate(labels):
                self.add_column(safe_text(label), key=f"s{i}")
        self.sync(risk_rows(metrics, due))
