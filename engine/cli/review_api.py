"""What ``controlroom tickets``, ``alarms`` and ``operators whoami`` share: the options that
say where the review API is, and running one call of the client with the CLI's exit codes
(0 done, 1 the service could not be reached or failed, 2 refused: unknown id, not allowed in
this state, bad value)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from importlib import import_module
from typing import Any, overload

from engine.cli import add_command

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}
"""Ticket severities and alarm priorities (the same four words) on a terminal."""


class Choices(Sequence[str]):
    """An option's choices, read from the API's models (``engine/http_schemas.py``,
    ``engine/schemas.py``) the first time argparse needs them: when the option is given or its
    help is shown. So ``controlroom tickets --help`` never imports pydantic. Give the option a
    ``metavar`` (argparse would otherwise list the choices when the option is added) and say
    ``%(choices)s`` in its help."""

    def __init__(self, module: str, name: str, *extra: str) -> None:
        self._where = (module, name)
        self._extra = extra
        self._values: tuple[str, ...] | None = None

    def _load(self) -> tuple[str, ...]:
        if self._values is None:
            module, name = self._where
            self._values = (*getattr(import_module(module), name), *self._extra)
        return self._values

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return self._load()[i]

    def __len__(self) -> int:
        return len(self._load())

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __contains__(self, value: object) -> bool:
        return value in self._load()


def add_choice(
    parser: argparse.ArgumentParser,
    flag: str,
    choices: Choices,
    note: str = "",
    **kw: Any,
) -> None:
    """An option whose values come from the models, listed in its help when it is shown."""
    metavar = flag.lstrip("-").upper().replace("-", "_")
    help_text = "%(choices)s" + (f"; {note}" if note else "")
    parser.add_argument(flag, choices=choices, metavar=metavar, help=help_text, **kw)


def add_api_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    defaults: dict[str, Any],
) -> Callable[[str, str], argparse.ArgumentParser]:
    """A review-API command (``tickets``, ``alarms``) with the common options and ``defaults``.
    Returns ``action(name, help)``, which adds one of its actions: the action takes the common
    options too, so they may come before or after it."""
    p = add_command(sub, name, parents=[common_options()])
    p.set_defaults(**defaults)
    acts = p.add_subparsers(dest="action", metavar="ACTION")
    common = common_options()

    def action(verb: str, about: str) -> argparse.ArgumentParser:
        return acts.add_parser(verb, parents=[common], help=about)

    return action


def common_options() -> argparse.ArgumentParser:
    """Accepted before or after the action; SUPPRESS so a sub-parser does not reset a value
    given before it."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="review service: http(s)://HOST:PORT or unix:/path/to/review.sock "
        "(env CONTROLROOM_REVIEW_URL / CONTROLROOM_REVIEW_SOCKET; default: this host's)",
    )
    common.add_argument(
        "--token-file",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="operator token for a remote service (env CONTROLROOM_TOKEN_FILE; "
        "not needed on the plant host)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON"
    )
    return common


def call(
    args: argparse.Namespace, command: str, fn: Callable[[Any], Awaitable[Any]]
) -> tuple[int, Any]:
    """Run ``fn(client)`` against the review API: ``(0, its result)``; ``(0, None)`` when
    ``--json`` asked for the result and it is printed already; or the error printed and
    ``(exit code, None)``."""

    from engine.cli.checks import http_url
    from engine.review_client import ApiError, ReviewClient, resolve_endpoint

    environ = args.environ  # resolved once by the CLI's entry (engine.cli.run)
    api = getattr(args, "api", None)
    if api and not api.startswith("unix:"):
        http_url(api.rstrip("/"), "--api")  # a bad URL: exit 2 naming the flag
    elif not api and environ.get("CONTROLROOM_REVIEW_URL"):
        http_url(environ["CONTROLROOM_REVIEW_URL"].rstrip("/"), "CONTROLROOM_REVIEW_URL")

    async def run() -> Any:
        token_file = getattr(args, "token_file", None)
        endpoint = resolve_endpoint(api, token_file=token_file, environ=environ)
        async with ReviewClient(endpoint) as client:
            return await fn(client)

    try:
        result = asyncio.run(run())
    except ApiError as exc:
        print(f"controlroom {command}: {exc.detail}", file=sys.stderr)
        return exc.exit_code, None
    except (OSError, ValueError) as exc:  # an unreadable token or body file
        print(f"controlroom {command}: {exc}", file=sys.stderr)
        return 2, None
    if getattr(args, "json", False):
        print_json(result)
        return 0, None
    return 0, result


def print_json(data: Any) -> None:
    from pydantic import BaseModel

    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    print(json.dumps(data, indent=2, ensure_ascii=False))


def local_time(when: Any, seconds: bool = False) -> str:
    """A UTC timestamp (datetime or ISO text) in the operator's local time."""
    from datetime import datetime

    if when is None:
        return ""
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            return str(when)
    stamp: datetime = when
    return stamp.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%m-%d %H:%M")


# ---- printing (rich is imported when something is printed, never for --help) -----------------


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def new_table(*columns: str) -> Any:
    """A borderless table, one line per row; ``columns`` are added without a fixed width."""
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in columns:
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    return table


def head_line(ident: str, state: str, state_style: str, level: str, rest: str) -> Any:
    """``ID  state  severity  rest``: the first line of a ticket or an alarm."""
    from rich.text import Text

    from tui.safe import clean

    head = Text()
    head.append(clean(ident, single_line=True), style="bold")
    head.append("  ")
    head.append(state, style=state_style)
    head.append("  ")
    head.append(level, style=SEVERITY_STYLE.get(level, ""))
    head.append(f"  {rest}")
    return head


def print_facts(out: Any, facts: list[tuple[str, str]], width: int) -> None:
    """``key: value`` lines, keys right-aligned to ``width``; empty values are left out."""
    from rich.text import Text

    from tui.safe import clean

    for key, value in facts:
        if value:
            line = Text(f"{key:>{width}}: ", style="dim")
            line.append(clean(str(value), single_line=True))
            out.print(line)


def history_line(at: Any, who: str, action: str, action_width: int, detail: str) -> Any:
    """One entry of a ticket's or an alarm's history (the caller may append to it)."""
    from rich.text import Text

    from tui.safe import clean

    line = Text(f"  {local_time(at, seconds=True)}  ", style="dim")
    line.append(f"{clean(who, single_line=True):<14} {action:<{action_width}}")
    line.append(clean(detail, single_line=True))
    return line
