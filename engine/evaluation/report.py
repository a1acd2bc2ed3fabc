"""Evaluation output: a concise terminal summary and a markdown report for a plant engineer."""

from __future__ import annotations

from engine.evaluation.metrics import EvalMetrics, TargetCheck
from engine.evaluation.scoring import GRACE_S
from engine.schemas import FAULTS

_NAMES = {
    "precision": "Precision (alerts that matched a real fault)",
    "recall": "Recall (fault events detected)",
    "false_alarms_per_day": "False alarms per fault-free day",
    "diagnosis_accuracy": "Diagnosis top-1 accuracy",
    "sudden_latency_median_s": "Sudden faults: median detection latency (s)",
    "gradual_severity_median": "Gradual faults: median severity at detection",
}


def _fmt(v: float | None, pct: bool = False, nd: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v * 100:.{nd}f} %" if pct else f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _value(t: TargetCheck) -> str:
    pct = t.metric in ("precision", "recall", "diagnosis_accuracy")
    nd = (
        3
        if t.metric == "gradual_severity_median"
        else (2 if t.metric == "false_alarms_per_day" else 1)
    )
    return _fmt(t.value, pct, nd)


def _target(t: TargetCheck) -> str:
    if t.metric in ("precision", "recall", "diagnosis_accuracy"):
        return f"{t.op} {t.target * 100:g} %"
    return f"{t.op} {t.target:g}"


def verdict(m: EvalMetrics) -> str:
    missed = [t for t in m.targets if not t.ok]
    if not missed:
        return "All six targets met."
    parts = []
    for t in missed:
        gap = (t.value or 0) - t.target
        parts.append(f"{t.metric} {_value(t)} (target {_target(t)}, off by {abs(gap):.3g})")
    return "Targets missed: " + "; ".join(parts) + "."


def render_summary(m: EvalMetrics) -> str:
    """A few lines for the terminal."""
    lines = [
        f"{m.label}",
        f"{m.scenarios} scenarios, {m.simulated_hours:.0f} simulated h "
        f"({m.fault_free_days:.2f} fault-free days), {m.events} fault events, {m.alerts} alerts",
        "",
        f"{'target':46} {'value':>10} {'target':>10}  ok",
    ]
    for t in m.targets:
        lines.append(
            f"{_NAMES[t.metric]:46} {_value(t):>10} {_target(t):>10}  {'yes' if t.ok else 'NO'}"
        )
    lines += [
        "",
        f"{'fault':14} {'events':>6} {'det':>4} {'recall':>7} {'lat med':>8} "
        f"{'lat p95':>8} {'sev@det':>8} {'diag':>6} {'prov':>6}",
    ]
    for fault in FAULTS:
        f = m.per_fault[fault]
        if not f.events:
            continue
        lines.append(
            f"{fault:14} {f.events:>6} {f.detected:>4} {_fmt(f.recall, True):>7} "
            f"{_fmt(f.latency_s.median):>8} {_fmt(f.latency_s.p95):>8} "
            f"{_fmt(f.severity_at_detection.median, nd=3):>8} "
            f"{_fmt(f.diagnosis_accuracy, True, 0):>6} {_fmt(f.provisional_accuracy, True, 0):>6}"
        )
    lines += [
        "",
        f"provisional diagnosis (at the alert, what a ticket opens with): top-1 "
        f"{_fmt(m.provisional_accuracy, True)}",
        "",
        verdict(m),
    ]
    return "\n".join(lines)


def render_tuning_compare(before: EvalMetrics, after: EvalMetrics, name: str) -> str:
    rows = [
        (
            "false alarms per fault-free day",
            before.false_alarms_per_day,
            after.false_alarms_per_day,
            2,
        ),
        ("false alarms", before.false_alarms, after.false_alarms, 0),
        ("recall", before.recall, after.recall, 4),
        ("precision", before.precision, after.precision, 4),
        ("diagnosis top-1", before.diagnosis_accuracy, after.diagnosis_accuracy, 4),
    ]
    out = [f"tuning {name}: before -> after", f"{'metric':34} {'before':>9} {'after':>9}"]
    for label, a, b, nd in rows:
        out.append(f"{label:34} {_fmt(a, nd=nd):>9} {_fmt(b, nd=nd):>9}")
    return "\n".join(out)


