"""``controlroom operators``: who may act through the review API from another machine.

    controlroom operators add NAME [--replace]   # a token, shown once, in var/tokens/NAME.token
    controlroom operators list
    controlroom operators remove NAME            # revoke (effective at once, no restart)
    controlroom operators whoami [--api URL]     # whom the review service sees on this connection

On the plant host nobody needs a token: the review service names whoever connects to its Unix
socket by their login (see ``engine/auth``). Tokens are for TUIs elsewhere.
"""

from __future__ import annotations

import argparse
import sys

from engine.cli import add_command
from engine.cli.review_api import call, common_options


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "operators")
    p.set_defaults(func=cmd_operators, action=None)
    acts = p.add_subparsers(dest="action", metavar="ACTION")
    a = acts.add_parser("add", help="make a token for NAME (printed once)")
    a.add_argument("name", metavar="NAME", help="lowercase login-style name, e.g. alice")
    a.add_argument("--replace", action="store_true", help="replace NAME's token (revokes the old)")
    acts.add_parser("list", help="operators with a token")
    a = acts.add_parser("remove", help="revoke NAME's token")
    a.add_argument("name", metavar="NAME")
    acts.add_parser("whoami", parents=[common_options()], help="whom the review service sees")


def cmd_operators(args: argparse.Namespace) -> int:
    from engine.auth.tokens import TokenRegistry
    from engine.paths import var_dir

    if args.action is None:
        print("controlroom operators: give an action (add, list, remove, whoami)", file=sys.stderr)
        return 2
    if args.action == "whoami":
        code, who = call(args, "operators whoami", lambda client: client.whoami())
        if who is not None:  # None: failed, or printed as --json
            print(f"{who.operator} (via {who.via.replace('_', ' ')})")
        return code
    registry = TokenRegistry(var_dir(args.environ) / "operators.json")
    try:
        if args.action == "add":
            token, path = registry.add(args.name, replace=args.replace)
            print(token)
            print(
                f"token for {args.name} written to {path} (mode 0600). On the operator's machine: "
                "CONTROLROOM_TOKEN_FILE=<copy of it> controlroom tui --api-host <plant host>",
                file=sys.stderr,
            )
        elif args.action == "remove":
            registry.remove(args.name)
            print(f"{args.name}: token revoked")
        else:
            for name in registry.names():
                print(name)
    except ValueError as exc:
        print(f"controlroom operators {args.action}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"controlroom operators {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
