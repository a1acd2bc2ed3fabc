"""The alarm list: newest first, one row per alarm episode, with its ISA-18.2 state from the
review API and its diagnosis when it arrives.

Each row: priority (the highest severity the episode reached), whether the condition is still
present (``●``) or returned to normal (``○``), and the operator's side: ``!`` unacknowledged,
``↑`` re-annunciated (its priority rose after it was acknowledged), ``S`` shelved, ``X`` out of
service, ``~`` suppressed as chattering; acknowledged shows nothing. Letters and marks as well as
colour. The wide layout spells the state (UNACK, ACK, RTN, LATCH, SHELV, SUPPR, OOS).

Keys, while the list has focus: ``a`` acknowledge (with a note), ``s`` shelve (for how long, or
until it clears), ``u`` unshelve, ``o`` take the alarm's asset out of service (or back).
``/`` opens a filter (every word must match asset, priority, state, a signal or the root
cause; Esc clears it). Space pauses the list so an operator can read without rows moving under
the cursor; the pane title counts what arrived meanwhile, and resuming shows it all.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input

from tui import format as fmt
from tui.alarms import STATE_SHORT, AlarmRow
from tui.feed import AlertRow
from tui.safe import clean, set_border_title
from tui.widgets.filter_input import FilterInput
from tui.widgets.keyed_table import KeyedTable


def _haystack(row: AlarmRow) -> str:
    r = row.row
    parts = [r.asset, row.priority, r.status, row.state, STATE_SHORT.get(row.state, ""), *r.signals]
    if not row.acknowledged:
        parts.append("unack")
    if r.diagnosis is not None:
        parts += [r.diagnosis.root_cause, r.diagnosis.category]
    return " ".join(parts).lower()


def matches(row: AlarmRow, query: str) -> bool:
    return all(word in _haystack(row) for word in query.lower().split())


def operator_mark(row: AlarmRow) -> str:
    """One character for the operator's side of the alarm (see the module docstring)."""
    state = row.state
    if state == "out_of_service":
        return "X"
    if state == "shelved":
        return "S"
    if state == "suppressed":
        return "~"
    if not row.acknowledged:
        alarm = row.alarm
        return "↑" if alarm is not None and alarm.reannunciations else "!"
    return " "


class AlertFilter(FilterInput):
    """The alarm list's filter box."""


