"""CLI: ``controlroom scenario …``, ``replay``, ``eval``, ``detect`` — the plant engine, no broker.

Exit codes: 0 success, 1 runtime failure, 2 invalid input (a bad scenario / rule / tuning file,
an unknown name, an unreadable CSV). Heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cli import add_command
from engine.cli.checks import output_path

if TYPE_CHECKING:
    from engine.schemas import Tuning


def _err(msg: str) -> None:
    print(f"controlroom: {msg}", file=sys.stderr)


PERTURBED_HELP = (
    "with --suite: each scenario on another pump model (head, flow, efficiency and thermal "
    "constants each drawn within ±15 %% of the nominal datasheet)"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to ``controlroom``."""
    sc = add_command(sub, "scenario")
    scs = sc.add_subparsers(dest="scenario_cmd", metavar="ACTION", required=True)
    p = scs.add_parser("validate", help="check scenario JSON files; exit 2 if any is bad")
    p.add_argument("files", nargs="+", metavar="FILE", help="scenario JSON files or bare names")
    p.set_defaults(func=cmd_scenario_validate)
    p = scs.add_parser("list", help="the scenarios shipped in scenarios/")
    p.set_defaults(func=cmd_scenario_list)
    p = scs.add_parser("suite", help="write a generated random suite as JSON files")
    p.add_argument("n", type=int, metavar="N", help="number of scenarios")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--perturbed", action="store_true", help=PERTURBED_HELP)
    p.set_defaults(func=cmd_scenario_suite)

    rc = add_command(sub, "rules")
    rcs = rc.add_subparsers(dest="rules_cmd", metavar="ACTION", required=True)
    p = rcs.add_parser("validate", help="check rule files (default: rules/*.yaml); exit 2 if bad")
    p.add_argument("files", nargs="*", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_rules_validate)

    p = add_command(sub, "replay")
    p.add_argument("scenario", metavar="SCENARIO", help="a scenario JSON file or a bare name")
    p.add_argument("--seed", type=int, help="default: the scenario's own seed")
    p.add_argument(
        "--out", type=output_path, required=True, metavar="FILE", help="JSONL output ('-' = stdout)"
    )
    p.add_argument("--no-telemetry", action="store_true", help="write only alerts and diagnoses")
    p.add_argument("--tuning", type=Path, metavar="FILE", help="apply a tuning file to both agents")
    p.add_argument(
        "--assets",
        type=int,
        default=1,
        metavar="N",
        help="a fleet of N pumps: the scenario on the first, other units with their own "
        "manoeuvres and the faults spread across them (default 1)",
    )
    p.set_defaults(func=cmd_replay)

    p = add_command(sub, "eval")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenario files or names")
    p.add_argument("--suite", type=int, metavar="N", help="generate N random scenarios instead")
    p.add_argument("--seed", type=int, default=0, help="suite seed (default 0)")
    p.add_argument("--perturbed", action="store_true", help=PERTURBED_HELP)
    p.add_argument(
        "--report", type=output_path, metavar="PATH", help="write the markdown report here"
    )
    p.add_argument("--json", type=output_path, metavar="PATH", help="write the metrics JSON here")
    p.add_argument(
        "--tuning",
        type=Path,
        metavar="FILE",
        help="also replay with this tuning file and compare false alarms and recall",
    )
    p.add_argument("--jobs", type=int, default=0, help="worker processes (default: CPU count)")
    p.add_argument(
        "--assets",
        type=int,
        default=1,
        metavar="N",
        help="play N pumps at once through one monitor and one diagnosis agent: with --suite, "
        "the suite's scenarios N at a time; with scenario names, each as a fleet of N pumps "
        "(the scenario on the first, the faults spread across the others)",
    )
    p.set_defaults(func=cmd_eval)

    p = add_command(sub, "detect")
    p.add_argument("csv", type=Path, metavar="FILE.csv")
    p.add_argument("--sep", default=None, help="field separator (default: sniffed, ',' or ';')")
    p.add_argument("--time-col", default=None, help="time column (default: the first column)")
    p.add_argument(
        "--ignore-col",
        action="append",
        default=[],
        metavar="NAME",
        help="a column that is not a signal (e.g. a label); repeatable",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        metavar="ROWS",
        help="rows used to learn the file's normal (default 600); nothing is flagged before",
    )
    p.add_argument("--asset", default="csv", help="asset id for the alerts (default 'csv')")
    p.add_argument(
        "--flags",
        type=output_path,
        required=True,
        metavar="OUT.csv",
        help="write the flags here: a time,anomaly row (0 or 1) per row read",
    )
    p.add_argument("--out", type=output_path, metavar="alerts.jsonl", help="also write the alerts")
    p.set_defaults(func=cmd_detect)


