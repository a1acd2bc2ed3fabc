"""The plant feeds the factory: open work orders on plant assets become factory scenarios.

A factory config maps a machine to the plant asset it is (``machines: - {id: M2, ...,
asset: pump01}``). An open or approved work order (``engine.schemas.Ticket``) on a mapped asset
says the machine needs a repair; its severity and recommended action set the window:

- **critical**, or a work order whose actions say outright to stop the machine ("Stop the
  pump ...", not "if ... stop the pump"): the machine is **down now** for the repair time — an
  outage (a fact; not something to move).
- **high**: the repair must happen today: **planned maintenance** of the repair time, placed
  where it costs the day least. Its timing is the planner's choice; the briefing says so.
- **medium / low**, or a fault that needs no stop (an instrument to calibrate): no stop today;
  the briefing cites the work order and says so.

Repair times by root cause (:data:`REPAIRS`) can be overridden per factory
(``repair_hours: {bearing_wear: 6}``). Reading the tickets is :func:`fetch_tickets`, the one
function that knows where they come from (the review API's ``GET /tickets`` or a store).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from engine.factory.futures import cheapest_window, down_spec
from engine.factory.models import FactoryConfig
from engine.factory.results import TicketCitation
from engine.factory.scenario import ScenarioSpec

if TYPE_CHECKING:
    from engine.schemas import Ticket

REPAIRS: dict[str, tuple[int, str]] = {
    "bearing_wear": (4, "bearing replacement"),
    "clogging": (2, "strainer clean"),
    "valve_stuck": (3, "valve repair"),
    "sensor_drift": (0, "transmitter calibration, no stop needed"),
    "sensor_stuck": (0, "transmitter check, no stop needed"),
    "noise_burst": (0, "wiring and grounding check, no stop needed"),
    "unknown": (2, "inspection"),
}
"""Root cause -> (hours the machine is stopped, the work). 0 hours: done while it runs."""
ACTIVE = ("open", "approved")
MAX_TICKETS = 200
_STOP_NOW = re.compile(r"^\s*(?:\d+\.\s*)?stop the (?:pump|machine|motor|line)\b", re.I | re.M)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,23}$")


def repair_for(factory: FactoryConfig, root_cause: str) -> tuple[int, str]:
    hours, work = REPAIRS.get(root_cause, REPAIRS["unknown"])
    return factory.repair_hours.get(root_cause, hours), work


def ticket_scenarios(
    factory: FactoryConfig, tickets: Sequence[Ticket]
) -> tuple[list[ScenarioSpec], list[TicketCitation]]:
    """Scenarios for the work orders on mapped assets (most severe first, one per machine),
    and a citation for every such work order, whether it became a scenario or not."""
    by_asset = {m.asset: m for m in factory.machines if m.asset}
    ranked = sorted(
        (t for t in tickets[:MAX_TICKETS] if t.state in ACTIVE and t.asset in by_asset),
        key=lambda t: (-_severity_rank(t.severity), t.ticket_id),
    )
    specs: list[ScenarioSpec] = []
    citations: list[TicketCitation] = []
    stopped: set[str] = set()
    for ticket in ranked:
        machine = by_asset[ticket.asset]
        hours, work = repair_for(factory, ticket.root_cause)
        ticket_id = ticket.ticket_id if _SAFE_ID.match(ticket.ticket_id) else "work order"
        label: str | None = None
        stop_now = ticket.severity == "critical" or bool(_STOP_NOW.search(ticket.body))
        if hours > 0 and machine.id not in stopped and (stop_now or ticket.severity == "high"):
            hours = min(hours, machine.available_hours)
            label = f"{machine.id} repair ({ticket_id})"[:48]
            if stop_now:
                start = machine.available_start
                end = start + hours
                spec = down_spec(machine.id, start, end, planned=False, label=label)
            else:
                start, end = cheapest_window(factory, machine.id, hours)
                spec = down_spec(machine.id, start, end, planned=True, label=label)
                work = f"{work}, {hours}h at the least costly time today"
            specs.append(
                spec.model_copy(
                    update={
                        "origin": "ticket",
                        "ticket_id": ticket_id if ticket_id != "work order" else None,
                        "cause": work[:120],
                    }
                )
            )
            stopped.add(machine.id)
            work = f"{machine.id} down {start}-{end}h for {work}"
        elif hours > 0:
            work = f"plan the {work} ({hours}h stop) outside today's busy hours"
        citations.append(
            TicketCitation(
                ticket_id=ticket_id,
                asset=ticket.asset,
                machine_id=machine.id,
                root_cause=ticket.root_cause,
                severity=ticket.severity,
                state=ticket.state,
                work=work[:80],
                scenario_label=label,
            )
        )
    return specs, citations


def _severity_rank(severity: str) -> int:
    return ("low", "medium", "high", "critical").index(severity)


class TicketSourceError(ValueError):
    """The tickets could not be read from the given source (named in the message)."""


def _from_review_api(source: str, timeout: float, environ: Mapping[str, str]) -> list[Ticket]:
    """Through the review API's one client, which authenticates this process (its socket on
    the plant host, else ``CONTROLROOM_TOKEN_FILE``). Runs its own event loop: call it from a
    thread without one (the CLI, a worker thread)."""
    import asyncio

    from engine.review_client import ApiError, ReviewClient, resolve_endpoint
    from engine.schemas import Ticket

    where = source.rstrip("/") + "/tickets"

    async def read() -> object:
        endpoint = resolve_endpoint(source, environ=environ)
        async with ReviewClient(endpoint, timeout=timeout) as client:
            params = {"state": "active", "limit": MAX_TICKETS}
            return (await client.request("GET", "/tickets", params=params)).json()

    try:
        rows = asyncio.run(read())
    except (ApiError, ValueError) as exc:
        raise TicketSourceError(f"{where}: cannot read open tickets ({exc})") from None
    if not isinstance(rows, list):
        raise TicketSourceError(f"{where}: expected a list of tickets")
    out = []
    for row in rows[:MAX_TICKETS]:
        try:
            out.append(Ticket.model_validate(row))
        except ValueError:
            continue  # one malformed ticket never hides the others
    return out


def fetch_tickets(
    source: str, *, timeout: float = 5.0, environ: Mapping[str, str] | None = None
) -> list[Ticket]:
    """Open and approved work orders from the review API (``http://host:8105``) or a ticket
    store (a SQLite path or ``postgresql://`` URL). The one place that knows where tickets come
    from. ``environ``: the entry's resolved environment, for the review API's token
    (``CONTROLROOM_TOKEN_FILE``); None: no token (the socket or loopback discovery only)."""

    if source.startswith(("http://", "https://", "unix:")):
        return _from_review_api(source, timeout, environ or {})
    from pathlib import Path

    if (
        not source.startswith(("postgresql://", "postgres://", "sqlite://"))
        and not Path(source).is_file()
    ):
        raise TicketSourceError(f"{source}: no such ticket store (a review URL or a store path)")
    from engine.tickets.store import TicketStore

    store = TicketStore(source)
    try:
        return store.tickets("active", None, MAX_TICKETS)
    finally:
        store.close_db()
