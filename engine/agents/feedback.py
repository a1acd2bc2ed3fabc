"""Agent D's judgement, without I/O: what a review action tells the agents upstream.

Every review action becomes a :class:`Feedback` message. A ``false_positive`` close is the one
that changes behaviour: the alarm should not have been raised, so the monitor gets a little less
sensitive on the signals that raised it and the diagnosis rules that named the cause lose a
little confidence. Each step is small and bounded (see ``engine/agents/tuning.py`` for the
limits), so a burst of careless closes cannot blind the monitor: recall is protected by the
bounds, and ``controlroom eval --tuning FILE`` shows the trade before and after.

Feedback ids are derived from the ticket id and revision, so a re-sent feedback message is
recognisably the same one.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from engine.schemas import Feedback, Ticket, utc_now

CHANGE_TEXT_MAX = 500


def feedback_for(
    action: str,
    ticket: Ticket,
    who: str,
    *,
    note: str | None = None,
    changes: dict[str, str] | None = None,
    at: datetime | None = None,
) -> Feedback:
    """The feedback announcing ``action`` on ``ticket`` (the ticket *after* the action)."""
    shown = {
        k: (v if len(v) <= CHANGE_TEXT_MAX else f"({len(v)} chars)")
        for k, v in (changes or {}).items()
    }
    return Feedback(
        feedback_id=f"F-{ticket.ticket_id}-r{ticket.revision}",
        ticket_id=ticket.ticket_id,
        asset=ticket.asset,
        action=action,  # type: ignore[arg-type]
        who=who,
        at=at or utc_now(),
        reason=ticket.close_reason if action == "close" else None,
        note=note,
        root_cause=ticket.root_cause,
        alert_ids=list(ticket.alert_ids),
        signals=list(ticket.signals),
        matched_rules=list(ticket.matched_rules),
        changes=shown,
    )


class FalsePositiveLog:
    """Append-only JSONL of false-positive closes: the case file for whoever tunes the rules
    and thresholds next. One Feedback per line (with its tuning changes); a line may repeat
    after a crash (at-least-once): readers keep the first of each ``feedback_id``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, feedback: Feedback) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(feedback.to_json() + "\n")

    def read(self) -> list[Feedback]:
        if not self.path.exists():
            return []
        seen: dict[str, Feedback] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                fb = Feedback.model_validate(json.loads(line))
                seen.setdefault(fb.feedback_id, fb)
        return list(seen.values())