REPLAY_TICKET_LATENCY = (
    "not in a replay (no bus, no wall clock): a work order opens with the provisional "
    "diagnosis at its alert, so in simulated time fault onset → ticket = the detection latency "
    "above. Wall clock (alert published → ticket stored) is measured on a live run: "
    "`controlroom report --logs var/logs` after `controlroom up` or `demo`, or "
    "`python bench/bus_throughput.py --chain`"
)
"""What a replay report says in the ticket-latency row: where the figure comes from."""


def spec_metrics(m: EvalMetrics, ticket_latency: str = REPLAY_TICKET_LATENCY) -> list[str]:
    """The plant spec's metric list (false positives and negatives, detection latency,
    precision/recall, ticket creation latency, false-positive rate), one row each, so a reader
    holding the spec finds every one of them in the report, or where it comes from."""
    fp_rate = _fmt(m.false_alarms / m.alerts, True) if m.alerts else "– (no alerts)"
    missed = len(m.missed)
    return [
        "## The plant spec's metrics",
        "",
        "| Metric | Value |",
        "|---|---|",
        f"| False positives | {m.false_alarms} of {m.alerts} alerts "
        f"({_fmt(m.false_alarms_per_day, nd=2)} per fault-free day) |",
        f"| False negatives | {missed} of {m.events} fault events not detected (never-observable "
        "ones included) |",
        f"| False-positive rate (false alerts / alerts) | {fp_rate} |",
        f"| Precision / recall (event level) | {_fmt(m.precision, True)} / "
        f"{_fmt(m.recall, True)} |",
        f"| Detection latency (simulated s, fault onset → alert) | sudden faults median "
        f"{_fmt(m.sudden_latency_median_s)}, p95 {_fmt(m.sudden_latency_p95_s)}; gradual faults "
        f"by the severity reached (median {_fmt(m.gradual_severity_median, nd=3)}); per fault "
        "below |",
        f"| Ticket creation latency | {ticket_latency} |",
        "",
    ]