class AlertFeed(Vertical):
    ALLOW_MAXIMIZE = True
    BINDINGS = [  # noqa: RUF012
        Binding("a", "screen.alarm_ack", "Ack", id="alarms.ack"),
        Binding("s", "screen.alarm_shelve", "Shelve", id="alarms.shelve"),
        Binding("u", "screen.alarm_unshelve", "Unshelve", id="alarms.unshelve"),
        Binding("o", "screen.alarm_oos", "Out of service", show=False, id="alarms.oos"),
    ]
    DEFAULT_CSS = """
    AlertFeed > AlertFilter { display: none; }
    AlertFeed.-filtering > AlertFilter { display: block; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.query_text = ""
        self.paused = False
        self.compact = True
        self.truth = False
        self._frozen: list[AlarmRow] = []
        self._latest: list[AlarmRow] = []
        self._columns: tuple[bool, bool, int] | None = None
        self._keys: list[str] = []
        self._row_cells: dict[str, tuple[AlarmRow, list[Text]]] = {}
        """Cells per shown episode, reused while the same (immutable) row comes back: with
        hundreds of episodes kept, a new alarm then costs one row, not all of them."""
        self._shown: dict[str, AlarmRow] = {}

    def compose(self) -> ComposeResult:
        yield AlertFilter(placeholder="asset, prio, state, signal, cause…", compact=True)
        yield KeyedTable(id="alert-table")

    @property
    def table(self) -> KeyedTable:
        return self.query_one(KeyedTable)

    @property
    def selected(self) -> AlarmRow | None:
        key = self.table.selected_key
        return self._shown.get(key) if key is not None else None

    # ---------------------------------------------------------------- operator actions

    def open_filter(self) -> None:
        self.add_class("-filtering")
        self.query_one(AlertFilter).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_text = event.value.strip()
        self._render_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_text = event.value.strip()
        self.remove_class("-filtering")  # the pane title shows the active filter
        self.table.focus()
        self._render_rows()

    def toggle_pause(self) -> bool:
        self.paused = not self.paused
        if self.paused:
            self._frozen = list(self._latest)
        self._render_rows()
        return self.paused

    # ---------------------------------------------------------------- data in

    def show(self, rows: list[AlarmRow], *, compact: bool, truth: bool) -> None:
        self._latest = rows
        self.compact = compact
        self.truth = truth
        self._render_rows()

    def on_resize(self) -> None:
        self._render_rows()

    def _ensure_columns(self) -> None:
        width = self.content_region.width
        wanted = (self.compact, self.truth, width)
        if self._columns == wanted:
            return
        table = self.table
        table.reset()
        table.clear(columns=True)
        # No cell padding: every cell after the first starts with its own space, so a narrow
        # pane spends its columns on text, not on gutters.
        table.cell_padding = 0
        diag_w = 19
        truth_w = 16 if self.truth and not self.compact else 0
        if self.compact:
            # Priority initial, present/returned mark, operator mark, and with the overlay the
            # truth verdict.
            mark_w = 4 if self.truth else 3
            table.add_column("", key="mark", width=mark_w)
            used = mark_w + 9 + 7
        else:
            # The state spelled out when there is room (the marks carry it otherwise).
            spelled = width == 0 or width >= 75 + truth_w
            table.add_column("", key="mark", width=2)
            table.add_column(" pri", key="sev", width=5)
            if spelled:
                table.add_column(" state", key="state", width=6)
            used = 2 + 5 + (6 if spelled else 0) + 9 + 9 + diag_w + truth_w
        table.add_column(" time", key="time", width=9)
        table.add_column(" asset", key="asset", width=9 if not self.compact else 7)
        # The last flexible column takes what is left (minus a scrollbar), so nothing scrolls
        # sideways: a long cell is cropped, and a wider terminal shows more of it.
        rest = width - used - 1 if width else None
        if self.compact:
            table.add_column(" cause / signals", key="what", width=max(rest or 0, 8) or None)
        else:
            table.add_column(" diagnosis", key="diagnosis", width=diag_w)
            if self.truth:
                table.add_column(" truth", key="truth", width=truth_w)
            if rest is None or rest >= 8:  # else signals give way (the detail has them)
                table.add_column(" signals", key="signals", width=rest)
        self._columns = wanted
        self._keys = [str(c.key.value) for c in table.ordered_columns]
        self._row_cells = {}

    @staticmethod
    def verdict(row: AlertRow) -> Text:
        """Truth overlay: ✓ when the diagnosis names the injected fault (or, undiagnosed, when
        a fault was really active), ✗ when it does not (or the alarm was false)."""
        t = row.truth
        if t is None:
            return Text("?", style="dim")
        d = row.diagnosis
        right = d.root_cause == t.fault if d is not None else t.fault != "none"
        return Text("✓", style="bold green") if right else Text("✗", style="bold red")

    @staticmethod
    def diagnosis_cell(row: AlertRow) -> Text:
        """The episode's cause; a provisional one (made at the alarm) ends in "?" until the
        final diagnosis settles it."""
        d, active = row.diagnosis, row.status == "active"
        if d is None and row.arrival == 0:  # known from the store only: no diagnosis seen here
            return Text(" —", style="dim")
        if d is None:
            return Text(" diagnosing…", style="italic dim")
        if d.stage == "provisional":
            return Text(
                f" {d.root_cause} {fmt.percent(d.confidence)}?", style="italic" if active else "dim"
            )
        return Text(
            f" {d.root_cause} {fmt.percent(d.confidence)}", style="bold" if active else "dim"
        )

    def _cells(self, alarm: AlarmRow) -> list[Text]:
        row = alarm.row
        active = alarm.active
        quiet = alarm.hidden or alarm.state == "normal"
        dim = "" if active and not alarm.hidden else "dim"
        priority = alarm.priority
        sev_style = fmt.SEVERITY_STYLE.get(priority, "") if not quiet else "dim"
        present = "●" if active else "○"
        mark = operator_mark(alarm)
        mark_style = "bold reverse" if mark in "!↑" and active else ("bold" if mark != " " else "")
        if self.compact:  # priority initial + present mark + operator mark: never colour alone
            cell = Text(fmt.SEVERITY_SHORT.get(priority, "?")[0] + present, style=sev_style)
            cell.append(mark, style=mark_style)
            if self.truth:
                cell.append_text(self.verdict(row))
            cells = [cell]
        else:
            cell = Text(present, style=sev_style)
            cell.append(mark, style=mark_style)
            cells = [cell, Text(" " + fmt.SEVERITY_SHORT.get(priority, priority), style=sev_style)]
            if "state" in self._keys:
                cells.append(
                    Text(
                        " " + STATE_SHORT.get(alarm.state, alarm.state),
                        style="bold" if not alarm.acknowledged and not alarm.hidden else "dim",
                    )
                )
        cells += [
            Text(" " + fmt.sim_clock(row.onset_ts), style=dim),
            Text(" " + clean(row.asset, single_line=True), style=dim),
        ]
        signals = " " + ", ".join(clean(s, single_line=True) for s in row.signals)
        if alarm.alarm is not None and alarm.alarm.chattering:
            signals += " · chattering"
        d = row.diagnosis
        diagnosis = self.diagnosis_cell(row)
        if self.compact:
            cells.append(diagnosis if d is not None else Text(signals, style=dim))
            return cells
        cells.append(diagnosis)
        if self.truth:
            truth = Text(" ")
            truth.append_text(self.verdict(row))
            truth.append(f" {row.truth.fault}" if row.truth else "", style="magenta")
            cells.append(truth)
        cells.append(Text(signals, style=dim))
        return cells[: len(self._keys)]

    def _render_rows(self) -> None:
        self._ensure_columns()
        rows = self._frozen if self.paused else self._latest
        if self.query_text:
            rows = [r for r in rows if matches(r, self.query_text)]
        cached, fresh = self._row_cells, {}
        for r in rows:
            hit = cached.get(r.alarm_id)
            fresh[r.alarm_id] = hit if hit is not None and hit[0] == r else (r, self._cells(r))
        self._row_cells = fresh  # only what is shown: bounded by the feed
        self._shown = {key: row for key, (row, _) in fresh.items()}
        self.table.sync([(key, cells) for key, (_, cells) in fresh.items()], follow_top=True)
        self._update_title(rows)

    def _update_title(self, rows: list[AlarmRow]) -> None:
        """Count, then (most telling first, as a narrow pane cuts the end) pause state,
        unacknowledged count, filter."""
        unacked = sum(1 for r in rows if not r.acknowledged and not r.hidden)
        title = f"Alarms ({len(rows)})"
        if self.paused:
            seen = {r.alarm_id for r in self._frozen}
            fresh = sum(1 for r in self._latest if r.alarm_id not in seen)
            title += f" · PAUSED · {fresh} new" if fresh else " · PAUSED"
        if unacked:
            title += f" · {unacked} unack"
        if self.query_text:
            title += f" · filter “{clean(self.query_text, single_line=True)}”"
        set_border_title(self, title)
