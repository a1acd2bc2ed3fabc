"""Agent D's judgement, without I/O: what a review action tells the agents upstream.

Every review action becomes a :class:`Feedback` message. A ``false_positive`` close is the one
that changes behaviour: the alarm should not have been raised, so the monitor gets a little less
sensitive on the signals that raised it and the diagnosis rules that named the cause lose a
little confidence. Each step is small and bounded (see ``engine/agents/tuning.py`` for the
limits), so a burst of careless closes cannot blind the monitor: recall is protected by the
bounds, and ``controlroom eval --tuning FILE`` shows the trade before and after.

Feedback ids are derived from the ticket id and revision, so a re-sent feedback message is
recognisably the same one. Pure: the false-positive case file is written by the review service
(``engine.agent_files.FalsePositiveLog``).
"""

from __future__ import annotations

from datetime import datetime

from engine.agents.tuning import (
    RULE_OFFSET_BOUNDS,
    THRESHOLD_SCALE_BOUNDS,
    Tuning,
    with_rule_offset,
    with_threshold_scale,
)
from engine.schemas import FEEDBACK_ALERT_IDS, Feedback, FeedbackAction, Ticket

CHANGE_TEXT_MAX = 500

FALSE_POSITIVE_THRESHOLD_STEP = 1.10
"""Each false-positive close makes the signals that raised it 10 % less sensitive on that asset
(multiplier, up to THRESHOLD_SCALE_BOUNDS[1]: about eleven closes to reach the 3x cap)."""
FALSE_POSITIVE_RULE_STEP = -0.05
"""...and takes 0.05 off the confidence of each rule that named the cause (down to
RULE_OFFSET_BOUNDS[0])."""
MAX_SIGNALS_TUNED = 8
"""A ticket that names more signals than this is an alarm flood, not a signal to tune."""


def feedback_for(
    action: FeedbackAction,
    ticket: Ticket,
    who: str,
    *,
    at: datetime,
    note: str | None = None,
    changes: dict[str, str] | None = None,
) -> Feedback:
    """The feedback announcing ``action`` on ``ticket`` (the ticket *after* the action) at
    ``at`` (the caller's clock: the agent reads none)."""
    shown = {
        k: (v if len(v) <= CHANGE_TEXT_MAX else f"({len(v)} chars)")
        for k, v in (changes or {}).items()
    }
    return Feedback(
        feedback_id=f"F-{ticket.ticket_id}-r{ticket.revision}",
        ticket_id=ticket.ticket_id,
        asset=ticket.asset,
        action=action,
        who=who,
        at=at,
        reason=ticket.close_reason if action == "close" else None,
        note=note,
        root_cause=ticket.root_cause,
        alert_ids=ticket.alert_ids[-FEEDBACK_ALERT_IDS:],
        signals=list(ticket.signals),
        matched_rules=list(ticket.matched_rules),
        changes=shown,
    )


def adjust_tuning(tuning: Tuning, feedback: Feedback) -> tuple[Tuning, list[str]]:
    """One bounded step of tuning for a false-positive close; any other feedback changes
    nothing. Returns the new tuning and one line per change (empty when everything was already
    at its bound)."""
    if feedback.action != "close" or feedback.reason != "false_positive":
        return tuning, []
    note = (
        f"{feedback.feedback_id}: {feedback.ticket_id} ({feedback.root_cause}) closed as false "
        f"positive by {feedback.who}"
    )
    lines: list[str] = []

    def once() -> str:
        """The note goes with the first change only: one close, one note in the tuning file."""
        return "" if lines else note

    signals = list(dict.fromkeys(feedback.signals))[:MAX_SIGNALS_TUNED]
    for signal in signals:
        key = f"{feedback.asset}/{signal}"
        before = tuning.thresholds.get(key, 1.0)
        tuning = with_threshold_scale(
            tuning, feedback.asset, signal, FALSE_POSITIVE_THRESHOLD_STEP, once(), feedback.at
        )
        after = tuning.thresholds[key]
        if after != before:
            lines.append(f"threshold {key} x{before:g} -> x{after:g}")
        else:
            lines.append(f"threshold {key} already at its bound x{THRESHOLD_SCALE_BOUNDS[1]:g}")
    for rule in dict.fromkeys(feedback.matched_rules):
        before = tuning.rule_offsets.get(rule, 0.0)
        tuning = with_rule_offset(tuning, rule, FALSE_POSITIVE_RULE_STEP, once(), feedback.at)
        after = tuning.rule_offsets[rule]
        if after != before:
            lines.append(f"rule {rule} confidence {before:+g} -> {after:+g}")
        else:
            lines.append(f"rule {rule} confidence already at its bound {RULE_OFFSET_BOUNDS[0]:+g}")
    return tuning, lines
