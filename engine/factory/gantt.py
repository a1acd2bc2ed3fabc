"""ASCII Gantt charts: machines as rows, hours as columns, one chart per scenario.

Three layouts, chosen by how many hours fit the width:

- **blocks** (>= 2 columns per hour; a 24h day in 80 columns gets 3): each step is a block
  ``[J1====]`` labelled with its job; ``~`` fill marks hours stretched by a slowdown; ``!``
  after the label marks a late or incomplete job. A job too short to label shows its legend
  symbol.
- **wrapped** (up to 4 panels at 2 columns per hour): the same blocks, the horizon split
  into panels stacked vertically (a 48h two-shift plan in 80 columns: 2 panels).
- **scaled** (longer horizons): one column covers several hours and shows the job that
  occupies most of them (its legend symbol), ``#`` when there are too many jobs to letter.

In every layout ``.`` is an idle hour inside the machine's window and a blank is outside it.
Due times sit on a ``due`` row under the machines (``^J1`` at hour 11); a ``~`` row under a
slowed machine marks the slowdown window; the legend lists late and unscheduled work.
"""

from __future__ import annotations

import math
import string
import textwrap

from engine.factory.models import FactoryConfig
from engine.factory.results import Allocation, SimulationResult

SYMBOLS = string.ascii_lowercase + string.ascii_uppercase
MAX_PANELS = 4
NICE_STEPS = (1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 96, 168, 336, 672, 1344)
MAX_DUE_MARKERS = 12


def render_gantt(result: SimulationResult, factory: FactoryConfig, width: int = 80) -> str:
    """The chart for one scenario, every line at most ``width`` characters (min 40)."""
    width = max(40, width)
    chart = _Chart(result, factory, width)
    return "\n".join(line.rstrip() for line in chart.lines())


