"""The ``controlroom`` command.

Each area registers its own subcommands from a module of this package; ``register`` functions
must stay cheap (no heavy imports at module level) so ``controlroom --help`` is instant. A
handler receives the parsed ``argparse.Namespace`` and returns the process exit code: 0 success,
1 runtime failure, 2 invalid input (a bad file, an unknown name).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.cli import alarms, factory, live, operators, plant, tickets, ui

AREAS = (ui, plant, live, tickets, alarms, operators, factory)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="controlroom",
        description="Operator's terminal control room: plant monitoring agents and factory-day "
        "planning.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for area in AREAS:
        area.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from engine.services.settings import SettingsError, load_env_file

    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        load_env_file()  # every command reads the same .env (see .env.example)
    except (SettingsError, OSError) as exc:
        print(f"controlroom: {exc}", file=sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
