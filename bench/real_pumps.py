"""Detection on real pumps: ``controlroom detect`` on SKAB-format folders, scored with SKAB's
outlier protocol.

    python bench/real_pumps.py DIR [DIR ...]      # folders (or files) of SKAB-format CSVs
    python bench/real_pumps.py ../shared/datasets/skab-dev/{valve1,anomaly-free}

SKAB's protocol: the first ``--warmup`` (400) rows of each file train and are not scored; every
later row is scored; F1, FAR (false alarms / normal rows) and MAR (missed / anomalous rows) are
counted over all scored rows of all files. Labels come from the file's ``anomaly`` (or
``is_anomaly``) column; a file without one (``anomaly-free.csv``) is all normal. The detector is
exactly ``controlroom detect FILE --warmup 400`` (one configuration for every file), run in this
process; the label columns are in the file and ignored by it, as they would be for a user.

Printed: one row per file (scored rows, anomalous rows, F1 / FAR / MAR, seconds), the totals
per folder and over everything, the models of normal side by side (the cross-regression the
monitor uses, and each signal against its own warm-up level with the same detectors: totals per
folder), and in the same run the naive reference the issue measured
against — a per-signal z-score against the first 400 rows, a row flagged when any signal is
more than ``--z`` standard deviations off — and the "flag every row" F1. Targets (issue 9):
valve1 F1 >= 0.80 with FAR <= 15 %; anomaly-free FAR <= 5 %.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.agents.monitor_config import MonitorConfig
from engine.evaluation.detect_csv import detect_csv, is_label

LABELS = ("anomaly", "is_anomaly")
ALTERNATIVES = ("per-signal",)
"""Other models of normal (``MonitorConfig.level_model``), scored beside the one used."""


@dataclass
class Counts:
    """SKAB's confusion counts over scored rows (the warm-up rows are not scored)."""

    tp: int = 0
    """Rows flagged and labelled anomalous."""
    fp: int = 0
    """Rows flagged but labelled normal: FAR's numerator."""
    fn: int = 0
    """Rows labelled anomalous but not flagged: MAR's numerator."""
    tn: int = 0
    """Rows neither flagged nor labelled."""

    def add(self, flags: np.ndarray, labels: np.ndarray) -> None:
        f, y = flags.astype(bool), labels.astype(bool)
        self.tp += int(np.sum(f & y))
        self.fp += int(np.sum(f & ~y))
        self.fn += int(np.sum(~f & y))
        self.tn += int(np.sum(~f & ~y))

    def __iadd__(self, other: Counts) -> Counts:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        return self

    @property
    def f1(self) -> float:
        if self.tp + self.fn == 0:  # no anomalous row: F1 is undefined (FAR says it all)
            return math.nan
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)

    @property
    def far(self) -> float:
        n = self.fp + self.tn
        return self.fp / n if n else math.nan

    @property
    def mar(self) -> float:
        n = self.fn + self.tp
        return self.fn / n if n else math.nan


@dataclass
class FileResult:
    path: Path
    scored: int
    anomalous: int
    ours: Counts
    naive: Counts
    everything: Counts
    seconds: float
    summary: str = ""
    warnings: list[str] = field(default_factory=list)
    alternatives: dict[str, Counts] = field(default_factory=dict)


def _read(path: Path) -> tuple[list[str], list[list[str]], str]:
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0]
    sep = ";" if first.count(";") >= first.count(",") else ","
    rows = list(csv.reader(text.splitlines(), delimiter=sep))
    return [h.strip() for h in rows[0]], [r for r in rows[1:] if r], sep


def _num(cell: str) -> float:
    try:
        v = float(cell.replace(",", ".")) if cell.strip() else math.nan
    except ValueError:
        return math.nan
    return v if math.isfinite(v) else math.nan


def naive_flags(header: list[str], rows: list[list[str]], warmup: int, z: float) -> np.ndarray:
    """The reference: per-signal z-score against the first ``warmup`` rows."""
    cols = [i for i, h in enumerate(header) if i > 0 and not is_label(h)]
    x = np.array([[_num(r[i]) for i in cols] for r in rows])
    mu = np.nanmean(x[:warmup], axis=0)
    sd = np.nanstd(x[:warmup], axis=0)
    sd = np.where(sd > 0, sd, 1e-12)
    dev = np.abs(x - mu) / sd
    return np.nan_to_num(dev, nan=0.0).max(axis=1) > z


