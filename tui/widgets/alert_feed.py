"""The alarm list: newest first, one row per episode, its diagnosis filled in when it arrives.

``/`` opens a filter (every word must match asset, severity, state, a signal or the root cause);
Esc in the filter clears it. Space pauses the list so an operator can read without rows moving
under the cursor; the pane title counts what arrived meanwhile, and resuming shows it all.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input

from tui import format as fmt
from tui.feed import AlertRow
from tui.safe import clean, set_border_title
from tui.widgets.keyed_table import KeyedTable


def _haystack(row: AlertRow) -> str:
    parts = [row.asset, row.severity, row.status, *row.signals]
    if row.diagnosis is not None:
        parts += [row.diagnosis.root_cause, row.diagnosis.category]
    return " ".join(parts).lower()


def matches(row: AlertRow, query: str) -> bool:
    return all(word in _haystack(row) for word in query.lower().split())


class AlertFilter(Input):
    BINDINGS = [  # noqa: RUF012
        Binding("escape", "clear_filter", "Clear filter", id="alerts.filter.clear"),
    ]

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Submitted(self, "", None))


class AlertFeed(Vertical):
    ALLOW_MAXIMIZE = True
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
        self._frozen: list[AlertRow] = []
        self._latest: list[AlertRow] = []
        self._columns: tuple[bool, bool, int] | None = None
        self._keys: list[str] = []
        self._row_cells: dict[str, tuple[AlertRow, list[Text]]] = {}
        """Cells per shown episode, reused while the feed hands back the same (immutable) row:
        with hundreds of episodes kept, a new alert then costs one row, not all of them."""

    def compose(self) -> ComposeResult:
        yield AlertFilter(placeholder="filter: asset, severity, signal, cause…", compact=True)
        yield KeyedTable(id="alert-table")

    @property
    def table(self) -> KeyedTable:
        return self.query_one(KeyedTable)

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

    def show(self, rows: list[AlertRow], *, compact: bool, truth: bool) -> None:
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
            # Severity initial, active/cleared mark, and with the overlay the truth verdict.
            table.add_column("", key="mark", width=3 if self.truth else 2)
        else:
            table.add_column("", key="mark", width=1)
            table.add_column(" sev", key="sev", width=5)
        table.add_column(" time", key="time", width=9)
        table.add_column(" asset", key="asset", width=9 if not self.compact else 7)
        used = (3 if self.truth else 2) + 9 + 7 if self.compact else 6 + 9 + 9 + diag_w + truth_w
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
        if d is None:
            return Text(" diagnosing…", style="italic dim")
        if d.stage == "provisional":
            return Text(
                f" {d.root_cause} {fmt.percent(d.confidence)}?", style="italic" if active else "dim"
            )
        return Text(
            f" {d.root_cause} {fmt.percent(d.confidence)}", style="bold" if active else "dim"
        )

    def _cells(self, row: AlertRow) -> list[Text]:
        active = row.status == "active"
        dim = "" if active else "dim"
        sev_style = fmt.SEVERITY_STYLE.get(row.severity, "") if active else "dim"
        state = "●" if active else "○"
        if self.compact:  # severity initial + active/cleared mark: never colour alone
            mark = Text(fmt.SEVERITY_SHORT.get(row.severity, "?")[0] + state, style=sev_style)
            if self.truth:
                mark.append_text(self.verdict(row))
            cells = [mark]
        else:
            cells = [
                Text(state, style=sev_style),
                Text(" " + fmt.SEVERITY_SHORT.get(row.severity, row.severity), style=sev_style),
            ]
        cells += [
            Text(" " + fmt.sim_clock(row.onset_ts), style=dim),
            Text(" " + clean(row.asset, single_line=True), style=dim),
        ]
        signals = " " + ", ".join(clean(s, single_line=True) for s in row.signals)
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
            hit = cached.get(r.alert_id)
            fresh[r.alert_id] = hit if hit is not None and hit[0] is r else (r, self._cells(r))
        self._row_cells = fresh  # only what is shown: bounded by the feed
        self.table.sync([(key, cells) for key, (_, cells) in fresh.items()], follow_top=True)
        self._update_title(len(rows))

    def _update_title(self, shown: int) -> None:
        title = f"Alerts ({shown})"
        if self.query_text:
            title += f" · filter “{clean(self.query_text, single_line=True)}”"
        if self.paused:
            seen = {r.alert_id for r in self._frozen}
            fresh = sum(1 for r in self._latest if r.alert_id not in seen)
            title += f" · PAUSED · {fresh} new" if fresh else " · PAUSED"
        set_border_title(self, title)
