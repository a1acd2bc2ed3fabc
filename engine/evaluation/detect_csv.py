"""``controlroom detect``: stream a historian CSV export through the monitor, write anomaly flags.

Historian exports are messy, so the reader is tolerant where it is safe and loud where it is not:

- separator sniffed from the header (``;``, ``,`` or tab) unless given; with ``;`` a decimal comma
  ("12,5") is accepted;
- the time column is numeric seconds or an ISO 8601 / ``DD.MM.YYYY HH:MM:SS`` timestamp;
- a malformed row (wrong number of fields, unreadable or backwards time) is **skipped and counted**,
  its line number reported (the first 10, then a count) — one bad line in a day of data should not
  cost the day; the flags file simply has no row for it;
- a non-numeric cell ("", "Bad", "I/O Timeout", "nan") is a missing sample of that signal: the
  monitor holds the signal's last value and does not count it as "stuck";
- a column that is mostly non-numeric (a state or text column) is dropped with a warning;
- a column *named* like a label or a ground truth (``anomaly``, ``label``, ``changepoint``,
  ``is_anomaly``, ``target``, ``class``, ``fault``, ``outlier``, ``attack``, ...) is never used as
  a signal, numeric or not: a detector that reads the answer is not a detector;
- a cell past any plausible magnitude (|v| > 1e12, or a pump instrument's declared range when
  the column has that instrument's name) is a missing sample, counted.

Every row is one sample of the monitor's *generic* path (each signal regressed on the others,
thresholds calibrated on the warm-up's own scores: ``engine.agents.monitor``); ``--warmup`` is
in rows. Column names become signal names (characters outside ``A-Za-z0-9_.-`` replaced by
``_``). The decision at row t uses rows ≤ t only: flags are written as each row is fed. The
summary names the columns used and ignored and ends with one line: rows, signals, episodes,
flagged %.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from engine.agents.monitor import Monitor, MonitorConfig
from engine.plant.signals import PLAUSIBLE
from engine.schemas import MAX_ABS_VALUE, Envelope, Telemetry

DEFAULT_WARMUP_ROWS = 600
LABEL_NAMES = frozenset(
    {
        "anomaly",
        "anomalies",
        "isanomaly",
        "anomalylabel",
        "label",
        "labels",
        "changepoint",
        "changepoints",
        "target",
        "class",
        "fault",
        "faults",
        "groundtruth",
        "truth",
        "outlier",
        "outliers",
        "attack",
        "y",
    }
)
"""Column names (lower case, letters and digits only) that hold answers, not measurements."""
_PROBE_ROWS = 200
_TIME_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%Y/%m/%d %H:%M:%S")


class CsvError(ValueError):
    """The file cannot be used at all (unreadable, no header, unknown column, no valid rows)."""


def _signal_name(col: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", col.strip())[:60] or "col"
    base, i = name, 2
    while name in taken:
        name = f"{base}_{i}"
        i += 1
    taken.add(name)
    return name


def _parse_time(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        v = float(text)
        return v if math.isfinite(v) else None
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    return None


def _number(text: str, decimal_comma: bool) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        v = float(text)
    except ValueError:
        if not decimal_comma:
            return None
        try:
            v = float(text.replace(",", "."))
        except ValueError:
            return None
    return v if math.isfinite(v) else None


def is_label(column: str) -> bool:
    """A column named like a label or ground truth (``anomaly``, ``is_anomaly``, ``Label``...)."""
    return re.sub(r"[^a-z0-9]", "", column.lower()) in LABEL_NAMES


def _sniff(header_line: str) -> str:
    counts = {sep: header_line.count(sep) for sep in (";", ",", "\t")}
    sep = max(counts, key=counts.__getitem__)
    return sep if counts[sep] else ","


def detect_csv(
    path: Path,
    *,
    flags_path: Path,
    alerts_path: Path | None = None,
    sep: str | None = None,
    time_col: str | None = None,
    ignore_cols: list[str] | None = None,
    warmup_rows: int | None = None,
    asset: str = "csv",
    config: MonitorConfig | None = None,
    warn: Callable[[str], None] = lambda m: None,
) -> str:
    """Run the monitor over the CSV; returns the summary (columns used and ignored, then one
    line: rows, signals, episodes, flagged %)."""
    try:
        fh = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115
    except OSError as exc:
        raise CsvError(f"{path}: cannot open: {exc.strerror or exc}") from None
    with fh:
        try:
            first = fh.readline()
        except UnicodeDecodeError as exc:
            raise CsvError(f"{path}: not UTF-8 text ({exc.reason})") from None
        if not first.strip():
            raise CsvError(f"{path}: empty file (no header line)")
        sep = sep or _sniff(first)
        if sep == "\\t":
            sep = "\t"
        if len(sep) != 1:
            raise CsvError(f"--sep must be one character, got {sep!r}")
        header = next(csv.reader([first], delimiter=sep))
        header = [h.strip() for h in header]
        if len(header) < 2:
            raise CsvError(
                f"{path}: line 1: need a time column and at least one signal "
                f"(separator {sep!r}; use --sep)"
            )
        tcol = time_col or header[0]
        if tcol not in header:
            raise CsvError(f"{path}: --time-col {tcol!r} not in the header ({', '.join(header)})")
        for c in ignore_cols or []:
            if c not in header:
                raise CsvError(
                    f"{path}: --ignore-col {c!r} not in the header ({', '.join(header)})"
                )
        t_idx = header.index(tcol)
        skip = {t_idx} | {header.index(c) for c in ignore_cols or []}
        ignored = {header.index(c): "--ignore-col" for c in ignore_cols or []}
        for i, h in enumerate(header):
            if i != t_idx and i not in ignored and is_label(h):
                ignored[i] = "label"
                skip.add(i)
        rows = _rows(fh, sep)
        return _run(
            path,
            header,
            t_idx,
            skip,
            rows,
            sep == ";",
            flags_path,
            alerts_path,
            warmup_rows or DEFAULT_WARMUP_ROWS,
            asset,
            config,
            warn,
            ignored,
        )


def _rows(fh: Iterable[str], sep: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(fh, delimiter=sep)
    try:
        for row in reader:
            yield reader.line_num + 1, row  # +1: the header was read before the reader
    except csv.Error as exc:
        raise CsvError(f"line {reader.line_num + 1}: {exc}") from None


def _run(
    path: Path,
    header: list[str],
    t_idx: int,
    skip: set[int],
    rows: Iterator[tuple[int, list[str]]],
    decimal_comma: bool,
    flags_path: Path,
    alerts_path: Path | None,
    warmup_rows: int,
    asset: str,
    config: MonitorConfig | None,
    warn: Callable[[str], None],
    ignored: dict[int, str],
) -> str:
    # Probe the first rows: which columns are numeric, and the sample period.
    probe: list[tuple[int, list[str]]] = []
    for item in rows:
        probe.append(item)
        if len(probe) >= _PROBE_ROWS:
            break
    if not probe:
        raise CsvError(f"{path}: no data rows after the header")
    cols = [i for i in range(len(header)) if i not in skip]
    numeric = []
    for i in cols:
        vals = [r[i] for _, r in probe if len(r) == len(header)]
        ok = sum(_number(v, decimal_comma) is not None for v in vals)
        if vals and ok >= 0.5 * len(vals):
            numeric.append(i)
        else:
            ignored[i] = "not numeric"
            warn(
                f"column {header[i]!r} is not numeric in the first rows: ignored "
                "(name it with --ignore-col to silence this)"
            )
    if not numeric:
        raise CsvError(f"{path}: no numeric signal columns")
    taken: set[str] = set()
    names = {i: _signal_name(header[i], taken) for i in numeric}
    times = [
        t for _, r in probe if len(r) == len(header) and (t := _parse_time(r[t_idx])) is not None
    ]
    steps = sorted(b - a for a, b in pairwise(times) if b > a)
    dt = steps[len(steps) // 2] if steps else 1.0
    cfg = (config or MonitorConfig()).with_(warmup_n=warmup_rows)
    monitor = Monitor(cfg, id_prefix=f"csv|{path.name}")

    def all_rows() -> Iterator[tuple[int, list[str]]]:
        yield from probe
        yield from rows

    stats = {
        "rows": 0,
        "fed": 0,
        "skipped": 0,
        "missing": 0,
        "implausible": 0,
        "flagged": 0,
        "alerts": 0,
    }
    bounds = {i: PLAUSIBLE.get(names[i], (-MAX_ABS_VALUE, MAX_ABS_VALUE)) for i in numeric}
    bad_lines: list[str] = []
    active: set[str] = set()
    t0: float | None = None
    last_t = -math.inf
    flags_path.parent.mkdir(parents=True, exist_ok=True)
    alerts_fh = open(alerts_path, "w", encoding="utf-8") if alerts_path else None  # noqa: SIM115
    try:
        with open(flags_path, "w", newline="", encoding="utf-8") as out:
            w = csv.writer(out)
            w.writerow(["time", "anomaly"])
            for line, row in all_rows():
                stats["rows"] += 1
                if len(row) != len(header):
                    if not any(c.strip() for c in row):
                        stats["rows"] -= 1  # blank line
                        continue
                    _bad(
                        stats, bad_lines, warn, line, f"{len(row)} fields, header has {len(header)}"
                    )
                    continue
                t = _parse_time(row[t_idx])
                if t is None:
                    _bad(stats, bad_lines, warn, line, f"unreadable time {row[t_idx]!r}")
                    continue
                if t <= last_t:
                    _bad(stats, bad_lines, warn, line, f"time {row[t_idx]!r} does not advance")
                    continue
                last_t = t
                t0 = t if t0 is None else t0
                signals = {}
                for i in numeric:
                    v = _number(row[i], decimal_comma)
                    if v is None:
                        stats["missing"] += 1
                    elif not bounds[i][0] <= v <= bounds[i][1]:
                        stats["implausible"] += 1
                    else:
                        signals[names[i]] = v
                if signals:
                    # Valid by construction (names, bounds): no per-row validation cost.
                    msg = Telemetry.model_construct(
                        msg_id=f"{asset}-{line}",
                        asset=asset,
                        seq=stats["fed"],
                        ts=t - t0,
                        signals=signals,
                        scenario=None,
                        truth=None,
                        wall_time=None,
                    )
                    stats["fed"] += 1
                    for alert in monitor.feed(msg):
                        if alert.status == "active":
                            if alert.revision == 0:
                                stats["alerts"] += 1
                            active.add(alert.alert_id)
                        else:
                            active.discard(alert.alert_id)
                        if alerts_fh:
                            alerts_fh.write(Envelope.of(alert).to_json() + "\n")
                flag = 1 if active else 0
                stats["flagged"] += flag
                w.writerow([row[t_idx], flag])
    finally:
        if alerts_fh:
            alerts_fh.close()
    if stats["skipped"] > 10:
        warn(f"{stats['skipped'] - 10} more malformed rows skipped")
    if stats["fed"] == 0:
        raise CsvError(f"{path}: no usable rows ({stats['skipped']} malformed)")
    used = ", ".join(names[i] for i in numeric)
    skipped = ", ".join(f"{header[i]} ({why})" for i, why in sorted(ignored.items())) or "none"
    rows_n = stats["rows"]
    flagged_pct = 100.0 * stats["flagged"] / rows_n if rows_n else 0.0
    notes = []
    if stats["skipped"]:
        notes.append(f"{stats['skipped']} malformed rows skipped")
    if stats["missing"]:
        notes.append(f"{stats['missing']} missing cells held")
    if stats["implausible"]:
        notes.append(f"{stats['implausible']} implausible cells dropped")
    if late := monitor.unwatched(asset):
        notes.append(f"not watched (no value before the warm-up ended): {', '.join(late)}")
    if (n_rej := sum(monitor.counters[k] for k in ("value", "late", "duplicate"))) > 0:
        notes.append(f"{n_rej} samples or values the monitor did not use")
    return (
        f"{path}: signals used: {used}; ignored: {skipped}; time column {header[t_idx]!r}, "
        f"sample period {dt:g} s, warm-up {warmup_rows} rows"
        + (f"; {', '.join(notes)}" if notes else "")
        + f"\n{path.name}: {rows_n} rows, {len(numeric)} signals, {stats['alerts']} episodes, "
        f"{flagged_pct:.1f} % flagged -> {flags_path}"
    )


def _bad(
    stats: dict[str, int], bad: list[str], warn: Callable[[str], None], line: int, why: str
) -> None:
    stats["skipped"] += 1
    if len(bad) < 10:
        bad.append(f"line {line}")
        warn(f"line {line}: skipped: {why}")