# ---------------------------------------------------------------------------------- scenario


def cmd_scenario_validate(args: argparse.Namespace) -> int:
    from engine.plant.scenario import ScenarioError, load_scenario

    bad = 0
    for f in args.files:
        try:
            s = load_scenario(f)
        except ScenarioError as exc:
            _err(str(exc))
            bad += 1
            continue
        faults = (
            ", ".join(f.type + (f"({f.sensor})" if f.sensor else "") for f in s.faults) or "none"
        )
        print(
            f"ok  {f}: {s.name}, {s.duration_s / 3600:.1f} h, {len(s.manoeuvres)} manoeuvres, "
            f"faults: {faults}"
        )
    return 2 if bad else 0


def cmd_scenario_list(args: argparse.Namespace) -> int:
    from engine.plant.scenario import ScenarioError, list_scenarios, load_scenario

    for name in list_scenarios():
        try:
            s = load_scenario(name)
            desc = s.description.split(". ")[0][:90]
            print(f"{name:28} {s.duration_s / 3600:4.1f} h  {desc}")
        except ScenarioError as exc:
            print(f"{name:28} INVALID: {exc}")
    return 0


def cmd_scenario_suite(args: argparse.Namespace) -> int:
    from engine.plant.scenario import save_scenario
    from engine.plant.suite import generate_suite

    if args.n < 1:
        _err("N must be at least 1")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for s in generate_suite(args.n, args.seed, perturbed=args.perturbed):
        save_scenario(s, args.out / f"{s.name}.json")
    print(f"wrote {args.n} scenarios to {args.out}")
    return 0


def cmd_rules_validate(args: argparse.Namespace) -> int:
    from engine.agent_files import RuleError, load_rules

    try:
        rules = load_rules(files=args.files or None)
    except RuleError as exc:
        _err(str(exc))
        return 2
    by_cause: dict[str, int] = {}
    for r in rules:
        by_cause[r.cause] = by_cause.get(r.cause, 0) + 1
    print(f"ok  {len(rules)} rules: " + ", ".join(f"{c} {n}" for c, n in sorted(by_cause.items())))
    return 0


def _agent_files(tuning_path: Path | None) -> Tuning | None:
    """The tuning file (if one is named), and the rule files the agents of a replay load,
    read here, in this process, so a bad one fails at once rather than inside a worker.
    Raises TuningError or RuleError."""
    from engine.agent_files import load_rules, load_tuning

    tuning = load_tuning(tuning_path) if tuning_path else None
    load_rules()
    return tuning


# ---------------------------------------------------------------------------------- replay


