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
  Every step gets a mark in its own span (extra lines under a busy machine, and when that is
  not enough, the hours split into panels at a finer scale). The chart spans the hours where
  work runs, not an empty tail of the horizon.

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

SYMBOLS = string.ascii_lowercase + string.ascii_uppercase + string.digits
MAX_PANELS = 4
MAX_ROWS = 4
"""Lines per machine in a scaled chart (more lines when its steps are denser than columns)."""
MAX_SCALED_PANELS = 6
"""A scaled chart too dense to draw every step splits into up to this many panels."""
NICE_STEPS = (1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 96, 168, 336, 672, 1344)
MAX_DUE_MARKERS = 12


def _overlap(a: Allocation, column: int, hours: int, origin: int = 0) -> int:
    lo = origin + column * hours
    return max(0, min(a.end_time, lo + hours) - max(a.start_time, lo))


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
        self.drawn_steps: set[str] = set()
        self.undrawn = 0
        self.max_rows = MAX_ROWS

    # -- layout ------------------------------------------------------------------------------

    def lines(self) -> list[str]:
        out = [self._title()]
        view = self._view_end()
        cph = min(self.area // view, 4)
        if cph >= 2:
            out += self._panel(0, view, cph)
            note = ""
        elif view <= MAX_PANELS * (self.area // 2):
            panels = math.ceil(view / (self.area // 2))
            per = math.ceil(view / panels)
            per = min(self.area // 2, math.ceil(per / 6) * 6)  # whole 6h blocks when they fit
            cph = min(4, self.area // per)
            for start in range(0, view, per):
                out += self._panel(start, min(view, start + per), cph)
                out.append("")
            out.pop()
            note = ""
        else:
            chart, hours, view = self._scaled_panels(view)
            out += chart
            note = f"1 column = {hours}h. "
        if view < self.horizon:
            note += f"Hours {view}-{self.horizon} are not drawn: nothing runs there. "
        out += self._legend(note)
        return out

    def _view_end(self) -> int:
        """The hours the chart spans: the whole horizon when it fits as blocks or panels;
        past that, the hours where something happens (the work, a slowdown), in whole days,
        so a 2,500h horizon whose work ends at 801h spends its width on the work."""
        if self.horizon <= MAX_PANELS * (self.area // 2):
            return self.horizon
        end = max(self.result.makespan, self.slow.end_time if self.slow is not None else 0, 1)
        return min(self.horizon, math.ceil(end / 24) * 24)

    def _scaled_panels(self, view: int) -> tuple[list[str], int, int]:
        """(lines, hours per column, hours shown). One scaled panel over the whole view when
        every step finds a column; else the view split into more panels, each at a finer
        scale, until every step is drawn (up to :data:`MAX_SCALED_PANELS`). Each panel is the
        full width: the view grows to the hours its columns hold (up to the horizon)."""
        best: tuple[list[str], int, int] | None = None
        for panels in range(1, MAX_SCALED_PANELS + 1):
            hours = math.ceil(view / (panels * self.area))  # the whole width, not a round number
            per = hours * self.area
            view = min(self.horizon, max(view, math.ceil(view / per) * per))
            self.drawn_steps, self.used_symbols, self.undrawn = set(), set(), 0
            # The finest scale tried gives a busy machine as many lines as its densest column
            # needs: every step is on the chart, however dense.
            steps = sum(len(a) for a in self.result.machine_allocations.values())
            self.max_rows = MAX_ROWS if panels < MAX_SCALED_PANELS else max(MAX_ROWS, steps)
            out: list[str] = []
            for start in range(0, view, per):
                if out:
                    out.append("")
                out += self._scaled(start, min(view, start + per), hours)
            best = (out, hours, view)
            if self.undrawn == 0:
                break
        assert best is not None
        return best

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
        """Hour numbers above a ruler; a number starts at its hour's first column. The step
        between numbers is the smallest that shows every one of them, the panel's last hour
        included (so no panel ends unlabelled)."""
        span = (end - start) * cph
        limit = self.width - self.label_w - 1
        pad = " " * (self.label_w + 1)
        ruler = ["-"] * span
        numbers = [" "] * limit
        for step in NICE_STEPS:
            if step * cph < len(str(end)) + 1:
                continue
            hours = [h for h in range(start, end + 1) if (h - start) % step == 0 or h == end]
            placed = self._place_numbers(hours, start, cph, limit)
            if placed is not None:
                numbers = placed
                for hour in hours:
                    col = (hour - start) * cph
                    if col < span:
                        ruler[col] = "+"
                break
        return [pad + "".join(numbers), pad + "".join(ruler) + "+"]

    @staticmethod
    def _place_numbers(hours: list[int], start: int, cph: int, limit: int) -> list[str] | None:
        numbers = [" "] * limit
        taken_from = limit + 1  # column where the number to the right starts (+1 gap)
        for i, hour in enumerate(reversed(hours)):
            text = str(hour)
            col = min((hour - start) * cph, limit - len(text))
            if col + len(text) >= taken_from:
                if i == 1:
                    return None  # the last hour's number would hide the one before it
                continue
            numbers[col : col + len(text)] = list(text)
            taken_from = col
        return numbers

    def _panel(self, start: int, end: int, cph: int) -> list[str]:
        out = self._axis(start, end, cph)
        span = (end - start) * cph
        for machine in self.factory.machines:
            cells = [" "] * span
            for hour in range(max(start, machine.available_start), min(end, machine.available_end)):
                for c in range(cph):
                    cells[(hour - start) * cph + c] = "."
            below: list[tuple[int, int, str]] = []
            for a in self.result.machine_allocations[machine.id]:
                if a.end_time <= start or a.start_time >= end:
                    continue
                below += self._block(cells, a, start, end, cph)
            label_rows = self._label_rows(below, span, cells)
            out.append(f"{machine.id[: self.label_w - 1]:<{self.label_w}}|{''.join(cells)}|")
            out += label_rows
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

    def _block(
        self, cells: list[str], a: Allocation, start: int, end: int, cph: int
    ) -> list[tuple[int, int, str]]:
        """Draw one step; a step too short for its label is drawn as a bracketed block (or its
        job's symbol when narrower than 3 columns) with the label on a line below it."""
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
            cells[lo:hi] = list("[" + label + fill * (w - len(label) - 2) + "]")
            return []
        if w >= 3:
            cells[lo:hi] = list("[" + fill * (w - 2) + "]")
        else:
            self._symbolise(cells, lo, hi, a.job_id)
        return [(lo, hi, label)] if w >= 3 else []

    def _symbolise(self, cells: list[str], lo: int, hi: int, job_id: str) -> None:
        self.used_symbols.add(job_id)
        cells[lo:hi] = list(self.symbols.get(job_id, "#") * (hi - lo))

    def _label_rows(
        self, labels: list[tuple[int, int, str]], span: int, cells: list[str]
    ) -> list[str]:
        """The labels of short steps, under their blocks (a second line when two collide); a
        step whose label finds no room shows its job's symbol instead (named in the legend)."""
        rows: list[list[str]] = []
        for lo, hi, text in sorted(labels):
            col = max(0, min(lo, span - len(text)))
            if not _write_in_rows(rows, col, text, span, most=2):
                self._symbolise(cells, lo, hi, text.rstrip("!"))
        return [f"{'':<{self.label_w}} {''.join(r)}".rstrip() for r in rows]

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
            _write_in_rows(rows, col, text, span, most=3)
        return [
            f"{'due' if i == 0 else '':<{self.label_w}} {''.join(r)}" for i, r in enumerate(rows)
        ]

    # -- scaled --------------------------------------------------------------------------------

    def _scaled(self, start: int, end: int, hours: int) -> list[str]:
        """Hours ``start``-``end``, one column = ``hours``. Each step is drawn in a column of
        its own span (the one it fills most, else the nearest free one in its span), as its
        job's symbol; when a machine's steps are too dense for one line, it gets more (up to
        :data:`MAX_ROWS`, unbounded at the finest scale). A step that finds no column is
        counted (``undrawn``: the caller then tries a finer scale), and ``drawn_steps`` says
        exactly which are drawn."""
        columns = math.ceil((end - start) / hours)
        out = self._scaled_axis(start, hours, columns)
        lettered = len(self.factory.jobs) <= len(SYMBOLS)
        for machine in self.factory.machines:
            rows: list[list[str]] = [self._idle_row(machine.id, start, hours, columns)]
            allocs = sorted(
                (
                    a
                    for a in self.result.machine_allocations[machine.id]
                    if a.end_time > start and a.start_time < end
                ),
                key=lambda x: (x.start_time, x.step_id),
            )
            for a in allocs:
                first = min(columns - 1, max(0, a.start_time - start) // hours)
                last = min(columns - 1, max(first, (a.end_time - 1 - start) // hours))
                span = sorted(
                    range(first, last + 1),
                    key=lambda c: (-_overlap(a, c, hours, start), c),
                )
                mark = (
                    self.symbols[a.job_id] if lettered else ("!" if a.job_id in self.late else "#")
                )
                placed = False
                for row in rows:
                    col = next((c for c in span if row[c] in ".  "), None)
                    if col is not None:
                        row[col] = mark
                        placed = True
                        break
                if not placed and len(rows) < self.max_rows:
                    row = [" "] * columns
                    row[span[0]] = mark
                    rows.append(row)
                    placed = True
                if placed:
                    self.drawn_steps.add(a.step_id)
                    if lettered:
                        self.used_symbols.add(a.job_id)
                else:
                    self.undrawn += 1
            for a in allocs:  # then a long step fills the rest of its span (as a run)
                first = min(columns - 1, max(0, a.start_time - start) // hours)
                for c in range(first, min(columns, math.ceil((a.end_time - start) / hours))):
                    if rows[0][c] in ". " and 2 * _overlap(a, c, hours, start) >= hours:
                        rows[0][c] = self._mark(a.job_id, lettered)
            name = f"{machine.id[: self.label_w - 1]:<{self.label_w}}"
            out.append(f"{name}|{''.join(rows[0])}|")
            out += [f"{'':<{self.label_w}}|{''.join(r)}|" for r in rows[1:]]
        return out

    def _mark(self, job_id: str, lettered: bool) -> str:
        if lettered:
            return self.symbols[job_id]
        return "!" if job_id in self.late else "#"

    def _idle_row(self, machine_id: str, start: int, hours: int, columns: int) -> list[str]:
        machine = self.factory.machine(machine_id)
        return [
            "."
            if start + c * hours < machine.available_end
            and start + (c + 1) * hours > machine.available_start
            else " "
            for c in range(columns)
        ]

    def _scaled_axis(self, start: int, hours: int, columns: int) -> list[str]:
        pad = " " * (self.label_w + 1)
        numbers = [" "] * (self.width - len(pad))
        ruler = ["-"] * columns
        digits = len(str(self.horizon)) + 1
        tick = next((k for k in (1, 2, 4, 5, 10, 20, 50) if k >= digits), digits)
        for c in range(0, columns, tick):
            ruler[c] = "+"
            text = str(start + c * hours)
            if c + len(text) <= len(numbers):
                numbers[c : c + len(text)] = list(text)
        return [pad + "".join(numbers).rstrip(), pad + "".join(ruler) + "+"]

    # -- legend --------------------------------------------------------------------------------

    def _legend(self, note: str) -> list[str]:
        r = self.result
        parts = [
            note + "Legend: [J1==] a step of job J1, ~ hours stretched by a slowdown, ! late or "
            "incomplete job, . idle, blank = machine not available, ^J1 due time."
        ]
        if len(self.factory.jobs) > len(SYMBOLS) and note:
            parts[0] += " # a step, ! a step of a late job (too many jobs to letter)."
        if self.undrawn:
            parts.append(
                f"{self.undrawn} steps too dense to draw at this width (more columns show them)."
            )
        if self.used_symbols:
            shown = sorted(self.used_symbols, key=lambda j: SYMBOLS.index(self.symbols[j]))
            parts.append("Symbols: " + ", ".join(f"{self.symbols[j]}={j}" for j in shown))
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


def _write_in_rows(rows: list[list[str]], col: int, text: str, span: int, *, most: int) -> bool:
    """Write ``text`` at ``col`` in the first of ``rows`` where it is clear of other text by a
    space either side, else in a new row while there are fewer than ``most``; False when it
    found no room."""
    for row in rows:
        if all(c == " " for c in row[max(0, col - 1) : col + len(text) + 1]):
            break
    else:
        if len(rows) == most:
            return False
        row = [" "] * span
        rows.append(row)
    row[col : col + len(text)] = list(text)
    return True
