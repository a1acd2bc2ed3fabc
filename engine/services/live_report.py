"""``controlroom report --logs DIR``: the metrics of a live run, from its services' JSONL logs.

The logs hold every message the services published (``topic`` + ``message`` lines): telemetry
with its ground truth (simulator), alerts (monitor), diagnoses (diagnosis), tickets (ticket
service). Detection and diagnosis are scored by the same functions as the accelerated replay
(``engine.evaluation``), so a live run and ``controlroom eval`` report the same figures; what only
a live run has is wall-clock latency, reported apart:

- **ticket creation latency**: alert published (the ``wall_time`` the monitor stamped on its
  first publication, not an escalation's) -> ticket stored (the ticket service's
  ``stored_at``), for each ticket created;
- **telemetry -> alert** latency as the monitor measured it.

It also measures the **alarm system** the way EEMUA 191 / ISA-18.2 do (``engine/alarms/kpis.py``,
the same function the review API serves the TUI from): every alert episode is an alarm, on the
plant clock, the runs placed one after another. The rates count the alarms annunciated, which
the logs cannot tell (shelving and out of service are the review service's): how each alarm was
presented at its raise is read from the run's review store (``controlroom.db`` beside the logs,
as ``controlroom up`` leaves ``var/``, or ``--store``), by alert id. Without a store, or for an
alarm it does not hold, the report says "shelving not known: counted as raised".

A run directory may hold several runs (the simulator was re-loaded): each ``scenario_loaded``
starts a new segment, and messages are assigned to segments by log time, so a replayed scenario
does not mix with the previous one. Malformed lines are counted and reported, never fatal.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.schemas import AlertEvent, PlantMessage, Ticket, WireError, decode

TICKET_CREATED = "ticket_created"


class LogError(ValueError):
    """The log directory cannot be read as a run (missing, empty)."""


@dataclass
class LiveRun:
    messages: list[tuple[str, PlantMessage]] = field(default_factory=list)
    """(log time ISO, message) in log-time order."""
    segments: list[str] = field(default_factory=list)
    """Log times of each ``scenario_loaded`` (segment starts)."""
    ticket_latency_ms: list[float] = field(default_factory=list)
    alert_latency_ms: list[float] = field(default_factory=list)
    tickets_created: int = 0
    files: list[str] = field(default_factory=list)
    bad_lines: int = 0
    first_problems: list[str] = field(default_factory=list)


def read_run(logs: Path) -> LiveRun:
    if not logs.is_dir():
        raise LogError(f"{logs}: not a directory")
    files = sorted(logs.glob("*.jsonl"))
    if not files:
        raise LogError(f"{logs}: no *.jsonl service logs here (expected var/logs of a run)")
    run = LiveRun(files=[f.name for f in files])
    created: list[tuple[Ticket, float | None]] = []
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    if not isinstance(rec, dict):
                        raise ValueError("not a JSON object")
                    _take(rec, run, created)
                except (ValueError, WireError) as exc:
                    run.bad_lines += 1
                    if len(run.first_problems) < 5:
                        run.first_problems.append(f"{path.name}:{n}: {exc}")
    run.messages.sort(key=lambda m: m[0])
    run.segments.sort()
    alert_wall: dict[str, float] = {}  # its first publication: escalations publish it again
    for _, m in run.messages:
        if isinstance(m, AlertEvent) and m.status == "active" and m.wall_time is not None:
            alert_wall[m.alert_id] = min(m.wall_time, alert_wall.get(m.alert_id, m.wall_time))
    for ticket, stored in created:
        run.tickets_created += 1
        first_alert = ticket.alert_ids[0] if ticket.alert_ids else None
        if stored is not None and first_alert in alert_wall:
            run.ticket_latency_ms.append((stored - alert_wall[first_alert]) * 1000.0)
    return run


def _take(rec: dict[str, Any], run: LiveRun, created: list[tuple[Ticket, float | None]]) -> None:
    event = rec.get("event")
    when = str(rec.get("time", ""))
    if event == "scenario_loaded":
        run.segments.append(when)
    if "topic" not in rec or "message" not in rec:
        return
    msg = decode(str(rec["topic"]), json.dumps(rec["message"], allow_nan=False))
    if isinstance(msg, Ticket):
        if event == TICKET_CREATED:
            stored = rec.get("stored_at")
            if not isinstance(stored, int | float):
                stored = datetime.fromisoformat(when).timestamp() if when else None
            created.append((msg, stored))
        return
    if isinstance(msg, AlertEvent) and msg.status == "active":
        lat = rec.get("latency_ms")
        if isinstance(lat, int | float):
            run.alert_latency_ms.append(float(lat))
    run.messages.append((when, msg))


def segment_messages(run: LiveRun) -> list[list[PlantMessage]]:
    """Messages split at each scenario load (those before the first load form their own)."""
    out: list[list[PlantMessage]] = [[] for _ in range(len(run.segments) + 1)]
    for when, msg in run.messages:
        out[bisect_right(run.segments, when)].append(msg)
    return [seg for seg in out if seg]


def _pct(values: list[float], q: float) -> float | None:
    from engine.evaluation.scoring import percentile

    return percentile(values, q) if values else None


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f} ms"


def _fp_rate(metrics: Any) -> str:
    if not metrics.alerts:
        return "n/a (no alerts)"
    return f"{metrics.false_alarms / metrics.alerts:.1%} ({metrics.false_alarms}/{metrics.alerts})"


def alarm_kpis(
    segments: list[list[PlantMessage]],
    operators: int = 1,
    raised_as: Mapping[str, str | None] | None = None,
) -> str:
    """The alarm KPI table of a live run: each segment (simulator run) spans its plant time,
    the next one starts where it ended. ``raised_as``: the review store's record of how each
    alarm was presented, by alert id (None: no store)."""
    from engine.alarms.kpis import compute, render_markdown, samples_from_alerts

    samples = []
    offset = 0.0
    for seg in segments:
        alerts = [m for m in seg if isinstance(m, AlertEvent)]
        samples += samples_from_alerts(alerts, offset, raised_as)
        offset += max((float(getattr(m, "ts", 0.0)) for m in seg), default=0.0)
    return render_markdown(compute(samples, 0.0, offset, operators=operators))


def _not_known(why: str) -> str:
    return (
        f"**Shelving not known: counted as raised.** {why}: an alarm shelved or out of service "
        "at its raise counts as annunciated; chattering ones are suppressed by the lifecycle's "
        "rule on their raise times."
    )


def read_presentation(logs: Path, store: str | Path | None) -> tuple[dict[str, str | None], str]:
    """The run's review store's ``raised_as`` by alert id, and a line saying where it came from.
    ``store`` None: the ``controlroom.db`` beside the logs if there (else nothing, said so; one
    that cannot be read, e.g. by a colleague who may read it but not write it, likewise)."""
    from engine.alarms.store import AlarmStore
    from engine.tickets.errors import StoreError

    beside = store is None
    if store is None:
        store = logs.resolve().parent / "controlroom.db"
        if not store.is_file():
            return {}, _not_known(
                f"No review store beside the logs ({store}; give one with --store)"
            )
    elif isinstance(store, Path) and not store.is_file():
        raise LogError(f"{store}: no such review store")
    try:
        alarms = AlarmStore(store)
        try:
            found = alarms.raised_as()
        finally:
            alarms.close_db()
    except StoreError as exc:
        if beside:  # the logs still make a report: said, not a failure
            why = f"The review store beside the logs cannot be read ({exc}; give one with --store)"
            return {}, _not_known(why)
        raise LogError(f"{store}: cannot read the review store: {exc}") from exc
    return found, (
        f"How each alarm was presented at its raise (annunciated, or shelved, out of service, "
        f"suppressed) is the run's review store's record ({alarms.location}, "
        f"{len(found)} alarm(s))."
    )


def build_report(logs: Path, store: str | Path | None = None) -> str:
    from engine.evaluation.metrics import aggregate
    from engine.evaluation.report import render_markdown
    from engine.evaluation.scoring import score_stream

    run = read_run(logs)
    segments = segment_messages(run)
    runs = []
    for i, seg in enumerate(segments, 1):
        runs.extend(score_stream(seg, run=f"run{i}"))
    if not runs:
        raise LogError(f"{logs}: no telemetry, alerts or diagnoses in the logs")
    metrics = aggregate(runs, label=f"live run, logs {logs}", scenarios=len(segments))
    ticket = run.ticket_latency_ms
    ticket_latency = (
        f"median {_ms(_pct(ticket, 50))}, p95 {_ms(_pct(ticket, 95))} wall clock, alert "
        f"published → ticket stored ({len(ticket)} tickets; see Live latency)"
        if ticket
        else "no ticket was created in these logs"
    )
    lines = [
        render_markdown(metrics, ticket_latency=ticket_latency).rstrip(),
        "",
        "## Live latency (wall clock)",
        "",
    ]
    lines += [
        "| measure | n | median | p95 |",
        "|---|---:|---:|---:|",
        f"| ticket creation (alert published -> ticket stored) | {len(run.ticket_latency_ms)} "
        f"| {_ms(_pct(run.ticket_latency_ms, 50))} | {_ms(_pct(run.ticket_latency_ms, 95))} |",
        f"| telemetry published -> alert published (monitor) | {len(run.alert_latency_ms)} "
        f"| {_ms(_pct(run.alert_latency_ms, 50))} | {_ms(_pct(run.alert_latency_ms, 95))} |",
        "",
        f"False-positive rate (alerts that matched no fault): {_fp_rate(metrics)}. "
        f"Tickets created: {run.tickets_created}. Logs read: {', '.join(run.files)}"
        f" ({len(segments)} run segment(s)).",
    ]
    raised_as, source = read_presentation(logs, store)
    lines += ["", "## Alarm KPIs (EEMUA 191 / ISA-18.2)", "", source, ""]
    lines.append(alarm_kpis(segments, raised_as=raised_as).rstrip())
    if run.bad_lines:
        lines += ["", f"**{run.bad_lines} log line(s) could not be read** (skipped), e.g.:", ""]
        lines += [f"- `{p}`" for p in run.first_problems]
    return "\n".join(lines) + "\n"
