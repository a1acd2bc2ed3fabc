"""Agent C's judgement, without I/O: what a diagnosis means as a work order.

Turns a :class:`DiagnosisReport` into a new ticket, folds a further diagnosis into the open one
(occurrences, last seen, severity escalation), or revises the cause of an episode's ticket when
the final diagnosis of its alert names another cause than the provisional one it opened with.
The lifecycle (``engine/tickets/lifecycle.py``) decides *which* ticket a report belongs to, its
state and its revision; this module only decides *what the ticket says*, so the wording can be
read and tested on its own.

The text is written for a maintenance planner: priority, asset, suspected cause and the trade
that should take the job up front; then the diagnosis, the evidence, the numbers, the recommended
actions and the alternatives that were considered. Instrument faults go to instrumentation, not
to mechanical maintenance.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from engine.schemas import (
    CATEGORY_OF_CAUSE,
    SEVERITIES,
    Category,
    DiagnosisReport,
    Severity,
    Ticket,
    sim_clock,
)

CAUSE_LABELS: dict[str, str] = {
    "bearing_wear": "bearing wear",
    "clogging": "clogging (strainer / line fouling)",
    "valve_stuck": "control valve stuck",
    "sensor_drift": "sensor drift",
    "sensor_stuck": "sensor stuck (frozen reading)",
    "noise_burst": "noisy sensor signal",
    "unknown": "unexplained anomaly",
}

TEAM_OF_CATEGORY: dict[str, str] = {
    "mechanical": "Mechanical maintenance",
    "process": "Operations / process engineering",
    "instrumentation": "Instrumentation & control (I&C)",
    "unknown": "Shift engineer (triage)",
}

PRIORITY_OF_SEVERITY: dict[str, str] = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"}

RESPONSE_OF_PRIORITY: dict[str, str] = {
    "P1": "act now: stop or switch to standby if safe",
    "P2": "within the shift",
    "P3": "plan within the week",
    "P4": "next planned maintenance",
}

AGENT = "agent-ticket"
"""The ``who`` of every automatic change in a ticket's audit history."""

GITHUB_LABEL_MAX = 50


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def escalate(current: Severity, new: Severity) -> Severity:
    """Severity only ever rises on its own; lowering it is a human decision (review edit)."""
    return new if severity_rank(new) > severity_rank(current) else current


def category_for(report: DiagnosisReport) -> Category:
    if report.category != "unknown":
        return report.category
    return CATEGORY_OF_CAUSE.get(report.root_cause, "unknown")


def title_for(asset: str, root_cause: str, signals: Iterable[str]) -> str:
    names = list(dict.fromkeys(signals))[:3]
    tail = f" — {', '.join(names)}" if names else ""
    return f"{asset}: suspected {CAUSE_LABELS.get(root_cause, root_cause)}{tail}"[:500]


def labels_for(asset: str, root_cause: str, category: str, severity: str) -> list[str]:
    labels = [
        "controlroom",
        f"asset:{asset}",
        f"cause:{root_cause}",
        f"team:{category}",
        f"severity:{severity}",
        f"priority:{PRIORITY_OF_SEVERITY[severity]}",
    ]
    return [label[:GITHUB_LABEL_MAX] for label in labels]


