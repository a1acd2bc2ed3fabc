"""``controlroom alarms``: the alarm lifecycle from a shell, through the review service's API.

    controlroom alarms [list] [--state S] [--asset A] [--priority P] [--json]
    controlroom alarms show ID
    controlroom alarms ack ID [--note N]
    controlroom alarms shelve ID (--minutes M | --until-clear) [--note N]
    controlroom alarms unshelve ID [--note N]
    controlroom alarms out-of-service ASSET --reason R [--never-alarmed]   (maintenance)
    controlroom alarms in-service ASSET                     (back from maintenance)
    controlroom alarms assets
    controlroom alarms kpis [--hours H] [--operators N]

``list --json`` prints the API's objects: ``alarm_id``, ``asset``, ``priority``, ``active``,
``acknowledged``, ``shelved_until`` (null or a UTC time), ``history`` and the rest of the
``Alarm`` model (``engine/http_schemas.py``). Choices come from the same models. Options and
exit codes as ``controlroom tickets`` (``engine/cli/review_api.py``).
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.review_api import (
    SEVERITY_STYLE,
    Choices,
    add_api_command,
    add_choice,
    call,
    console,
    head_line,
    history_line,
    local_time,
    new_table,
    print_facts,
)

STATE_STYLE = {
    "unacknowledged": "bold red",
    "returned_unacknowledged": "yellow",
    "latched": "bold yellow",
    "acknowledged": "",
    "normal": "dim",
    "shelved": "cyan",
    "suppressed": "magenta",
    "out_of_service": "blue",
}
DONE = {
    "ack": "acknowledged",
    "shelve": "shelved",
    "unshelve": "unshelved",
    "out-of-service": "out of service",
    "in-service": "back in service",
}


def _minutes(text: str) -> int:
    from engine.http_schemas import MAX_SHELVE_MINUTES

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if not 1 <= value <= MAX_SHELVE_MINUTES:
        raise argparse.ArgumentTypeError(f"shelve for 1 to {MAX_SHELVE_MINUTES} minutes")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    action = add_api_command(
        sub,
        "alarms",
        {"func": cmd_alarms, "action": "list", "state": "open", "asset": None, "priority": None},
    )

    a = action("list", "alarms, newest first")
    add_choice(
        a,
        "--state",
        Choices("engine.http_schemas", "ALARM_FILTERS"),
        "open = all but normal (default), active, unacked, all, or one state",
        default="open",
    )
    a.add_argument("--asset", help="only this asset")
    add_choice(a, "--priority", Choices("engine.http_schemas", "PRIORITIES"))

    a = action("show", "one alarm with its history")
    a.add_argument("alarm_id", metavar="ID")

    a = action("ack", "acknowledge")
    a.add_argument("alarm_id", metavar="ID")
    a.add_argument("--note")

    a = action("shelve", "shelve for a time, or until it clears")
    a.add_argument("alarm_id", metavar="ID")
    how = a.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--minutes", type=_minutes, metavar="M", help="how long (at most one 8-hour shift)"
    )
    how.add_argument("--until-clear", action="store_true", help="until it returns to normal")
    a.add_argument("--note")

    a = action("unshelve", "end a shelve now")
    a.add_argument("alarm_id", metavar="ID")
    a.add_argument("--note")

    a = action("out-of-service", "take an asset out of service (maintenance)")
    a.add_argument("asset", metavar="ASSET")
    a.add_argument("--reason", required=True, help="why (shown on every alarm of the asset)")
    a.add_argument(
        "--never-alarmed",
        action="store_true",
        help="the asset has raised no alarm yet (without it, a name no alarm carries is refused)",
    )

    a = action("in-service", "return an asset to service")
    a.add_argument("asset", metavar="ASSET")

    action("assets", "assets: out of service, open alarms")

    a = action("kpis", "EEMUA 191 / ISA-18.2 KPIs over the last hours")
    a.add_argument("--hours", type=float, default=24.0, help="plant hours (default 24)")
    a.add_argument("--operators", type=int, default=1, help="operators sharing the load")


def cmd_alarms(args: argparse.Namespace) -> int:
    action = args.action or "list"

    async def run(client: Any) -> Any:
        if action == "list":
            return await client.alarms(args.state, args.asset, args.priority)
        if action == "show":
            return await client.alarm(args.alarm_id)
        if action == "ack":
            return await client.ack(args.alarm_id, args.note)
        if action == "shelve":
            return await client.shelve(
                args.alarm_id, args.minutes, until_clear=args.until_clear, note=args.note
            )
        if action == "unshelve":
            return await client.unshelve(args.alarm_id, args.note)
        if action == "out-of-service":
            return await client.out_of_service(
                args.asset, True, args.reason, never_alarmed=args.never_alarmed
            )
        if action == "in-service":
            return await client.out_of_service(args.asset, False)
        if action == "assets":
            return await client.assets()
        return await client.kpis(args.hours, args.operators)

    code, data = call(args, f"alarms {action}", run)
    if code or data is None:  # failed, or printed as --json
        return code
    if action == "list":
        _print_list(data, args)
    elif action == "assets":
        _print_assets(data)
    elif action == "kpis":
        from engine.alarms.kpis import render_markdown

        print(render_markdown(data), end="")
    elif action in ("out-of-service", "in-service"):
        _print_assets([data], verb=DONE[action])
    else:
        _print_alarm(data, verb=DONE.get(action))
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _shelf(a: Any) -> str:
    if a.shelved == "until_clear":
        return "until clear"
    return local_time(a.shelved_until) if a.shelved_until else ""


COLUMNS = ("ID", "STATE", "PRI", "ASSET", "SIGNALS", "RAISED", "ACK BY", "SHELVED")
SIGNALS = COLUMNS.index("SIGNALS")
GIVE_WAY = ("ACK BY", "RAISED", "SHELVED")
"""On a narrow terminal SIGNALS shrinks, then these columns go, in this order, then SIGNALS.
ID, state, priority and asset are never cut: the operator types the ID to act on the alarm."""
SIGNALS_MIN = 10


def _fit(width: int, rows: list[list[Any]]) -> tuple[list[int], int]:
    """The columns that fit ``width`` (indices into ``COLUMNS``) and the width SIGNALS gets."""
    natural = [max(len(h), *(r[i].cell_len for r in rows)) for i, h in enumerate(COLUMNS)]

    def room(cols: list[int]) -> int:  # what is left for SIGNALS
        return int(width - sum(natural[i] for i in cols if i != SIGNALS) - 2 * (len(cols) - 1))

    shown = list(range(len(COLUMNS)))
    if room(shown) >= natural[SIGNALS]:
        return shown, natural[SIGNALS]
    shown = [i for i in shown if i <= SIGNALS or any(r[i].plain for r in rows)]  # empty ones
    for name in GIVE_WAY:
        if room(shown) >= min(SIGNALS_MIN, natural[SIGNALS]):
            break
        if COLUMNS.index(name) in shown:
            shown.remove(COLUMNS.index(name))
    if room(shown) < min(SIGNALS_MIN, natural[SIGNALS]):
        shown.remove(SIGNALS)
    return shown, min(natural[SIGNALS], room(shown))


def _print_list(alarms: list[Any], args: argparse.Namespace) -> None:
    from rich.text import Text

    from tui.safe import clean

    out = console()
    if not alarms:
        where = f" for {args.asset}" if args.asset else ""
        out.print(Text(f"no alarms in state {args.state}{where}"))
        return
    rows = [
        [
            Text(clean(a.alarm_id, single_line=True)),
            Text(
                a.state + (" chattering" if a.chattering else ""),
                style=STATE_STYLE.get(a.state, ""),
            ),
            Text(a.priority, style=SEVERITY_STYLE.get(a.priority, "")),
            Text(clean(a.asset, single_line=True)),
            Text(clean(", ".join(a.signals), single_line=True)),
            Text(local_time(a.raised_at)),
            Text(clean(a.acknowledged_by or "", single_line=True)),
            Text(_shelf(a)),
        ]
        for a in alarms
    ]
    shown, signals_width = _fit(out.width, rows)
    table = new_table(*(COLUMNS[i] for i in shown))
    if SIGNALS in shown:
        table.columns[shown.index(SIGNALS)].max_width = signals_width
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    out.print(table)
    hidden = [c for i, c in enumerate(COLUMNS) if i not in shown and any(r[i].plain for r in rows)]
    tail = f"; not shown: {', '.join(hidden)} (alarms show ID)"
    out.print(Text(f"{len(alarms)} alarm(s){tail if hidden else ''}", style="dim"))


def _print_alarm(a: Any, verb: str | None) -> None:
    from rich.text import Text

    from tui.safe import clean

    out = console()
    if verb:
        out.print(Text(f"{clean(a.alarm_id, single_line=True)} {verb}", style="bold green"))
    rest = f"{clean(a.asset, single_line=True)}  {clean(a.source, single_line=True)}"
    out.print(head_line(a.alarm_id, a.state, STATE_STYLE.get(a.state, ""), a.priority, rest))
    facts = [
        ("active", "yes" if a.active else "no (returned to normal)"),
        ("acknowledged", f"by {a.acknowledged_by}" if a.acknowledged_by else _yes(a.acknowledged)),
        ("latched", "yes" if a.latched else ""),
        ("chattering", "yes" + (", suppressed" if a.suppressed else "") if a.chattering else ""),
        ("shelved", f"{_shelf(a)} by {a.shelved_by}" if a.shelved else ""),
        ("out of service", a.out_of_service_reason or "" if a.out_of_service else ""),
        ("raised", local_time(a.raised_at, seconds=True)),
        ("cleared", local_time(a.cleared_at, seconds=True)),
    ]
    print_facts(out, facts, 15)
    if verb is None:
        out.print(Text("history", style="bold"))
    events = a.history if verb is None else a.history[-1:]
    for e in events:
        line = history_line(e.at, e.who, e.action, 19, e.detail)
        if e.note:
            line.append(f"  “{clean(e.note, single_line=True)}”", style="italic")
        out.print(line)


def _print_assets(assets: list[Any], verb: str | None = None) -> None:
    from rich.text import Text

    from tui.safe import clean

    out = console()
    if verb and assets:
        out.print(Text(f"{clean(assets[0].asset, single_line=True)} {verb}", style="bold green"))
    table = new_table("ASSET", "SERVICE", "OPEN", "UNACK", "SINCE", "BY", "REASON")
    for s in assets:
        table.add_row(
            Text(clean(s.asset, single_line=True)),
            Text(
                "out of service" if s.out_of_service else "in service",
                style="blue" if s.out_of_service else "",
            ),
            Text(str(s.open_alarms)),
            Text(str(s.unacknowledged)),
            Text(local_time(s.since)),
            Text(clean(s.by or "", single_line=True)),
            Text(clean(s.reason or "", single_line=True)),
        )
    out.print(table)
