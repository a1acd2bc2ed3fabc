"""CLI: ``controlroom serve NAME``, ``controlroom up``, ``controlroom report --logs DIR``."""

from __future__ import annotations

import argparse
import sys

from engine.cli import add_command
from engine.cli.checks import output_path, port_number

SERVICE_CHOICES = ("simulator", "monitor", "diagnosis", "ticket", "review")


def _broker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--broker",
        metavar="URL",
        help="mqtt://[user:pass@]host:port or mqtts://… (env CONTROLROOM_BROKER). Prefer the "
        "environment or .env for URLs with a password: the command line is visible to others.",
    )
    p.add_argument("--ca-file", help="CA bundle to verify an mqtts:// broker")
    p.add_argument("--cert-file", help="client certificate for mqtts:// (with --key-file)")
    p.add_argument("--key-file", help="client key for mqtts://")
    p.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="mqtts:// without verifying the broker's certificate (test brokers only)",
    )


def _sim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scenario",
        help="scenario name(s) in scenarios/ (comma-separated: one asset each) or a JSON file; "
        "the simulator starts playing it at once",
    )
    p.add_argument(
        "--speed", type=float, help="simulated seconds per wall second (default 1; 60 = a minute/s)"
    )
    p.add_argument("--assets", type=int, help="run N copies of the scenario as pump01..pumpNN")
    p.add_argument("--seed", type=int, help="base seed (copy i uses seed+i)")
    p.add_argument("--rate-hz", type=float, help="telemetry samples per simulated second (1)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "serve")
    p.add_argument("name", choices=SERVICE_CHOICES)
    p.add_argument("--port", type=port_number, help="HTTP port (default 8101..8105 by service)")
    p.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="run as replica I of N: own only the assets whose id hashes to I (monitor, diagnosis)",
    )
    _broker_options(p)
    _sim_options(p)
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=cmd_serve)

    p = add_command(sub, "up")
    _broker_options(p)
    _sim_options(p)
    p.add_argument("--host", help="HTTP bind address of the services (default 127.0.0.1)")
    p.set_defaults(func=cmd_up)

    p = add_command(sub, "report")
    p.add_argument(
        "--logs", required=True, metavar="DIR", help="the run's log directory (var/logs)"
    )
    p.add_argument(
        "--out", type=output_path, metavar="FILE", help="write the report here (default: stdout)"
    )
    p.add_argument(
        "--store",
        metavar="FILE|URL",
        help="the run's review store, for how each alarm was presented (shelved, out of service) "
        "in the alarm KPIs (default: controlroom.db beside the logs, if there)",
    )
    p.set_defaults(func=cmd_report)
    _register_broker(sub)


def _register_broker(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "broker")
    p.add_argument("action", choices=("init", "acl"), help="init: write files; acl: print the ACL")
    p.add_argument(
        "--mosquitto-dir",
        metavar="DIR",
        help="where to write passwd and acl (default var/broker/mosquitto)",
    )
    p.add_argument(
        "--owner",
        metavar="UID:GID",
        type=_owner,
        help="chown the Mosquitto files (the eclipse-mosquitto image runs as 1883:1883)",
    )
    p.set_defaults(func=cmd_broker)


def _owner(text: str) -> tuple[int, int]:
    """argparse ``type=`` for ``--owner UID[:GID]``."""
    uid, _, gid = text.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected UID:GID (numbers)") from None


