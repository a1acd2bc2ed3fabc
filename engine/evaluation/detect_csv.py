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
- a column that is mostly non-numeric (a state or label column not named with ``--ignore-col``)
  is dropped with a warning.

Column names become signal names (characters outside ``A-Za-z0-9_.-`` replaced by ``_``). The
decision at row t uses rows ≤ t only: flags are written as each row is fed.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from engine.agents.monitor import Monitor, MonitorConfig
from engine.schemas import Envelope, Telemetry

DEFAULT_WARMUP_ROWS = 600
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
    """Run the monitor over the CSV; returns a one-paragraph summary."""
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
        )


def _rows(fh, sep: str) -> Iterator[tuple[int, list[str]]]:  # type: ignore[no-untyped-def]
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
    cfg = (config or MonitorConfig()).with_(warmup_s=warmup_rows * dt)
    monitor = Monitor(cfg, id_prefix="csv")

    def all_rows() -> Iterator[tuple[int, list[str]]]:
        yield from probe
        yield from rows

    stats = {"rows": 0, "fed": 0, "skipped": 0, "missing": 0, "flagged": 0, "alerts": 0}
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
                    else:
                        signals[names[i]] = v
                if signals:
                    msg = Telemetry(
                        msg_id=f"{asset}-{line}",
                        asset=asset,
                        seq=stats["fed"],
                        ts=t - t0,
                        signals=signals,
                    )
                    stats["fed"] += 1
                    for alert in monitor.feed(msg):
                        if alert.status == "active":
                            active.add(alert.alert_id)
                            stats["alerts"] += 1
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
    return (
        f"{path}: {stats['rows']} rows, {stats['fed']} fed to the monitor "
        f"({len(numeric)} signals: {', '.join(list(names.values())[:8])}"
        f"{', …' if len(names) > 8 else ''}), sample period {dt:g} s, baseline "
        f"{warmup_rows} rows; {stats['skipped']} malformed rows skipped, {stats['missing']} "
        f"missing cells held; {stats['alerts']} alert episodes, {stats['flagged']} rows flagged "
        f"-> {flags_path}"
    )


def _bad(
    stats: dict[str, int], bad: list[str], warn: Callable[[str], None], line: int, why: str
) -> None:
    stats["skipped"] += 1
    if len(bad) < 10:
        bad.append(f"line {line}")
        warn(f"line {line}: skipped: {why}")