def run_file(path: Path, warmup: int, z: float, tmp: Path) -> FileResult:
    header, rows, sep = _read(path)
    label_col = next((header.index(n) for n in LABELS if n in header), None)
    labels = np.array([int(_num(r[label_col]) > 0.5) if label_col is not None else 0 for r in rows])
    warnings: list[str] = []
    t0 = time.perf_counter()
    summary, ours = _detect(path, rows, sep, warmup, tmp, warnings.append)
    seconds = time.perf_counter() - t0
    naive = naive_flags(header, rows, warmup, z)
    scored = slice(warmup, None)
    res = FileResult(
        path,
        len(rows[scored]),
        int(labels[scored].sum()),
        Counts(),
        Counts(),
        Counts(),
        seconds,
        summary,
        warnings,
    )
    res.ours.add(ours[scored], labels[scored])
    res.naive.add(naive[scored], labels[scored])
    res.everything.add(np.ones_like(labels[scored]), labels[scored])
    for model in ALTERNATIVES:
        _, flags = _detect(path, rows, sep, warmup, tmp, lambda m: None, model)
        res.alternatives[model] = Counts()
        res.alternatives[model].add(flags[scored], labels[scored])
    return res


def _detect(
    path: Path,
    rows: list[list[str]],
    sep: str,
    warmup: int,
    tmp: Path,
    warn: Callable[[str], None],
    model: str | None = None,
) -> tuple[str, np.ndarray]:
    """``controlroom detect`` on the file (``model``: another model of normal): its summary and
    the flag of each row."""
    flags_path = tmp / f"{path.stem}.flags.csv"
    config = MonitorConfig(level_model=model) if model else None
    summary = detect_csv(
        path, flags_path=flags_path, sep=sep, warmup_rows=warmup, config=config, warn=warn
    )
    by_time = {}
    with flags_path.open(encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            by_time[rec["time"]] = int(rec["anomaly"])
    return summary, np.array([by_time.get(r[0], 0) for r in rows])


def _pct(x: float) -> str:
    return "    –" if math.isnan(x) else f"{100 * x:5.1f}"


def _f(x: float) -> str:
    return "   –" if math.isnan(x) else f"{x:4.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=Path, metavar="DIR", help="folders or CSV files")
    p.add_argument("--warmup", type=int, default=400, help="training rows per file (400)")
    p.add_argument("--z", type=float, default=3.0, help="naive reference threshold (3.0)")
    args = p.parse_args()
    groups: list[tuple[str, list[Path]]] = []
    for path in args.paths:
        files = (
            sorted(path.glob("*.csv"), key=lambda f: (len(f.stem), f.stem))
            if path.is_dir()
            else [path]
        )
        if not files:
            raise SystemExit(f"real_pumps: {path}: no CSV files")
        groups.append((str(path), files))
    load = os.getloadavg()
    print(f"controlroom detect FILE --warmup {args.warmup}  (SKAB outlier protocol; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")  # fmt: skip
    head = (
        f"{'file':34} {'scored':>6} {'anom':>5} | {'F1':>4} {'FAR%':>5} {'MAR%':>5} | "
        f"{'naive F1':>8} {'FAR%':>5} | {'s':>5}"
    )
    total = {"ours": Counts(), "naive": Counts(), "all": Counts()}
    seconds: list[float] = []
    models: list[tuple[str, dict[str, Counts]]] = []
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        for name, files in groups:
            print()
            print(head)
            sub = {"ours": Counts(), "naive": Counts(), "all": Counts()}
            alt = {m: Counts() for m in ("cross-regression (used)", *ALTERNATIVES)}
            for f in files:
                r = run_file(f, args.warmup, args.z, tmp)
                seconds.append(r.seconds)
                alt["cross-regression (used)"] += r.ours
                for m, c in r.alternatives.items():
                    alt[m] += c
                sub["ours"] += r.ours
                sub["naive"] += r.naive
                sub["all"] += r.everything
                label = f"{f.parent.name}/{f.name}"[-34:]
                print(
                    f"{label:34} {r.scored:6d} {r.anomalous:5d} | {_f(r.ours.f1)} "
                    f"{_pct(r.ours.far)} {_pct(r.ours.mar)} | {_f(r.naive.f1):>8} "
                    f"{_pct(r.naive.far)} | {r.seconds:5.2f}"
                )
            _total(f"{Path(name).name or name} (total)", sub)
            models.append((Path(name).name or name, alt))
            for k in total:
                total[k] += sub[k]
    if len(groups) > 1:
        print()
        _total("everything", total)
    print("\nmodel of normal, side by side (same files, same detectors and thresholds):")
    print(f"{'':16} {'model':26} {'F1':>4} {'FAR%':>5} {'MAR%':>5}")
    for name, alt in models:
        for m, c in alt.items():
            print(f"{name[:16]:16} {m:26} {_f(c.f1)} {_pct(c.far)} {_pct(c.mar)}")
    print(
        f"\nseconds per file: median {float(np.median(seconds)):.2f}, max {max(seconds):.2f} "
        f"({len(seconds)} files)"
    )


def _total(label: str, c: dict[str, Counts]) -> None:
    o, n, a = c["ours"], c["naive"], c["all"]
    print(
        f"{label:34} {'':6} {o.tp + o.fn:5d} | {_f(o.f1)} {_pct(o.far)} {_pct(o.mar)} | "
        f"{_f(n.f1):>8} {_pct(n.far)} |   flag-every-row F1 {_f(a.f1)}"
    )


if __name__ == "__main__":
    main()