def _cell(text: object) -> str:
    """A value safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_body(ticket: Ticket, report: DiagnosisReport) -> str:
    """The work order text: the latest diagnosis in the context of the whole episode."""
    priority = PRIORITY_OF_SEVERITY[ticket.severity]
    team = TEAM_OF_CATEGORY.get(ticket.category, TEAM_OF_CATEGORY["unknown"])
    cause = CAUSE_LABELS.get(ticket.root_cause, ticket.root_cause)
    lines = [
        f"**Work order** · priority **{priority}** ({ticket.severity}:"
        f" {RESPONSE_OF_PRIORITY[priority]}) · asset **{ticket.asset}**",
        "",
        f"**Suspected cause:** {cause} ({report.confidence:.0%} confidence) · "
        f"**Category:** {ticket.category} → {team}",
        "",
        *(
            [
                "_Provisional diagnosis, made at the alarm: it is confirmed or revised within "
                "minutes, once the signals after the onset have settled the cause._",
                "",
            ]
            if report.stage == "provisional"
            else []
        ),
        "### Diagnosis",
        report.summary or f"Suspected {cause}.",
        "",
    ]
    if report.evidence:
        lines += ["### Evidence", *[f"- {e}" for e in report.evidence], ""]
    lines += [
        "### Metrics",
        "| Metric | Value |",
        "|---|---|",
        f"| Occurrences | {ticket.occurrences} |",
        f"| Episode onset (sim) | {sim_clock(ticket.first_seen_ts)} |",
        f"| Last seen (sim) | {sim_clock(ticket.last_seen_ts)} |",
        f"| Severity | {ticket.severity} |",
        f"| Confidence | {report.confidence:.2f} |",
    ]
    if ticket.signals:
        lines.append(f"| Signals | {_cell(', '.join(ticket.signals))} |")
    if ticket.matched_rules:
        lines.append(f"| Matched rules | {_cell(', '.join(ticket.matched_rules))} |")
    lines.append(f"| Alerts | {_cell(', '.join(ticket.alert_ids[-5:]))} |")
    lines.append(f"| Latest diagnosis | {_cell(report.diagnosis_id)} |")
    lines.append("")
    if report.actions:
        lines += [
            "### Recommended actions",
            *[f"{i}. {a}" for i, a in enumerate(report.actions, 1)],
            "",
        ]
    if report.alternatives:
        lines.append("### Alternatives considered")
        for alt in report.alternatives:
            rules = f" (rules: {', '.join(alt.rules)})" if alt.rules else ""
            label = CAUSE_LABELS.get(alt.root_cause, alt.root_cause)
            lines.append(f"- {label}: {alt.confidence:.0%}{rules}")
        lines.append("")
    lines.append(
        "_Raised by Control Room from an automatic diagnosis; confirm on site before dispatch._"
    )
    return "\n".join(lines)[:20_000]


def new_ticket(report: DiagnosisReport, ticket_id: str, now: datetime) -> Ticket:
    """The first ticket of an episode (history is added by the store)."""
    category = category_for(report)
    ticket = Ticket(
        ticket_id=ticket_id,
        asset=report.asset,
        title=title_for(report.asset, report.root_cause, report.signals),
        body="(pending)",
        labels=labels_for(report.asset, report.root_cause, category, report.severity),
        severity=report.severity,
        root_cause=report.root_cause,
        category=category,
        confidence=report.confidence,
        signals=list(dict.fromkeys(report.signals)),
        matched_rules=list(dict.fromkeys(report.matched_rules)),
        diagnosis_ids=[report.diagnosis_id],
        alert_ids=[report.alert_id],
        occurrences=1,
        first_seen_ts=report.onset_ts,
        last_seen_ts=report.ts,
        created_at=now,
        updated_at=now,
    )
    ticket.body = render_body(ticket, report)
    return ticket


def fold_diagnosis(
    ticket: Ticket,
    report: DiagnosisReport,
    human_edited: Iterable[str] = (),
    holds_alert: bool | None = None,
    *,
    occurrence: bool = True,
) -> tuple[Ticket, list[str]]:
    """Fold a further diagnosis into ``ticket``; returns the new ticket and what changed, one
    line each for the audit trail. Fields a reviewer edited by hand (``human_edited``: any of
    title, body, labels) keep the reviewer's text; severity still escalates, never drops.
    ``holds_alert``: whether the ticket already holds the report's alert, for a ticket whose
    ``alert_ids`` are only the most recent ones (None: look in them).
    ``occurrence=False`` for the final diagnosis of an alert the ticket already holds (a
    refinement of the same occurrence, not a new one)."""
    edited = set(human_edited)
    t = ticket.model_copy(deep=True)
    what = "diagnosis" if occurrence else f"{report.stage} diagnosis"
    changes = [f"{what} {report.diagnosis_id} (alert {report.alert_id})"]
    if occurrence:
        t.occurrences += 1
    t.diagnosis_ids.append(report.diagnosis_id)
    if not (report.alert_id in t.alert_ids if holds_alert is None else holds_alert):
        t.alert_ids.append(report.alert_id)
    t.first_seen_ts = min(t.first_seen_ts, report.onset_ts)
    t.last_seen_ts = max(t.last_seen_ts, report.ts)
    t.confidence = report.confidence
    t.signals = list(dict.fromkeys([*t.signals, *report.signals]))
    t.matched_rules = list(dict.fromkeys([*t.matched_rules, *report.matched_rules]))
    severity = escalate(t.severity, report.severity)
    if severity != t.severity:
        changes.append(f"severity escalated {t.severity} -> {severity}")
        t.severity = severity
    _rewrite(t, report, edited)
    return t, changes


def _rewrite(t: Ticket, report: DiagnosisReport, edited: set[str]) -> None:
    """Title, labels and body follow the ticket's fields and the latest diagnosis, except the
    ones a reviewer wrote by hand."""
    if "title" not in edited:
        t.title = title_for(t.asset, t.root_cause, t.signals)
    if "labels" not in edited:
        t.labels = labels_for(t.asset, t.root_cause, t.category, t.severity)
    if "body" not in edited:
        t.body = render_body(t, report)


def revise_cause(
    ticket: Ticket, report: DiagnosisReport, human_edited: Iterable[str] = ()
) -> tuple[Ticket, list[str]]:
    """The episode's ticket with the cause the final diagnosis of its alert names instead of
    the provisional one: cause, category, confidence, title, labels and body follow the new
    diagnosis (text a reviewer edited by hand stays). What this means for the ticket's state
    (an approval given to the old cause) is the lifecycle's decision."""
    edited = set(human_edited)
    old = ticket.root_cause
    t = ticket.model_copy(deep=True)
    t.root_cause = report.root_cause
    t.category = category_for(report)
    t.confidence = report.confidence
    t.diagnosis_ids.append(report.diagnosis_id)
    t.signals = list(dict.fromkeys([*report.signals, *t.signals]))
    t.matched_rules = list(dict.fromkeys(report.matched_rules))
    t.last_seen_ts = max(t.last_seen_ts, report.ts)
    t.severity = escalate(t.severity, report.severity)
    changes = [
        f"root cause revised {old} -> {report.root_cause} by the final diagnosis "
        f"{report.diagnosis_id} (confidence {report.confidence:.2f})"
    ]
    _rewrite(t, report, edited)
    return t, changes
