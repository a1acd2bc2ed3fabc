"""CLI subcommands of the factory day: ``brief`` and ``factory {validate,list,show}``.

Imports of the factory package stay inside the handlers so ``controlroom --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli import add_command


def add_llm_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--llm``: which agents the factory day runs (engine.factory.llm.LLM_MODES, written out:
    ``--help`` imports no factory module)."""
    parser.add_argument("--llm", choices=("auto", "off", "on"), default="auto", help=help)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to ``controlroom``."""
    brief = add_command(sub, "brief")
    brief.add_argument("text", help='the planner\'s note, or "-" to read it from stdin')
    brief.add_argument(
        "--factory",
        default=None,
        metavar="FILE|NAME",
        help="factory config file or name in scenarios/factory (default: toy_day)",
    )
    brief.add_argument(
        "--date",
        default=None,
        metavar="YYYY-MM-DD",
        help="date in the briefing header (default: today)",
    )
    add_llm_option(
        brief,
        "auto: Claude when ANTHROPIC_API_KEY is set, else offline (default); "
        "off: offline agents; on: Claude, error without a key",
    )
    brief.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (intent, scenarios, metrics, schedules, "
        "briefing_markdown, gantt, logs, errors, elapsed_ms)",
    )
    brief.add_argument("--width", type=int, default=80, help="Gantt width in columns (>= 40)")
    brief.add_argument(
        "--rule",
        choices=("list", "edd", "atc", "mdd", "mod", "fcfs"),
        default=None,
        help="the scheduling rule the scenarios run under: list = the spec's EDD list "
        "scheduler (default, or the factory's scheduling_heuristic), edd/atc/mdd/mod = "
        "non-delay dispatch by that rule, fcfs = first come first served",
    )
    brief.add_argument(
        "--tickets",
        default=None,
        metavar="URL|DB",
        help="take open plant work orders from the review API (http://host:8105) or a ticket "
        "store (path or postgresql:// URL); those on machines mapped to plant assets become "
        "scenarios",
    )
    brief.set_defaults(func=cmd_brief)

    factory = add_command(sub, "factory")
    fsub = factory.add_subparsers(dest="factory_command", metavar="COMMAND")
    validate = fsub.add_parser("validate", help="check factory config files; exit 2 if invalid")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(func=cmd_validate)
    lst = fsub.add_parser("list", help="factory configs shipped in scenarios/factory")
    lst.set_defaults(func=cmd_list)
    show = fsub.add_parser("show", help="a factory's machines, jobs and baseline schedule")
    show.add_argument("factory", metavar="FILE|NAME")
    show.add_argument("--width", type=int, default=80)
    show.set_defaults(func=cmd_show)
    factory.set_defaults(func=lambda _args: _usage(factory))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _err(message: str) -> None:
    print(f"controlroom: {message}", file=sys.stderr)


RULES = {
    "list": "earliest_due_date",
    "edd": "edd_dispatch",
    "atc": "atc",
    "mdd": "mdd",
    "mod": "mod",
    "fcfs": "fcfs",
}


def cmd_brief(args: argparse.Namespace) -> int:
    from engine.factory import FactoryConfigError, LLMUnavailable, render_gantt, run_pipeline
    from engine.factory.config import load_factory
    from engine.factory.llm import resolve_llm
    from engine.factory.report import state_to_json

    text = sys.stdin.read() if args.text == "-" else args.text
    try:
        factory = load_factory(args.factory)
        if args.rule is not None:
            factory = factory.model_copy(update={"scheduling_heuristic": RULES[args.rule]})
        tickets = []
        if args.tickets:
            from engine.factory.plant_feed import TicketSourceError, fetch_tickets

            try:
                tickets = fetch_tickets(args.tickets, environ=args.environ)
            except TicketSourceError as exc:
                remote = args.tickets.startswith(("http://", "https://", "postgres"))
                _err(f"--tickets {exc}")
                return 1 if remote else 2
        state = run_pipeline(
            text,
            factory=factory,
            date=args.date,
            llm=resolve_llm(args.llm, args.environ) or "off",
            on_log=lambda line: print(line, file=sys.stderr, flush=True),
            tickets=tickets,
        )
    except FactoryConfigError as exc:
        _err(str(exc))
        return 2
    except LLMUnavailable as exc:
        _err(str(exc))
        return 2
    except ValueError as exc:
        _err(str(exc))
        return 2
    width = max(40, args.width)
    gantt = {label: render_gantt(r, state.factory, width) for label, r in state.sim_results.items()}
    if state.plan is not None and state.plan.improves:
        gantt[state.plan.label] = render_gantt(state.plan.result, state.factory, width)
    if args.json:
        print(json.dumps(state_to_json(state, gantt), ensure_ascii=False, indent=2))
    else:
        if state.briefing_markdown:
            print(state.briefing_markdown)
        for label, chart in gantt.items():
            print(f"## Schedule: {label}\n\n```text\n{chart}\n```\n")
    for note in state.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0 if state.pipeline_completed else 1


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.factory.config import factory_warnings, resolve, summary, validate_file

    status = 0
    for name in args.files:
        path = resolve(name)
        config, violations = validate_file(path)
        if config is None:
            status = 2
            print(f"{path}: INVALID ({_problems(len(violations))})")
            for v in violations:
                print(f"  {v.path}: {v.message}")
            continue
        print(f"{path}: OK ({summary(config)})")
        for warning in factory_warnings(config):
            print(f"  warning: {warning}")
    return status


def _problems(n: int) -> str:
    return f"{n} problem" if n == 1 else f"{n} problems"


def cmd_list(_args: argparse.Namespace) -> int:
    from engine.factory.config import FactoryConfigError, list_factories, load_factory, summary

    names = list_factories()
    if not names:
        _err("no factory configs found")
        return 1
    for name in names:
        try:
            print(f"{name:<16} {summary(load_factory(name))}")
        except FactoryConfigError as exc:
            print(f"{name:<16} INVALID ({_problems(len(exc.violations))})")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from engine.factory import FactoryConfigError, load_factory, render_gantt
    from engine.factory.config import factory_warnings, job_summary, summary
    from engine.factory.scenario import BASELINE_SPEC
    from engine.factory.scheduler import simulate

    try:
        factory = load_factory(args.factory)
    except FactoryConfigError as exc:
        _err(str(exc))
        return 2
    print(summary(factory))
    if factory.description:
        print(factory.description)
    print("\nMachines:")
    for m in factory.machines:
        print(f"  {m.id:<10} {m.name:<24} window {m.available_start}-{m.available_end}h")
    print("\nJobs:")
    for job in factory.jobs:
        print(f"  {job_summary(job)}")
    for warning in factory_warnings(factory):
        print(f"  warning: {warning}")
    print()
    print(render_gantt(simulate(factory, BASELINE_SPEC), factory, max(40, args.width)))
    return 0
