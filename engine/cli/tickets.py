"""``controlroom tickets``: review work orders from a shell, through the review service's API.

    controlroom tickets [list] [--state S] [--asset A]
    controlroom tickets show ID
    controlroom tickets approve ID [--note TEXT]
    controlroom tickets edit ID [--title T] [--body B | --body-file F] [--labels a,b] [--severity S]
    controlroom tickets close ID --reason resolved|false_positive|duplicate [--note TEXT]

The review service names you in the ticket's history from how you connect (your login on the
plant host, or your operator token elsewhere: see docs/tickets.md); ``--api`` and
``--token-file`` say where it is (``engine/cli/review_api.py``). ``--json`` prints the API's JSON.
Choices (states, severities, close reasons) come from the API's models.
Exit codes: 0 done, 1 the service could not be reached or failed, 2 the request was refused
(unknown ticket, not allowed in the ticket's state, bad value).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from engine.cli import review_api
from engine.cli.review_api import (
    SEVERITY_STYLE,
    Choices,
    add_api_command,
    add_choice,
    call,
    local_time,
)

if TYPE_CHECKING:  # the models only in annotations: `tickets --help` imports no pydantic
    from engine.schemas import ExternalRef, Ticket

STATE_STYLE = {"open": "bold", "approved": "cyan", "closed": "dim"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    action = add_api_command(
        sub,
        "tickets",
        {"func": cmd_tickets, "action": "list", "state": "active", "asset": None, "limit": 200},
    )

    a = action("list", "tickets, newest first")
    add_choice(
        a,
        "--state",
        Choices("engine.http_schemas", "TICKET_STATE_FILTERS", "all"),
        "active = open or approved (default)",
        default="active",
    )
    a.add_argument("--asset", help="only this asset")
    a.add_argument("--limit", type=int, default=200)

    a = action("show", "one ticket with its history")
    a.add_argument("ticket_id", metavar="ID", help="e.g. T-0003 or 3")

    a = action("approve", "approve an open ticket")
    a.add_argument("ticket_id", metavar="ID")
    a.add_argument("--note")

    a = action("edit", "change title, body, labels or severity")
    a.add_argument("ticket_id", metavar="ID")
    a.add_argument("--title")
    body = a.add_mutually_exclusive_group()
    body.add_argument("--body")
    body.add_argument("--body-file", metavar="FILE", help="read the body from FILE (- = stdin)")
    a.add_argument("--labels", help="comma-separated; replaces the labels")
    add_choice(a, "--severity", Choices("engine.schemas", "SEVERITIES"))

    a = action("close", "close with a reason")
    a.add_argument("ticket_id", metavar="ID")
    add_choice(a, "--reason", Choices("engine.schemas", "CLOSE_REASONS"), required=True)
    a.add_argument("--note")


def cmd_tickets(args: argparse.Namespace) -> int:
    action = args.action or "list"
    try:
        changes = _changes(args) if action == "edit" else {}
    except (OSError, ValueError) as exc:  # --body-file unreadable, nothing to edit
        print(f"controlroom tickets {action}: {exc}", file=sys.stderr)
        return 2

    async def run(client: Any) -> Any:
        if action == "list":
            state = None if args.state == "all" else args.state
            return await client.tickets(state, args.asset, args.limit)
        if action == "show":
            return await client.ticket(args.ticket_id)
        if action == "approve":
            return await client.approve(args.ticket_id, args.note)
        if action == "edit":
            return await client.edit(args.ticket_id, **changes)
        return await client.close(args.ticket_id, args.reason, args.note)

    code, data = call(args, f"tickets {action}", run)
    if code or data is None:  # failed, or printed as --json
        return code
    if action == "list":
        _print_list(data, args)
    else:
        _print_ticket(data, verb=None if action == "show" else action)
    return 0


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.title is not None:
        changes["title"] = args.title
    if args.body is not None:
        changes["body"] = args.body
    if args.body_file is not None:
        with open(args.body_file if args.body_file != "-" else 0, encoding="utf-8") as f:
            changes["body"] = f.read()
    if args.labels is not None:
        changes["labels"] = [x.strip() for x in args.labels.split(",") if x.strip()]
    if args.severity is not None:
        changes["severity"] = args.severity
    if not changes:
        raise ValueError("nothing to edit: give --title, --body, --labels or --severity")
    return changes


def _print_list(tickets: list[Ticket], args: argparse.Namespace) -> None:
    from rich.table import Table
    from rich.text import Text

    from tui.safe import clean

    console = review_api.console()
    if not tickets:
        where = f" for {args.asset}" if args.asset else ""
        console.print(Text(f"no {args.state if args.state != 'all' else ''} tickets{where}"))
        return
    mirrored = any(t.external for t in tickets)
    systems = sorted({t.external.system for t in tickets if t.external} - {""})
    # The column is named after the mirror ("GITHUB", "SALESFORCE"). After a switch from one to
    # the other, old tickets keep their old refs: the column is then "MIRROR" and cells say which.
    mixed = len(systems) > 1
    mirror = "MIRROR" if len(systems) != 1 else clean(systems[0], single_line=True).upper()[:20]
    table = Table(box=None, header_style="bold", pad_edge=False)
    columns = ["ID", "STATE", "SEV", "ASSET", "CAUSE", "SEEN", "UPDATED", "TITLE"]
    rows = []
    for t in tickets:
        row = [
            Text(clean(t.ticket_id, single_line=True)),
            Text(t.state, style=STATE_STYLE.get(t.state, "")),
            Text(t.severity, style=SEVERITY_STYLE.get(t.severity, "")),
            Text(clean(t.asset, single_line=True)),
            Text(t.root_cause),
            Text(f"{t.occurrences}×"),
            Text(local_time(t.updated_at)),
            Text(clean(t.title, single_line=True)),
        ]
        if mirrored:
            ext = t.external
            ref = _ext_label(ext)
            if mixed and ext is not None and ext.system:
                ref = f"{clean(ext.system, single_line=True)} {ref}".strip()
            error = bool(ext is not None and ext.error)
            cell = f"{ref} error".strip() if error else ref
            row.append(Text(cell, style="red" if error else ""))
        rows.append(row)
    # One line per ticket: columns keep their full width and the title is cut; on a narrow
    # terminal the least useful columns go first.
    names = [*columns, mirror] if mirrored else columns
    widths = {c: max([len(c), *(r[i].cell_len for r in rows)]) for i, c in enumerate(names)}
    keep = list(names)
    for optional in ("UPDATED", "SEEN", mirror, "CAUSE"):
        fixed = sum(widths[c] for c in keep if c != "TITLE") + 2 * (len(keep) - 1)
        if console.width - fixed >= min(widths["TITLE"], 24) or optional not in keep:
            continue
        keep.remove(optional)
    fixed = sum(widths[c] for c in keep if c != "TITLE") + 2 * (len(keep) - 1)
    widths["TITLE"] = max(10, min(widths["TITLE"], console.width - fixed))
    for col in keep:
        table.add_column(col, no_wrap=True, overflow="ellipsis", width=widths[col])
    for row in rows:
        table.add_row(*(cell for cell, col in zip(row, names, strict=True) if col in keep))
    console.print(table)
    console.print(Text(f"{len(tickets)} ticket(s)", style="dim"))


def _ext_label(ext: ExternalRef | None) -> str:
    """A GitHub issue reads "#12"; a Salesforce Case Id is shown as is."""
    from tui.safe import clean

    ref = clean(str((ext.id if ext else None) or ""), single_line=True)
    return f"#{ref}" if ref.isdigit() else ref


def _print_ticket(t: Ticket, verb: str | None) -> None:
    from rich.markdown import Markdown
    from rich.text import Text

    from tui.safe import clean

    console = review_api.console()
    if verb:
        done = {"approve": "approved", "edit": "edited", "close": "closed"}[verb]
        console.print(Text(f"{t.ticket_id} {done}", style="bold green"))
    state = f"{t.state} ({t.close_reason})" if t.close_reason else t.state
    rest = f"{clean(t.asset, single_line=True)}  {t.root_cause} ({t.category})"
    console.print(
        review_api.head_line(t.ticket_id, state, STATE_STYLE.get(t.state, ""), t.severity, rest)
    )
    console.print(Text(clean(t.title, single_line=True), style="bold"))
    facts = [
        ("labels", ", ".join(t.labels)),
        ("occurrences", str(t.occurrences)),
        ("alerts", ", ".join(t.alert_ids[-5:])),
        ("created", local_time(t.created_at, seconds=True)),
        ("updated", local_time(t.updated_at, seconds=True)),
    ]
    ext = t.external
    if ext is not None:
        system = clean(ext.system or "mirror", single_line=True)[:20]
        facts.append((system, ext.url or _ext_label(ext)))
        if ext.error:
            facts.append((f"{system} error", ext.error))
    if t.close_note:
        facts.append(("close note", t.close_note))
    review_api.print_facts(console, facts, 13)
    if verb is None:
        console.print()
        console.print(Markdown(clean(t.body)))
        console.print()
        console.print(Text("history", style="bold"))
        for h in t.history:
            console.print(review_api.history_line(h.at, h.who, h.action, 22, h.detail))
