"""Times and machine events in the planner's note: "M2 is down until 10:00", "maintenance on M3
14:00-16:00", "rush J2 arriving at 3, due by noon".

Plan hours are clock hours: hour 0 is midnight at the start of the briefing's date, so "10:00"
is hour 10 and "2pm" hour 14 (a two-day plan reads times on its first day). A start is rounded
down and an end up to whole hours, so an outage is never shortened.

Kinds (``scenario.EventKind``): ``DOWN`` for an outage or an interruption already under way
("down until 10", "offline", "broken"); ``MAINTENANCE`` for planned work that has not started
("maintenance 14-16h", "PM on M3 this afternoon"): its timing is a choice; ``SLOW`` for
"running slow", "half speed". A negated cue ("M2 is not down") is no event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.factory.scenario import EventKind

_CLOCK = (
    r"(?:(?<![\w.])(?P<h>\d{1,2})(?::(?P<m>[0-5]\d))?\s*(?P<ap>a\.?m\.?|p\.?m\.?|h\b|hrs?\b|o'?clock)?"
    r"|(?P<word>noon|midday|midnight|end of (?:the )?(?:day|shift)|eod|close of business))"
)
_TIME = re.compile(_CLOCK, re.IGNORECASE)
_RANGE = re.compile(
    rf"(?:from|between)?\s*(?P<a>{_CLOCK.replace('?P<', '?P<a_')})\s*(?:-|–|—|to|until|till|and)\s*"
    rf"(?P<b>{_CLOCK.replace('?P<', '?P<b_')})",
    re.IGNORECASE,
)


def _clock_after(cues: str, prepositions: str = "") -> re.Pattern[str]:
    """A clock time (group ``t``) after one of ``cues``, then maybe one of ``prepositions``,
    then maybe "about" or "around"."""
    then = f"(?:{prepositions})?" if prepositions else ""
    return re.compile(
        rf"\b(?:{cues})\s+{then}(?:about\s+|around\s+)?(?P<t>{_CLOCK})", re.IGNORECASE
    )


_UNTIL = _clock_after(r"until|till|til|through|up to|before")
_FROM = _clock_after(r"from|after|starting(?: at)?|at|since")
_FOR = re.compile(r"\bfor\s+(?:about\s+|around\s+)?(?P<n>\d{1,3})\s*(?:h\b|hrs?\b|hours?\b)", re.I)
_PARTS = (
    (re.compile(r"\b(?:all|whole|entire) day\b", re.I), (0, 24)),
    (re.compile(r"\bmorning\b", re.I), (0, 12)),
    (re.compile(r"\bafternoon\b", re.I), (12, 18)),
    (re.compile(r"\bevening\b", re.I), (18, 24)),
)
_ARRIVAL = _clock_after(
    r"arriv\w*|comes? in|coming in|lands?|landing|released?|starts?", r"at\s+|by\s+"
)
_DUE = _clock_after(r"due|needed|ship\w*|deliver\w*|ready|done|finished", r"by\s+|at\s+|before\s+")
_DOWN = re.compile(
    r"\b(?:down|offline|off-line|out of (?:service|action|order)|unavailable|not available|"
    r"broken|broke down|break ?down|stopped|shut ?down|outage|dead|not running)\b",
    re.IGNORECASE,
)
_MAINTENANCE = re.compile(
    r"\b(?:maintenance|servic(?:e|ing)|PM|overhaul\w*|inspection|changeover|calibrat\w*|"
    r"repair\w*|wartung|mantenimiento|entretien)\b",
    re.IGNORECASE,
)
_SLOW = re.compile(
    r"\b(?:slow(?:er|ed|ing)?|half[- ]speed|reduced (?:speed|rate)|running slow)\b", re.IGNORECASE
)
_HALF = re.compile(r"\bhalf[- ]speed\b", re.IGNORECASE)
_NEGATED = re.compile(r"\b(?:not|no|never|isn't|isnt|won't|wont|nicht|kein|pas)\s+\w*\s*$", re.I)


@dataclass(frozen=True)
class NoteEvent:
    kind: EventKind
    start: int | None
    end: int | None
    factor: float | None = None


def clock_hour(match: re.Match[str], prefix: str = "", *, end: bool = False) -> int | None:
    """A matched clock time as a plan hour (None when it is a bare number that is no time)."""
    word = match.group(f"{prefix}word")
    if word:
        w = word.casefold()
        if w in ("noon", "midday"):
            return 12
        if w == "midnight":
            return 24 if end else 0
        return 24  # end of day / shift, close of business
    h_text = match.group(f"{prefix}h")
    if h_text is None:
        return None
    hour = int(h_text)
    minutes = int(match.group(f"{prefix}m") or 0)
    ap = (match.group(f"{prefix}ap") or "").casefold().replace(".", "")
    if ap.startswith("pm") and hour < 12:
        hour += 12
    elif ap.startswith("am") and hour == 12:
        hour = 0
    if hour > 24 or (hour == 24 and minutes):
        return None
    if minutes and end:
        hour += 1  # an outage until 10:30 blocks the 10h hour too
    return hour


def window_in(segment: str, horizon: int) -> tuple[int | None, int | None]:
    """(start, end) of the time window a segment states, either possibly None."""
    day_end = min(horizon, 24)
    m = _RANGE.search(segment)
    if m:
        a, b = clock_hour(m, "a_"), clock_hour(m, "b_", end=True)
        if a is not None and b is not None and a < b:
            return _clamp(a, horizon), _clamp(b, horizon)
    duration = None
    if f := _FOR.search(segment):
        duration = int(f.group("n"))
    m = _UNTIL.search(segment)
    if m and (t := clock_hour(m, end=True)) is not None and t > 0:
        return 0, _clamp(t, horizon)
    m = _FROM.search(segment)
    if m and (t := clock_hour(m)) is not None:
        end = t + duration if duration else day_end
        if end > t:
            return _clamp(t, horizon), _clamp(end, horizon)
    for pattern, (lo, hi) in _PARTS:
        if pattern.search(segment):
            return _clamp(lo, horizon), _clamp(min(hi, day_end), horizon)
    if duration:
        return None, duration  # a length only: the futures place it
    return None, None


def _clamp(hour: int, horizon: int) -> int:
    return max(0, min(hour, horizon))


def machine_event(segment: str, horizon: int) -> NoteEvent | None:
    """The event a segment about one machine states, or None."""
    down = _cue(_DOWN, segment)
    maintenance = _cue(_MAINTENANCE, segment)
    slow = _cue(_SLOW, segment)
    if not (down or maintenance or slow):
        return None
    start, end = window_in(segment, horizon)
    if start is None and end is not None:  # "for 3 hours": a length, no place
        length = end
        start, end = None, None
    else:
        length = None
    if slow and not (down or maintenance):
        factor = 2.0 if _HALF.search(segment) else None
        return NoteEvent(EventKind.SLOW, start, end, factor)
    ongoing = start == 0
    kind = EventKind.MAINTENANCE if maintenance and not ongoing else EventKind.DOWN
    if down and not maintenance:
        kind = EventKind.DOWN
    if start is None and length is not None:
        return NoteEvent(kind, None, length)
    return NoteEvent(kind, start, end)


def _cue(pattern: re.Pattern[str], segment: str) -> bool:
    for m in pattern.finditer(segment):
        if not _NEGATED.search(segment[max(0, m.start() - 24) : m.start()]):
            return True
    return False


def rush_times(segment: str, horizon: int) -> tuple[int | None, int | None]:
    """(arrival, due) a segment about the rush states."""
    arrival = due = None
    if m := _ARRIVAL.search(segment):
        arrival = clock_hour(m)
    if m := _DUE.search(segment):
        due = clock_hour(m, end=True)
    arrival = None if arrival is None else _clamp(arrival, horizon)
    due = None if due is None else _clamp(due, horizon)
    if arrival is not None and due is not None and arrival >= due:
        due = None
    return arrival, due