def render_markdown(
    m: EvalMetrics,
    tuned: EvalMetrics | None = None,
    command: str = "",
    ticket_latency: str = REPLAY_TICKET_LATENCY,
) -> str:
    """The report. ``ticket_latency``: the ticket-latency row's text (a live run passes its
    measured figure; a replay has none and says where it comes from)."""
    md = [
        "# Plant engine — detection and diagnosis evaluation",
        "",
        f"**{m.label}** — {m.scenarios} scenarios, {m.simulated_hours:.0f} simulated hours "
        f"({m.fault_free_days:.2f} fault-free days), {m.events} fault events, {m.alerts} alerts "
        f"({m.false_alarms} false).",
        "",
        f"**Verdict: {verdict(m)}**",
        "",
    ]
    if command:
        md += ["Reproduce with:", "", "```sh", command, "```", ""]
    md += ["## Targets", "", "| Measure | Value | Target | Met |", "|---|---:|---:|:---:|"]
    for t in m.targets:
        md.append(
            f"| {_NAMES[t.metric]} | {_value(t)} | {_target(t)} | {'yes' if t.ok else '**no**'} |"
        )
    md += ["", *spec_metrics(m, ticket_latency)]
    md += [
        "## By fault type",
        "",
        "Latency: simulated seconds from fault onset to the alert (a stuck valve: from the first "
        "command move it failed to follow). Severity at detection: the ground-truth severity "
        "(0–1, 1 = failure) when the alert was raised, for gradual faults.",
        "",
        "| Fault | Events | Detected | Recall | Latency median / p95 (s) | Severity at detection "
        "median / p95 | Diagnosis top-1 | Provisional top-1 | Alerts per event |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fault in FAULTS:
        f = m.per_fault[fault]
        if not f.events:
            continue
        det = f"{f.detected}" + (
            f" ({f.detected_by_overlap} by overlap)" if f.detected_by_overlap else ""
        )
        if f.observable < f.events:
            det += f", {f.events - f.observable} never observable"
        md.append(
            f"| {fault} | {f.events} | {det} | {_fmt(f.recall, True)} | "
            f"{_fmt(f.latency_s.median)} / {_fmt(f.latency_s.p95)} | "
            f"{_fmt(f.severity_at_detection.median, nd=3)} / "
            f"{_fmt(f.severity_at_detection.p95, nd=3)} | {_fmt(f.diagnosis_accuracy, True)} "
            f"({f.diagnosis_correct}/{f.diagnosed}) | {_fmt(f.provisional_accuracy, True)} | "
            f"{_fmt(f.alerts_per_event, nd=2)} |"
        )
    causes = [*FAULTS, "unknown", "(none)"]
    used = [c for c in causes if any(c in row for row in m.confusion.values())]
    md += [
        "",
        "## Diagnosis confusion matrix",
        "",
        "Rows: what was wrong (`none` = false alarms); columns: the diagnosis given.",
        "",
        "| truth \\ diagnosed | " + " | ".join(used) + " |",
        "|---|" + "---:|" * len(used),
    ]
    for truth in [*FAULTS, "none"]:
        row = m.confusion.get(truth)
        if row:
            md.append(f"| {truth} | " + " | ".join(str(row.get(c, "")) for c in used) + " |")
    for title, items in (
        ("Missed fault events", m.missed),
        ("Misdiagnosed events", m.misdiagnosed),
        ("False alarms", m.false_alarm_list),
    ):
        md += ["", f"## {title} ({len(items)})", ""]
        if not items:
            md.append("None.")
            continue
        for e in items[:40]:
            what = e.fault + (f" ({e.sensor})" if e.sensor else "")
            peak = f", peak severity {e.peak:.2f}" if e.fault != "none" else ""
            md.append(f"- `{e.run}` at {e.onset_s:.0f} s: {what}{peak} — {e.why}")
        if len(items) > 40:
            md.append(f"- … and {len(items) - 40} more (see the JSON)")
    if tuned is not None:
        md += ["", "## With the tuning file", "", "| Measure | Without | With |", "|---|---:|---:|"]
        for label, a, b in (
            ("False alarms per fault-free day", m.false_alarms_per_day, tuned.false_alarms_per_day),
            ("Recall", m.recall, tuned.recall),
            ("Precision", m.precision, tuned.precision),
            ("Diagnosis top-1", m.diagnosis_accuracy, tuned.diagnosis_accuracy),
        ):
            md.append(f"| {label} | {_fmt(a, nd=3)} | {_fmt(b, nd=3)} |")
    md += [
        "",
        "## Read with care",
        "",
        "- The plant is simulated. The monitor and the diagnosis know the pump's nominal "
        "datasheet; each simulated unit departs from it by a bounded spread (±1–3 % on the "
        "curves and losses, ±25 % on the vibration level) and carries noise and slow "
        "disturbances. Effects the simulator does not model (cavitation, seal wear, changing "
        "fluid, instrument dynamics) would make real data harder than these figures.",
        "- The fault mix, severities and manoeuvres come from the suite generator "
        "(`engine/plant/suite.py`, documented in `docs/plant.md`); the thresholds were tuned on "
        "other seeds.",
        "",
        "## Definitions",
        "",
        f"- An alert is a *hit* when it is raised while a fault is active (or up to "
        f"{GRACE_S:.0f} s after it ended); otherwise it is a false alarm. "
        "Precision = hits / alerts.",
        "- A fault event is *detected* when an alert is assigned to it (each alert to one event: "
        "the most recent onset not yet detected), or when it starts while a matching alert "
        "episode is already active (*by overlap*, no latency). Recall = detected / observable "
        "events.",
        "- False alarms per day divides by fault-free time only (no fault active, and not within "
        "the grace after one).",
        "- Sudden faults reach their peak within 2 minutes of onset; the rest are gradual.",
        "- Diagnosis top-1: the final diagnosis of the event's alert names the right fault. "
        "The provisional diagnosis, made the moment the alert is raised so a work order opens "
        "at once, is scored apart (its ticket is revised when the final diagnosis differs).",
        "",
    ]
    return "\n".join(md)
