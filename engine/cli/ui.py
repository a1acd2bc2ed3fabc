"""CLI subcommands of the terminal UI: ``controlroom demo`` and ``controlroom tui``."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TYPE_CHECKING

from engine.cli import add_command
from engine.cli.factory import add_llm_option

if TYPE_CHECKING:
    from tui.settings import UiSettings

DEMO_SCENARIO = "demo_bearing"
DEMO_SPEED = 240.0
"""Simulated seconds per wall second in the demo. ``demo_bearing``'s bearing starts wearing 11
minutes into the shift and is first alarmed about 21 plant minutes in (the monitor learns the
pump for its first 10), so at x240 the alarm comes about 5 s after the simulator starts (the
scenario line counts it down; measured from launch: ``bench/demo_first_alarm.py``); the wear
then escalates over the next minute and a half of wall time, and the four-hour run ends after
one minute."""
MAX_DEMO_ASSETS = 256
"""``--assets`` bound for the demo (the simulator's own bound applies too)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to ``controlroom``."""
    demo = add_command(sub, "demo")
    demo.add_argument(
        "--scenario", default=DEMO_SCENARIO, help=f"scenario name or file (default {DEMO_SCENARIO})"
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=DEMO_SPEED,
        help=f"simulated seconds per second (default {DEMO_SPEED:g})",
    )
    demo.add_argument(
        "--assets",
        type=int,
        default=1,
        metavar="N",
        help="pumps to simulate (faults spread across them); the fleet screen (3) shows them all",
    )
    demo.add_argument(
        "--broker",
        metavar="URL",
        help="use this broker (mqtt://host:port); 'embedded' always starts one "
        "(default: the one on 127.0.0.1:1883 if any, else an embedded one)",
    )
    add_llm_option(demo, "factory screen agents (default auto)")
    demo.set_defaults(func=cmd_demo)

    tui = add_command(sub, "tui")
    tui.add_argument(
        "--broker", metavar="URL", help="MQTT broker (default: the one the services use)"
    )
    tui.add_argument(
        "--api-host",
        default="127.0.0.1",
        metavar="HOST",
        help="host of the services' HTTP APIs (default 127.0.0.1)",
    )
    add_llm_option(tui, "factory screen agents (default auto)")
    tui.add_argument("--factory", metavar="FILE", help="factory config for the factory screen")
    tui.set_defaults(func=cmd_tui)


def _need_terminal() -> bool:
    if sys.stdin.isatty() and sys.stdout.isatty():
        return True
    print(
        "controlroom: the TUI needs an interactive terminal (stdin and stdout a tty)",
        file=sys.stderr,
    )
    return False


def _warm_import(module: str) -> None:
    """Import ``module`` ahead of its use; a failure is left for the real import to report."""
    from contextlib import suppress
    from importlib import import_module

    with suppress(Exception):  # the real import, in the main thread, reports it
        import_module(module)


def _run_app(settings: UiSettings) -> None:
    from tui.app import ControlRoomApp

    app = ControlRoomApp(settings, exit_on_signals=True)
    # No mouse capture: over SSH the terminal keeps its own selection (copy a ticket id).
    app.run(mouse=False)


def cmd_tui(args: argparse.Namespace) -> int:
    from engine.cli.checks import broker_address
    from tui.settings import UiSettings, service_urls

    if args.broker:
        broker_address(args.broker)
    if not _need_terminal():
        return 1
    from engine.bus.acl import credentials_path
    from engine.paths import var_dir
    from engine.services.stack import STATUS_FILE

    local = args.api_host in ("127.0.0.1", "localhost", "::1")
    var = var_dir(args.environ)
    settings = UiSettings(
        broker_url=args.broker,
        service_urls=service_urls(args.api_host, args.environ),
        llm=args.llm,
        factory=args.factory,
        environ=args.environ,
        stack_file=var / STATUS_FILE if local else None,
        var=var,
        credentials=credentials_path(args.environ),
    )
    _run_app(settings)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from engine.bus.broker import BrokerError, redact_url
    from engine.cli.checks import require_broker
    from engine.plant.scenario import ScenarioError, load_scenario
    from engine.services.stack import STATUS_FILE, Stack, StackError
    from tui.settings import UiSettings

    try:
        load_scenario(args.scenario)
    except (ScenarioError, OSError) as exc:
        print(f"controlroom demo: {exc}", file=sys.stderr)
        return 2
    if args.speed <= 0:
        print("controlroom demo: --speed must be > 0", file=sys.stderr)
        return 2
    if not 1 <= args.assets <= MAX_DEMO_ASSETS:
        print(f"controlroom demo: --assets must be 1..{MAX_DEMO_ASSETS}", file=sys.stderr)
        return 2
    if args.broker and args.broker != "embedded":
        require_broker(args.broker)
    if not _need_terminal():
        return 1

    # What the scenario line announces ("first alarm expected in ~5 s") is a short replay: run it
    # while the services start, so the TUI's first frame can say it.
    from tui.forecast import forecast

    threading.Thread(target=forecast, args=(args.scenario, None), daemon=True).start()
    # Importing the TUI (Textual and our screens) costs about a second of CPU; done here, it
    # overlaps the services' start instead of following it (bench/demo_first_alarm.py).
    threading.Thread(target=_warm_import, args=("tui.app",), daemon=True).start()
    stack = Stack(
        broker_url=args.broker,
        scenario=args.scenario,
        speed=args.speed,
        assets=args.assets if args.assets > 1 else None,
        environ=args.environ,
        supervise=True,
    )
    fleet = f", {args.assets} pumps" if args.assets > 1 else ""
    print(
        "controlroom demo: starting the broker and five services "
        f"({args.scenario} ×{args.speed:g}{fleet})…",
        file=sys.stderr,
    )
    try:
        stack.start()
    except (StackError, BrokerError) as exc:
        print(f"controlroom demo: {exc}", file=sys.stderr)
        return 1
    try:
        assert stack.broker is not None
        print(
            f"controlroom demo: broker {stack.broker.kind} at {redact_url(stack.broker.url)}; "
            f"logs in {stack.var / 'logs'}",
            file=sys.stderr,
        )
        _run_app(
            UiSettings(
                broker_url=stack.broker.url,
                service_urls=stack.urls,
                llm=args.llm,
                stack_file=stack.var / STATUS_FILE,
                environ=args.environ,
                var=stack.var,
                credentials=stack.credentials_file,
            )
        )
    finally:
        print("controlroom demo: stopping services and broker…", file=sys.stderr)
        stack.stop()
        print("controlroom demo: stopped; every port released.", file=sys.stderr)
    return 0
