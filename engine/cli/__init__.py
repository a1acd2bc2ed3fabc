"""The ``controlroom`` command.

Each area registers its own subcommands from a module of this package; ``register`` functions
must stay cheap (no heavy imports at module level). ``COMMANDS`` says which module holds each
subcommand, so ``controlroom replay …`` imports only ``engine.cli.plant`` and ``controlroom
--help`` none of them (a command missing from the table still works: every area is then
loaded).

A handler receives the parsed ``argparse.Namespace`` and returns the exit status: 0 success, 1
runtime failure, 2 invalid input (a bad file, an unknown name). It may instead raise
``UsageError`` / ``RuntimeFailure`` from ``engine.cli.errors``; whatever escapes it is turned
into one line on stderr and an exit status here, in one place (see ``engine/cli/errors.py``).
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

from engine.cli.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    classify,
    debug_enabled,
    silence_stdout,
    stdout_is_broken,
)
from engine.cli.help import EXIT_STATUS, TOP_EXAMPLES, Formatter, decorate, examples_epilog

AREAS = ("ui", "plant", "live", "tickets", "alarms", "operators", "factory")
"""The modules of ``engine.cli`` that register subcommands, in the order ``--help`` lists them."""

COMMANDS: dict[str, tuple[str, str]] = {
    # command: (its module in engine.cli, its line in `controlroom --help`)
    "demo": ("ui", "start broker, the five services and the TUI in one go"),
    "tui": ("ui", "the control-room TUI against running services"),
    "scenario": ("plant", "pump scenarios: validate, list, export a random suite"),
    "rules": ("plant", "diagnosis rules: validate rule files"),
    "replay": ("plant", "simulator → monitor → diagnosis in simulated time, to JSONL"),
    "eval": ("plant", "score detection and diagnosis against the simulator's ground truth"),
    "detect": ("plant", "run the monitor over a historian CSV export and write anomaly flags"),
    "serve": ("live", "run one plant service (HTTP + MQTT) until Ctrl-C"),
    "up": ("live", "run the whole live plant (broker + five services) until Ctrl-C"),
    "report": ("live", "metrics report (markdown) of a live run from its JSONL logs"),
    "broker": (
        "live",
        "broker credentials and ACL files (for docker compose or an external Mosquitto)",
    ),
    "tickets": ("tickets", "list, show, approve, edit and close work orders (review API)"),
    "alarms": ("alarms", "alarms: list, acknowledge, shelve; assets out of service; KPIs"),
    "operators": ("operators", "operator tokens for remote TUIs; whoami"),
    "brief": ("factory", "morning briefing for a planner's note (factory day)"),
    "factory": ("factory", "factory configs: validate, list, show"),
}


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, **options: Any
) -> argparse.ArgumentParser:
    """The parser of top-level command ``name``, its help line taken from :data:`COMMANDS`
    (where ``controlroom --help`` reads it without loading the command's module), so the
    line is written once; its description and examples come from ``engine/cli/help.py``."""
    return sub.add_parser(name, help=COMMANDS[name][1], **options)


class _Version(argparse.Action):
    """``--version``: read from the installed package's metadata only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("controlroom")
        except PackageNotFoundError:
            number = "unknown (not installed: pip install -e .)"
        print(f"controlroom {number}")
        parser.exit()


def build_parser(command: str | None = None, lazy: bool = False) -> argparse.ArgumentParser:
    """The whole ``controlroom`` parser. ``lazy``: load only the area of ``command`` (none when
    it is None); the other commands are placeholders that list themselves in ``--help`` but
    cannot parse. A command missing from ``COMMANDS`` loads every area."""
    parser = argparse.ArgumentParser(
        prog="controlroom",
        description="Operator's terminal control room: plant monitoring agents and factory-day "
        "planning.",
        epilog=examples_epilog(TOP_EXAMPLES) + "\n\n" + EXIT_STATUS,
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, print the traceback too (or set CONTROLROOM_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if not lazy or (command is not None and command not in COMMANDS):
        for area in AREAS:
            import_module(f"engine.cli.{area}").register(sub)
    else:
        if command is not None:
            import_module(f"engine.cli.{COMMANDS[command][0]}").register(sub)
        for name, (_area, line) in COMMANDS.items():
            if name not in sub.choices:
                sub.add_parser(name, help=line, add_help=False)
        # In the table's order, as a full build lists them (argparse keeps this list private).
        order = {name: i for i, name in enumerate(COMMANDS)}
        sub._choices_actions.sort(key=lambda a: order.get(a.dest, len(order)))
    decorate(parser)
    return parser


def command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: its first word not an option (``controlroom`` takes no
    option with a value), or None for ``controlroom --help`` and the like."""
    return next((a for a in argv if not a.startswith("-")), None)


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation while a command runs
(CPython's default: 700)."""


def main(argv: Sequence[str] | None = None) -> int:
    # A command spends most of its start-up importing modules and building classes: hundreds of
    # thousands of allocations that are never garbage, which the default threshold makes the
    # cyclic collector traverse again and again (about a tenth of `brief --llm off`, measured
    # with bench/cli_startup.py). Cycles are still collected, just less often; services set
    # their own policy once built (engine/services/base.py, tune_gc). Restored on return for
    # callers in the same process (tests).
    before = gc.get_threshold()
    gc.set_threshold(max(GC_YOUNG_THRESHOLD, before[0]), *before[1:])
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    finally:
        gc.set_threshold(*before)


def _main(argv: list[str]) -> int:
    parser = build_parser(command_in(argv), lazy=True)
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit:  # --help, --version or a usage error, printed: flush it here
            sys.stdout.flush()
            raise
    except BrokenPipeError:  # `controlroom --help | head -3`
        silence_stdout()
        return EXIT_BROKEN_PIPE
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return run(func, args)


def run(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a handler; every way it can fail ends here as one line and an exit status."""
    command = getattr(args, "_command", None) or "controlroom"
    prefix = f"controlroom {command}" if command != "controlroom" else command
    debug = bool(getattr(args, "debug", False))
    try:
        from engine.env_file import process_environ

        # The one read of the environment and .env for this command (a malformed .env fails
        # every command at once, naming file and line); handlers pass it on explicitly.
        args.environ = process_environ()
        debug = debug_enabled(debug, args.environ)
        code = int(func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        if stdout_is_broken():
            silence_stdout()
            return EXIT_BROKEN_PIPE
        return _fail(prefix, sys.exc_info()[1], debug)
    except Exception as exc:
        return _fail(prefix, exc, debug)


def _fail(prefix: str, exc: BaseException | None, debug: bool) -> int:
    assert exc is not None
    failure = classify(exc)
    if debug:
        import traceback

        traceback.print_exception(exc)
    if failure is None:
        hint = "" if debug else "; rerun with --debug for the traceback"
        print(
            f"{prefix}: internal error: {type(exc).__name__}: {exc}{hint}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(f"{prefix}: {failure.message}", file=sys.stderr)
    return failure.code


if __name__ == "__main__":
    sys.exit(main())