def cmd_broker(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from engine.bus.acl import (
        OPERATORS_GROUP_ENV,
        CredentialsError,
        credentials_path,
        ensure_credentials,
        mosquitto_acl_file,
        write_mosquitto_auth,
    )

    if args.action == "acl":
        sys.stdout.write(mosquitto_acl_file())
        return 0
    try:
        # The operators' group as the stack gives it: without it, tui.json went back to 0600
        # and the colleagues' TUIs lost their identity.
        group = args.environ.get(OPERATORS_GROUP_ENV)
        creds = ensure_credentials(path := credentials_path(args.environ), group)
    except CredentialsError as exc:
        print(f"controlroom broker: {exc}", file=sys.stderr)
        return 1
    # A directory or owner that cannot be written or set is an OSError naming its path: the
    # CLI's one error line and exit status (engine/cli/errors.py).
    directory = Path(args.mosquitto_dir or path.parent / "mosquitto")
    files = write_mosquitto_auth(directory, creds)
    if args.owner:
        uid, gid = args.owner
        for f in (directory, *files):
            os.chown(f, uid, gid)
    print(f"credentials: {path} ({len(creds)} identities)", file=sys.stderr)
    print(f"mosquitto: {files[0]} and {files[1]}", file=sys.stderr)
    return 0


def _flags(args: argparse.Namespace) -> dict[str, object]:
    """The command-line flags as :class:`engine.settings.Config` fields (None: not given)."""
    return {
        "broker": getattr(args, "broker", None),
        "broker_ca_file": args.ca_file,
        "broker_cert_file": args.cert_file,
        "broker_key_file": args.key_file,
        "broker_insecure": args.insecure or None,
        "scenario": args.scenario,
        "speed": args.speed,
        "assets": args.assets,
        "seed": args.seed,
        "rate_hz": args.rate_hz,
        "host": args.host,
    }


def cmd_serve(args: argparse.Namespace) -> int:
    from engine.bus.broker import BrokerError, parse_broker_url
    from engine.services.base import configure_console
    from engine.services.registry import build_service
    from engine.services.settings import Settings, SettingsError, ensure_writable_var
    from engine.settings import Config

    try:
        environ = args.environ
        config = Config.load(
            environ,
            **_flags(args),
            **{f"{args.name}_port": args.port},
            log_level=args.log_level,
            shard=args.shard,
        )
        settings = Settings.of(args.name, config, environ)
        if settings.broker_url:
            parse_broker_url(settings.broker_url)
        if args.name == "simulator":
            _check_scenarios(settings.scenario)
    except (SettingsError, BrokerError, ValueError) as exc:
        print(f"controlroom serve: {exc}", file=sys.stderr)
        return 2
    try:
        ensure_writable_var(args.environ)
    except SettingsError as exc:
        print(f"controlroom serve {args.name}: {exc}", file=sys.stderr)
        return 1
    configure_console(settings.log_level)
    try:
        service = build_service(settings)
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        print(f"controlroom serve {args.name}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # var/ went away or became unwritable since the check
        print(f"controlroom serve {args.name}: {exc}", file=sys.stderr)
        return 1
    return service.run()


def _check_scenarios(spec: str | None) -> None:
    """Fail fast, naming the file and field, instead of a service dying at start-up."""
    if not spec:
        return
    from engine.plant.scenario import load_scenario

    for name in (n.strip() for n in spec.split(",")):
        if name:
            load_scenario(name)


def cmd_up(args: argparse.Namespace) -> int:
    import signal
    import threading

    from engine.bus.broker import BrokerError
    from engine.cli.checks import require_broker
    from engine.services.settings import Settings, SettingsError, ensure_writable_var
    from engine.services.stack import Stack, StackError
    from engine.settings import Config

    try:
        ensure_writable_var(args.environ)
    except SettingsError as exc:
        print(f"controlroom up: {exc}", file=sys.stderr)
        return 1
    try:
        # the flags reach the children through the environment the stack gives them, never by
        # writing this process's own
        flags = {
            "CONTROLROOM_BROKER_CA_FILE": args.ca_file,
            "CONTROLROOM_BROKER_CERT_FILE": args.cert_file,
            "CONTROLROOM_BROKER_KEY_FILE": args.key_file,
            "CONTROLROOM_BROKER_INSECURE": "1" if args.insecure else None,
        }
        child_env = {k: v for k, v in flags.items() if v}
        environ = {**args.environ, **child_env}
        # the children read the same environment: check it now, naming what is wrong
        config = Config.load(environ, **_flags(args))
        broker = args.broker or config.broker
        if broker and broker != "embedded":
            require_broker(broker)
        _check_scenarios(config.scenario)
        for name in SERVICE_CHOICES:
            Settings.from_env(name, environ)
        stack = Stack(
            broker_url=broker,
            scenario=args.scenario,
            speed=args.speed,
            assets=args.assets,
            seed=args.seed,
            rate_hz=args.rate_hz,
            host=config.host,
            env=child_env,
            environ=args.environ,
            console=True,
            supervise=True,
        )
    except (SettingsError, BrokerError, StackError, ValueError) as exc:
        print(f"controlroom up: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print(stack.start_broker().describe(), file=sys.stderr, flush=True)
        stack.start()
    except (StackError, BrokerError) as exc:
        print(f"controlroom up: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    for name, url in stack.urls.items():
        print(f"  {name:<10} {url}/health", file=sys.stderr)
    if not args.scenario:
        sim = stack.urls.get("simulator")
        print(
            f"  no scenario playing: curl -X POST {sim}/scenario/load -H 'content-type: "
            'application/json\' -d \'{"name": "chronic_wear"}\' && curl -X POST '
            f"{sim}/scenario/start",
            file=sys.stderr,
        )
    print(
        f"running (crashed services are restarted; state in {stack.var / 'stack.json'}); "
        "Ctrl-C stops everything",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            if stack.gave_up:
                print(f"controlroom up: {stack.gave_up}; stopping", file=sys.stderr)
                return 1
        return 0
    finally:
        print("stopping…", file=sys.stderr, flush=True)
        left = stack.stop()
        if left:
            print(f"controlroom up: not clean: {'; '.join(left)}", file=sys.stderr)
        else:
            print("stopped: no service left running, all ports released", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.services.live_report import LogError, build_report

    logs = Path(args.logs)
    store = args.store if args.store is None or "://" in args.store else Path(args.store)
    try:
        text = build_report(logs, store)
    except LogError as exc:
        print(f"controlroom report: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