def cmd_replay(args: argparse.Namespace) -> int:
    from engine.agent_files import RuleError, TuningError
    from engine.evaluation.replay import envelope_line, replay_fleet
    from engine.plant.fleet import fleet_scenarios
    from engine.plant.scenario import ScenarioError, load_scenario
    from engine.schemas import Telemetry, topic_for

    if args.assets < 1:
        _err("--assets N needs N >= 1")
        return 2
    try:
        scenario = load_scenario(args.scenario)
        tuning = _agent_files(args.tuning)
    except (ScenarioError, TuningError, RuleError) as exc:
        _err(str(exc))
        return 2
    fleet = fleet_scenarios(scenario, args.assets, args.seed)
    counts = {"telemetry": 0, "alerts": 0, "diagnosis": 0}
    out = sys.stdout if str(args.out) == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for msg in replay_fleet(fleet, tuning=tuning):
            counts[topic_for(msg).split("/")[0]] += 1
            if args.no_telemetry and isinstance(msg, Telemetry):
                continue
            out.write(envelope_line(msg) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    pumps = f", {args.assets} pumps" if args.assets > 1 else ""
    print(
        f"{scenario.name}{pumps}: {counts['telemetry']} telemetry, {counts['alerts']} alert "
        f"messages, {counts['diagnosis']} diagnoses -> {args.out}",
        file=sys.stderr,
    )
    return 0


# ---------------------------------------------------------------------------------- eval


def cmd_eval(args: argparse.Namespace) -> int:
    from engine.agent_files import RuleError, TuningError
    from engine.evaluation.report import render_markdown, render_summary, render_tuning_compare
    from engine.evaluation.runner import evaluate
    from engine.plant.fleet import fleet_scenarios
    from engine.plant.scenario import ScenarioError, load_scenario
    from engine.plant.suite import generate_suite

    if args.assets < 1:
        _err("--assets N needs N >= 1")
        return 2
    if args.suite is not None and args.scenarios:
        _err("give scenario files or --suite N, not both")
        return 2
    try:
        if args.suite is not None:
            if args.suite < 1:
                _err("--suite N needs N >= 1")
                return 2
            scenarios = generate_suite(args.suite, args.seed, perturbed=args.perturbed)
            label = f"random suite of {args.suite} scenarios, seed {args.seed}"
            command = f"controlroom eval --suite {args.suite} --seed {args.seed}"
            if args.perturbed:
                label += ", perturbed datasheets (±15 %)"
                command += " --perturbed"
        elif args.perturbed:
            _err("--perturbed needs --suite N")
            return 2
        else:
            names = args.scenarios or ["normal", "chronic_wear", "sudden_clog_and_drift"]
            bases = [load_scenario(n) for n in names]
            scenarios = [s for b in bases for s in fleet_scenarios(b, args.assets)]
            label = "scenarios: " + ", ".join(s.name for s in bases)
            command = "controlroom eval " + " ".join(names)
        if args.assets > 1:
            label += f", {args.assets} pumps at a time"
            command += f" --assets {args.assets}"
        tuning = _agent_files(args.tuning)
    except (ScenarioError, TuningError, RuleError) as exc:
        _err(str(exc))
        return 2
    metrics = evaluate(scenarios, label=label, jobs=args.jobs or None, assets=args.assets)
    print(render_summary(metrics))
    tuned = None
    if tuning is not None:
        tuned = evaluate(
            scenarios,
            label=label + f", tuning {args.tuning}",
            tuning=tuning,
            jobs=args.jobs or None,
            assets=args.assets,
        )
        print()
        print(render_tuning_compare(metrics, tuned, str(args.tuning)))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        if args.tuning:
            command += f" --tuning {args.tuning}"
        text = render_markdown(metrics, tuned=tuned, command=command + f" --report {args.report}")
        args.report.write_text(text, encoding="utf-8")
        print(f"report: {args.report}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = metrics.model_dump(mode="json")
        if tuned is not None:
            payload["with_tuning"] = tuned.model_dump(mode="json")
        import json

        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"json: {args.json}")
    return 0


# ---------------------------------------------------------------------------------- detect


def cmd_detect(args: argparse.Namespace) -> int:
    from engine.evaluation.detect_csv import CsvError, detect_csv

    try:
        summary = detect_csv(
            args.csv,
            flags_path=args.flags,
            alerts_path=args.out,
            sep=args.sep,
            time_col=args.time_col,
            ignore_cols=args.ignore_col,
            warmup_rows=args.warmup,
            asset=args.asset,
            warn=lambda m: print(f"controlroom detect: {m}", file=sys.stderr),
        )
    except CsvError as exc:
        _err(str(exc))
        return 2
    print(summary)
    return 0
