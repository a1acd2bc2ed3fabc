"""Does the review feedback loop cut false alarms without costing recall?

An offline run of the loop the live services close:

1. A random scenario suite is replayed with a deliberately over-sensitive monitor, so that it
   raises false alarms (the default monitor raises almost none on the suite, so there would be
   nothing to learn from).
2. Every alert that overlaps no real fault is diagnosed, stored as a ticket in a real store, and
   closed as ``false_positive``. The tuning is adjusted by the same functions the review service
   uses (``engine.agents.feedback``).
3. The same suite and a held-out suite (another seed) are replayed with and without that tuning.

It prints false alarms per fault-free day, precision and recall for each, and writes the tuning
file. ``controlroom eval --tuning FILE`` then checks that file against the default monitor.

    python bench/feedback_loop.py [--suite 12] [--seed 21] [--holdout-seed 22] [--sensitivity 0.5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from engine.agent_files import save_tuning
from engine.agents.feedback import adjust_tuning, feedback_for
from engine.agents.monitor import MonitorConfig
from engine.evaluation.metrics import EvalMetrics, aggregate
from engine.evaluation.replay import replay
from engine.evaluation.scoring import RunScore, StreamScorer
from engine.plant.suite import generate_suite
from engine.schemas import DiagnosisReport, Tuning, utc_now
from engine.tickets.store import TicketStore


def run_suite(
    scenarios: list, config: MonitorConfig, tuning: Tuning | None
) -> tuple[list[RunScore], dict[str, DiagnosisReport]]:
    runs: list[RunScore] = []
    diagnoses: dict[str, DiagnosisReport] = {}
    for sc in scenarios:
        scorer = StreamScorer(sc.name)
        for msg in replay(sc, None, tuning=tuning, monitor_config=config):
            scorer.add(msg)
            if isinstance(msg, DiagnosisReport):
                diagnoses.setdefault(msg.alert_id, msg)
        runs.extend(scorer.result())
    return runs, diagnoses


def learn(runs: list[RunScore], diagnoses: dict[str, DiagnosisReport], db: Path) -> Tuning:
    """Every false alarm becomes a ticket closed as false_positive; fold each into the tuning."""
    store = TicketStore(db)
    tuning = Tuning()
    closed = 0
    for run in runs:
        for alert in run.alerts:
            report = diagnoses.get(alert.alert_id)
            if alert.hit or report is None:
                continue
            rec = store.record_diagnosis(report)
            if rec.ticket.state == "closed":
                continue
            with store.transaction() as tx:
                ticket = tx.close(rec.ticket.ticket_id, "bench", "false_positive", "offline loop")
            tuning, _ = adjust_tuning(tuning, feedback_for("close", ticket, "bench", at=utc_now()))
            closed += 1
    store.close_db()
    print(f"closed {closed} false-alarm tickets as false_positive")
    return tuning


def line(name: str, m: EvalMetrics) -> str:
    def pct(v: float | None) -> str:
        return "   –  " if v is None else f"{v * 100:5.1f} %"

    fa = "–" if m.false_alarms_per_day is None else f"{m.false_alarms_per_day:.2f}"
    return (
        f"  {name:<34} false alarms/day {fa:>6}  precision {pct(m.precision)}"
        f"  recall {pct(m.recall)}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", type=int, default=12)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--holdout-seed", type=int, default=22)
    ap.add_argument(
        "--sensitivity",
        type=float,
        default=0.5,
        help="multiply the monitor's z thresholds and floors by this (< 1 = more false alarms)",
    )
    ap.add_argument("--out", type=Path, default=Path("var/feedback_tuning.json"))
    args = ap.parse_args()

    base = MonitorConfig()
    config = base.with_(
        level_z=base.level_z * args.sensitivity,
        generic_z=base.generic_z * args.sensitivity,
        noise_ratio=max(1.5, base.noise_ratio * args.sensitivity),
        floors={k: v * args.sensitivity for k, v in base.floors.items()},
    )
    t0 = time.perf_counter()
    train = generate_suite(args.suite, args.seed)
    held = generate_suite(args.suite, args.holdout_seed)
    runs, diagnoses = run_suite(train, config, None)
    with tempfile.TemporaryDirectory() as tmp:
        tuning = learn(runs, diagnoses, Path(tmp) / "bench.db")
    save_tuning(tuning, args.out)
    changed = dict(tuning.thresholds)
    print(
        f"tuning written to {args.out}: {len(changed)} thresholds, "
        f"{len(tuning.rule_offsets)} rule offsets"
    )
    for key, value in sorted(changed.items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {key:<28} x{value:g}")

    print(f"\nmonitor at {args.sensitivity:g}x its default thresholds, suite of {args.suite}:")
    print(line(f"training suite (seed {args.seed})", aggregate(runs)))
    runs_t, _ = run_suite(train, config, tuning)
    print(line("  ... with the learned tuning", aggregate(runs_t)))
    runs_h, _ = run_suite(held, config, None)
    print(line(f"held-out suite (seed {args.holdout_seed})", aggregate(runs_h)))
    runs_ht, _ = run_suite(held, config, tuning)
    print(line("  ... with the learned tuning", aggregate(runs_ht)))
    print(
        f"\n({time.perf_counter() - t0:.0f} s). Default monitor with this tuning:"
        f"  controlroom eval --suite {args.suite} --seed {args.holdout_seed} --tuning {args.out}"
    )


if __name__ == "__main__":
    main()