class _Chart:
    def __init__(self, result: SimulationResult, factory: FactoryConfig, width: int) -> None:
        self.result = result
        self.factory = factory
        self.width = width
        self.horizon = factory.time_horizon
        self.label_w = min(max(len(m.id) for m in factory.machines), 12) + 1
        self.label_w = max(self.label_w, 4)  # room for "due"
        self.area = width - self.label_w - 2
        self.late = {jid for jid, tl in result.job_timelines.items() if tl.is_late}
        self.symbols = {j.id: SYMBOLS[i] for i, j in enumerate(factory.jobs) if i < len(SYMBOLS)}
        self.used_symbols: set[str] = set()
        self.slow = result.scenario.slowdown

    # -- layout ------------------------------------------------------------------------------

    def lines(self) -> list[str]:
        out = [self._title()]
        cph = min(self.area // self.horizon, 4)
        if cph >= 2:
            out += self._panel(0, self.horizon, cph)
            note = ""
        elif self.horizon <= MAX_PANELS * (self.area // 2):
            panels = math.ceil(self.horizon / (self.area // 2))
            per = math.ceil(self.horizon / panels)
            per = min(self.area // 2, math.ceil(per / 6) * 6)  # whole 6h blocks when they fit
            cph = min(4, self.area // per)
            for start in range(0, self.horizon, per):
                out += self._panel(start, min(self.horizon, start + per), cph)
                out.append("")
            out.pop()
            note = ""
        else:
            hours = next(
                (s for s in NICE_STEPS if math.ceil(self.horizon / s) <= self.area),
                math.ceil(self.horizon / self.area),
            )
            out += self._scaled(hours)
            note = f"1 column = {hours}h. "
        out += self._legend(note)
        return out

    def _title(self) -> str:
        r = self.result
        late = [
            f"{jid} +{tl.lateness_hours}h" if tl.is_complete else f"{jid} incomplete"
            for jid, tl in r.job_timelines.items()
            if tl.is_late
        ]
        text = f"{r.scenario_label} | makespan {r.makespan}h | "
        text += (
            ("late: " + ", ".join(late[:6]) + (" …" if len(late) > 6 else ""))
            if late
            else ("no late jobs")
        )
        return text if len(text) <= self.width else text[: self.width - 1] + "…"

    # -- blocks ------------------------------------------------------------------------------

    def _axis(self, start: int, end: int, cph: int) -> list[str]:
        """Hour numbers above a ruler; a number starts at its hour's first column."""
        span = (end - start) * cph
        digits = len(str(end)) + 1
        step = next((s for s in NICE_STEPS if s * cph >= digits), NICE_STEPS[-1])
        limit = self.width - self.label_w - 1
        numbers = [" "] * limit
        ruler = ["-"] * span
        hours = [h for h in range(start, end + 1) if (h - start) % step == 0 or h == end]
        taken_from = limit + 1  # column where the label to the right starts (+1 gap)
        for hour in reversed(hours):  # right to left, so the horizon's end always shows
            col = (hour - start) * cph
            text = str(hour)
            if col < span:
                ruler[col] = "+"
            col = min(col, limit - len(text))
            if col + len(text) >= taken_from:
                continue
            numbers[col : col + len(text)] = list(text)
            taken_from = col
        pad = " " * (self.label_w + 1)
        return [pad + "".join(numbers), pad + "".join(ruler) + "+"]

    def _panel(self, start: int, end: int, cph: int) -> list[str]:
        out = self._axis(start, end, cph)
        span = (end - start) * cph
        for machine in self.factory.machines:
            cells = [" "] * span
            for hour in range(max(start, machine.available_start), min(end, machine.available_end)):
                for c in range(cph):
                    cells[(hour - start) * cph + c] = "."
            for a in self.result.machine_allocations[machine.id]:
                if a.end_time <= start or a.start_time >= end:
                    continue
                self._block(cells, a, start, end, cph)
            out.append(f"{machine.id[: self.label_w - 1]:<{self.label_w}}|{''.join(cells)}|")
            if self.slow is not None and self.slow.machine_id == machine.id:
                row = [" "] * span
                lo, hi = max(start, self.slow.start_time), min(end, self.slow.end_time)
                if lo < hi:
                    for c in range((lo - start) * cph, (hi - start) * cph):
                        row[c] = "~"
                    tag = f" {self.slow.slowdown_factor:g}x slower "
                    first = (lo - start) * cph
                    if len(tag) <= (hi - lo) * cph:
                        for i, ch in enumerate(tag):
                            row[first + i] = ch
                    out.append(f"{'':<{self.label_w}} {''.join(row)}")
        out += self._due_rows(start, end, cph, span)
        return out

    def _block(self, cells: list[str], a: Allocation, start: int, end: int, cph: int) -> None:
        lo = (max(a.start_time, start) - start) * cph
        hi = (min(a.end_time, end) - start) * cph
        w = hi - lo
        label = a.job_id + ("!" if a.job_id in self.late else "")
        step = next(
            st
            for st in self.result.job_timelines[a.job_id].steps_timeline
            if st.step_id == a.step_id
        )
        fill = "~" if step.duration_hours > step.base_duration_hours else "="
        if w >= len(label) + 2:
            text = "[" + label + fill * (w - len(label) - 2) + "]"
        elif w == len(label) + 1:
            text = label + "]"
        elif w == len(label):
            text = label
        else:
            symbol = self.symbols.get(a.job_id, "#")
            self.used_symbols.add(a.job_id)
            text = symbol * w
        cells[lo:hi] = list(text)

    def _due_rows(self, start: int, end: int, cph: int, span: int) -> list[str]:
        jobs = sorted(self.result.job_timelines.values(), key=lambda tl: (tl.due_time, tl.job_id))
        jobs = [tl for tl in jobs if start < tl.due_time <= end]
        if len(jobs) > MAX_DUE_MARKERS:
            jobs = [tl for tl in jobs if tl.is_late][:MAX_DUE_MARKERS]
        rows: list[list[str]] = []
        for tl in jobs:
            text = "^" + tl.job_id
            col = min((tl.due_time - start) * cph, span) - 1
            col = max(0, min(col, span - len(text)))
            for row in rows:
                if all(c == " " for c in row[max(0, col - 1) : col + len(text) + 1]):
                    break
            else:
                if len(rows) == 3:
                    continue
                row = [" "] * span
                rows.append(row)
            row[col : col + len(text)] = list(text)
        return [
            f"{'due' if i == 0 else '':<{self.label_w}} {''.join(r)}" for i, r in enumerate(rows)
        ]

    # -- scaled --------------------------------------------------------------------------------

    def _scaled(self, hours: int) -> list[str]:
        columns = math.ceil(self.horizon / hours)
        digits = len(str(self.horizon)) + 1
        every = max(1, math.ceil(digits / 1))
        numbers = [" "] * (columns + digits)
        ruler = ["-"] * columns
        tick = next((k for k in (1, 2, 4, 5, 10, 20, 50) if k >= every), every)
        for c in range(0, columns, tick):
            ruler[c] = "+"
            for i, ch in enumerate(str(c * hours)):
                if c + i < len(numbers):
                    numbers[c + i] = ch
        pad = " " * (self.label_w + 1)
        out = [pad + "".join(numbers)[: self.width - len(pad)], pad + "".join(ruler) + "+"]
        lettered = len(self.factory.jobs) <= len(SYMBOLS)
        for machine in self.factory.machines:
            busy: list[dict[str, int]] = [{} for _ in range(columns)]
            for a in self.result.machine_allocations[machine.id]:
                for c in range(a.start_time // hours, min(columns, math.ceil(a.end_time / hours))):
                    lo, hi = max(a.start_time, c * hours), min(a.end_time, (c + 1) * hours)
                    if hi > lo:
                        busy[c][a.job_id] = busy[c].get(a.job_id, 0) + hi - lo
            cells = []
            for c in range(columns):
                lo, hi = c * hours, (c + 1) * hours
                if busy[c]:
                    jid = max(sorted(busy[c]), key=lambda j: busy[c][j])
                    if lettered:
                        self.used_symbols.add(jid)
                        cells.append(self.symbols[jid])
                    else:
                        cells.append("!" if jid in self.late else "#")
                elif lo < machine.available_end and hi > machine.available_start:
                    cells.append(".")
                else:
                    cells.append(" ")
            out.append(f"{machine.id[: self.label_w - 1]:<{self.label_w}}|{''.join(cells)}|")
        return out

    # -- legend --------------------------------------------------------------------------------

    def _legend(self, note: str) -> list[str]:
        r = self.result
        parts = [
            note + "Legend: [J1==] a step of job J1, ~ hours stretched by a slowdown, ! late or "
            "incomplete job, . idle, blank = machine not available, ^J1 due time."
        ]
        if len(self.factory.jobs) > len(SYMBOLS) and note:
            parts[0] += " # busy, ! busy with a late job."
        if self.used_symbols:
            shown = sorted(self.used_symbols, key=lambda j: SYMBOLS.index(self.symbols[j]))
            parts.append(
                "Symbols: "
                + ", ".join(f"{self.symbols[j]}={j}" for j in shown[:40])
                + (" …" if len(shown) > 40 else "")
            )
        late = [
            f"{jid} +{tl.lateness_hours}h (due {tl.due_time}h, done {tl.completion_time}h)"
            for jid, tl in r.job_timelines.items()
            if tl.is_late and tl.is_complete
        ]
        if late:
            parts.append("Late: " + "; ".join(late[:10]) + (" …" if len(late) > 10 else ""))
        if r.unscheduled:
            parts.append(
                "Unscheduled (job incomplete): "
                + "; ".join(
                    f"{u.step_id} on {u.machine_id} ({u.reason})" for u in r.unscheduled[:5]
                )
                + (f"; {len(r.unscheduled) - 5} more" if len(r.unscheduled) > 5 else "")
            )
        if r.scenario.rush is not None:
            rush = r.scenario.rush
            parts.append(
                f"Rush: {rush.rush_job_id} arrives {rush.arrival_time}h, due {rush.due_time}h."
            )
        if len(r.job_timelines) <= MAX_DUE_MARKERS:
            parts.append(
                "Due: "
                + ", ".join(f"{jid} {tl.due_time}h" for jid, tl in r.job_timelines.items())
                + "."
            )
        out = []
        for part in parts:
            out += textwrap.wrap(part, self.width, subsequent_indent="  ")
        return out
