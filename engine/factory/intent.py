"""Intent: the planner's free text -> ScenarioIntent (offline reader; Claude in ``agents``).

The offline reader genuinely reads the text, and only ever emits ids of the factory:

1. Split the text into segments at sentence ends and at contrast words (``but``, ``however``).
2. Find mentions of jobs (id or name) and machines (id or name), and cue phrases: rush,
   protect, may-slip, machine trouble, risk appetite, plain-day. A cue preceded closely by a
   negation flips or cancels: "can't slip" protects, "not critical" may slip, "no rush" is no
   rush, "M2 is fine" / "no issues with M2" raises no worry.
3. Each job mention takes the nearest job cue in its segment.
4. Objective: a rush -> RUSH_FIRST; else one protected job -> PROTECT_JOB; else "normal day"
   words -> BASELINE; else BALANCED (the spec's default, with MEDIUM risk).

Contradictions (a job both protected and allowed to slip, "rush" and "no rush") cancel out and
are reported as notes. References that look like ids of this factory but are not
("protect J9") are ignored and reported by :func:`reference_notes`.

Why one module of ~510 lines: the cue vocabulary (the long lists at the top) is data the reader
needs beside it; the times and machine events live in ``note_events``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from engine.factory.models import FactoryConfig
from engine.factory.note_events import NoteEvent, machine_event, rush_times
from engine.factory.scenario import MAX_EVENTS, Objective, RiskTolerance

MAX_TEXT = 20_000

_SEGMENT = re.compile(
    r"[.;!?\n。！？]+|\b(?:but|however|although|though|whereas|while|yet|aber|pero|mais)\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\b(?:not|no|never|without|cannot|can't|cant|won't|wont|don't|dont|doesn't|doesnt|isn't|"
    r"isnt|aren't|arent|mustn't|shouldn't|must not|should not|do not|does not|nicht|kein|keine|"
    r"pas|nunca|sin)\b|n't\b",
    re.IGNORECASE,
)
NEGATION_WINDOW = 22
"""Characters before a cue in which a negation applies to it ("can't be allowed to slip")."""

CUES: dict[str, tuple[str, ...]] = {
    "rush": (
        r"rush(?:ed|es)?",
        r"urgent(?:ly)?",
        r"expedit\w*",
        r"asap",
        r"as soon as possible",
        r"hot (?:order|job)",
        r"emergency",
        r"right away",
        r"urgente",
        r"eilig\w*",
        r"dringend\w*",
        r"eilauftrag",
        r"prisa",
        r"pressant",
    ),
    "slip": (
        r"can (?:slip|wait|slide|be late|go late|be delayed|be pushed)",
        r"slip(?:s|ping|page)?",
        r"delay(?:ed|ing|s)?",
        r"slack",
        r"flexible",
        r"low[- ]priority",
        r"deprioriti[sz]e\w*",
        r"not urgent",
        r"push(?:ed)? back",
        r"postpone\w*",
        r"defer\w*",
        r"later is fine",
        r"can be late",
        r"lateness",
        r"retras\w*",
        r"versp[äa]t\w*",
    ),
    "protect": (
        r"protect\w*",
        r"critical",
        r"important",
        r"top[- ]priority",
        r"high[- ]priority",
        r"priority",
        r"crucial",
        r"essential",
        r"vital",
        r"must (?:ship|be on time|finish|be done|go out)",
        r"on time",
        r"at all costs",
        r"key (?:customer|order|job)",
        r"wichtig\w*",
        r"importante?",
        r"prioritaire",
    ),
    "trouble": (
        r"issues?",
        r"problems?",
        r"trouble\w*",
        r"slow(?:er|ing|down|s)?",
        r"maintenance",
        r"break(?:s|ing)? ?down",
        r"broken",
        r"fail\w*",
        r"unreliable",
        r"acting up",
        r"risk(?:y)?",
        r"worr(?:y|ied|ies)",
        r"concern\w*",
        r"down",
        r"repair\w*",
        r"wear",
        r"tooling",
        r"bottleneck",
        r"constraint",
        r"offline",
        r"outage",
        r"slow",
        r"unavailable",
        r"st[öo]rung",
        r"aver[íi]a",
        r"panne",
    ),
}
RISK_HIGH = (
    r"at all costs",
    r"whatever it takes",
    r"(?:i'm|i am|we're|we are) (?:ok|okay|fine|happy)",
    r"(?:ok|okay|fine) with",
    r"can (?:accept|live with|tolerate)",
    r"accept(?:ing)? (?:some|significant|a lot|more)",
    r"don't mind",
    r"aggressive",
)
RISK_LOW = (
    r"no risk",
    r"can(?:'t|not) afford",
    r"conservative",
    r"cautious",
    r"careful",
    r"zero lateness",
    r"no lateness",
    r"nothing (?:can|may) (?:be late|slip)",
    r"avoid any",
    r"play it safe",
    r"risk[- ]averse",
)
PLAIN_DAY = (
    r"normal day",
    r"regular day",
    r"standard day",
    r"business as usual",
    r"as planned",
    r"nothing special",
    r"just the baseline",
    r"plain baseline",
    r"no changes",
    r"normal (?:\w+ )?day",
    r"regular (?:\w+ )?day",
    r"typical (?:\w+ )?day",
    r"usual (?:\w+ )?day",
    r"ordinary (?:\w+ )?day",
    r"nothing unusual",
)


def _alternation(patterns: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)", re.IGNORECASE)


_CUE_RE = {kind: _alternation(p) for kind, p in CUES.items()}
_RISK_HIGH_RE = _alternation(RISK_HIGH)
_RISK_LOW_RE = _alternation(RISK_LOW)
_PLAIN_RE = _alternation(PLAIN_DAY)
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[_.\-][A-Za-z0-9]+)*")


@dataclass(frozen=True)
class Mention:
    kind: str  # "job" | "machine"
    id: str
    start: int
    end: int


@dataclass(frozen=True)
class Cue:
    kind: str  # "rush" | "slip" | "protect" | "trouble"
    negated: bool
    start: int
    end: int


@dataclass
class Reading:
    """What the offline reader understood, before it becomes a ScenarioIntent dict."""

    rush_cues: int = 0
    negated_rush: int = 0
    rush_jobs: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    flexible: list[str] = field(default_factory=list)
    watch: list[str] = field(default_factory=list)
    events: list[tuple[str, NoteEvent]] = field(default_factory=list)
    rush_segment: str = ""
    plain_day: bool = False
    risk_high: bool = False
    risk_low: bool = False
    notes: list[str] = field(default_factory=list)


@lru_cache(maxsize=16)
def _phrase_index(
    entries: tuple[tuple[str, str, str], ...],
) -> tuple[dict[tuple[str, ...], tuple[str, str]], int]:
    """Every id and usable name as a tuple of casefolded tokens -> (kind, id), and the longest
    phrase's length in tokens. A dict, not one regex over every name: a 1,000-job factory
    would spend half a second compiling that alternation."""
    index: dict[tuple[str, ...], tuple[str, str]] = {}
    for kind, ident, phrase in entries:
        key = tuple(t.casefold() for t in _TOKEN.findall(phrase))
        if key:
            index.setdefault(key, (kind, ident))
    return index, max((len(k) for k in index), default=0)


def _mention_entries(factory: FactoryConfig) -> tuple[tuple[str, str, str], ...]:
    out: list[tuple[str, str, str]] = []
    for job in factory.jobs:
        out.append(("job", job.id, job.id))
        if len(job.name) >= 3 and job.name.casefold() != job.id.casefold():
            out.append(("job", job.id, job.name))
    for m in factory.machines:
        out.append(("machine", m.id, m.id))
        for name in sorted({m.name, *m.name.split("/")}):
            name = name.strip()
            if len(name) >= 4 and name.casefold() != m.id.casefold():
                out.append(("machine", m.id, name))
    return tuple(out)


def find_mentions(text: str, factory: FactoryConfig) -> list[Mention]:
    """Ids and names in the text, longest phrase first, never inside a longer word."""
    index, longest = _phrase_index(_mention_entries(factory))
    tokens = [(m.start(), m.end(), m.group(0).casefold()) for m in _TOKEN.finditer(text)]
    found = []
    i = 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 0, -1):
            hit = index.get(tuple(t for _, _, t in tokens[i : i + n]))
            if hit is not None:
                found.append(Mention(hit[0], hit[1], tokens[i][0], tokens[i + n - 1][1]))
                i += n
                break
        else:
            i += 1
    return found


def _cues(segment: str, offset: int) -> list[Cue]:
    matches = sorted(
        (match.start(), match.end(), kind)
        for kind, pattern in _CUE_RE.items()
        for match in pattern.finditer(segment)
    )
    cues: list[Cue] = []
    for start, end, kind in matches:
        # A negation reaches back a few words, but not across a comma or another cue.
        lo = max(0, start - NEGATION_WINDOW)
        lo = max([lo, *(e for _, e, _ in matches if e <= start)])
        before = re.split(r"[,:;()\-–]", segment[lo:start])[-1]
        negated = bool(_NEGATION.search(before)) or bool(_NEGATION.search(segment[start:end]))
        cues.append(Cue(kind, negated, offset + start, offset + end))
    # "low priority" is a slip cue that also contains the protect cue "priority": drop the
    # shorter one wherever two cues overlap.
    cues.sort(key=lambda c: (c.start, -(c.end - c.start)))
    kept: list[Cue] = []
    for cue in cues:
        if kept and cue.start < kept[-1].end:
            continue
        kept.append(cue)
    return kept


def _segments(text: str) -> list[tuple[int, int]]:
    bounds = [0]
    for match in _SEGMENT.finditer(text):
        bounds.extend(match.span())
    bounds.append(len(text))
    return [(bounds[i], bounds[i + 1]) for i in range(0, len(bounds) - 1, 2)]


def read_text(text: str, factory: FactoryConfig) -> Reading:
    text = text[:MAX_TEXT]
    reading = Reading()
    mentions = find_mentions(text, factory)
    job_marks: dict[str, set[str]] = {}
    for seg_start, seg_end in _segments(text):
        segment = text[seg_start:seg_end]
        cues = _cues(segment, seg_start)
        in_seg = [m for m in mentions if seg_start <= m.start < seg_end]
        for cue in cues:
            if cue.kind == "rush":
                if cue.negated:
                    reading.negated_rush += 1
                else:
                    reading.rush_cues += 1
        job_cues = [c for c in cues if c.kind in ("rush", "slip", "protect")]
        for mention in in_seg:
            if mention.kind == "machine":
                trouble = [c for c in cues if c.kind == "trouble"]
                nearest = _nearest(mention, trouble)
                if nearest is not None and not nearest.negated:
                    _add(reading.watch, mention.id)
                event = machine_event(
                    _clause(text, mention, in_seg, seg_start, seg_end), factory.time_horizon
                )
                if event is not None and all(mid != mention.id for mid, _ in reading.events):
                    reading.events.append((mention.id, event))
                continue
            nearest = _nearest(mention, job_cues)
            if nearest is None:
                continue
            mark = _job_mark(nearest)
            if mark:
                job_marks.setdefault(mention.id, set()).add(mark)
                if mark == "rush":
                    _add(reading.rush_jobs, mention.id)
                    if not reading.rush_segment:
                        reading.rush_segment = segment
    reading.plain_day = bool(_PLAIN_RE.search(text))
    reading.risk_high = bool(_RISK_HIGH_RE.search(text))
    reading.risk_low = bool(_RISK_LOW_RE.search(text))

    for job_id in sorted(job_marks, key=lambda j: _first_index(mentions, j)):
        marks = job_marks[job_id] - {"rush"}
        if marks == {"protect", "slip"}:
            reading.notes.append(
                f"{job_id} was called both important and allowed to slip; treated as neither"
            )
        elif marks == {"protect"} and job_id not in reading.rush_jobs:
            reading.protected.append(job_id)
        elif marks == {"slip"} and job_id not in reading.rush_jobs:
            reading.flexible.append(job_id)
    return reading


_JOINER = re.compile(r"\band\b|\bwhile\b|\bthen\b|[,;]", re.IGNORECASE)


def _clause(
    text: str, mention: Mention, in_seg: list[Mention], seg_start: int, seg_end: int
) -> str:
    """The part of a segment about one machine: "M1 down until 6 and M2 needs maintenance
    12-15" gives M1 "M1 down until 6" and M2 "and M2 needs maintenance 12-15". Split between
    two machine mentions at the last "and" / comma between them (else right after the first)."""
    machines = sorted((m for m in in_seg if m.kind == "machine"), key=lambda m: m.start)
    i = machines.index(mention)
    lo, hi = seg_start, seg_end
    if i > 0:
        lo = _split(text, machines[i - 1].end, mention.start)
    if i + 1 < len(machines):
        hi = _split(text, mention.end, machines[i + 1].start)
    return text[lo:hi]


def _split(text: str, after: int, before: int) -> int:
    joins = list(_JOINER.finditer(text, after, before))
    return joins[-1].start() if joins else after


def _job_mark(cue: Cue) -> str | None:
    if cue.kind == "rush":
        return None if cue.negated else "rush"
    if cue.kind == "slip":
        return "protect" if cue.negated else "slip"  # "can't slip" protects
    if cue.kind == "protect":
        return "slip" if cue.negated else "protect"  # "not critical" may slip
    return None


def _nearest(mention: Mention, cues: list[Cue]) -> Cue | None:
    def distance(c: Cue) -> int:
        if c.end <= mention.start:
            return mention.start - c.end
        if c.start >= mention.end:
            return c.start - mention.end
        return 0

    return min(cues, key=lambda c: (distance(c), c.start), default=None)


def _first_index(mentions: list[Mention], job_id: str) -> int:
    return next((m.start for m in mentions if m.id == job_id), 0)


def _add(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def intent_offline(text: str, factory: FactoryConfig) -> tuple[dict[str, Any], list[str]]:
    """The planner's text as a ScenarioIntent-shaped dict, plus notes on what was ignored."""
    r = read_text(text, factory)
    notes = list(r.notes)
    rush = r.rush_cues > 0
    if r.rush_cues and r.negated_rush:
        notes.append("the text both asks for and rules out a rush; no rush assumed")
        rush = False

    protected = r.protected
    protected_id: str | None = None
    if len(protected) == len(factory.jobs) and len(protected) > 1:
        notes.append("every job was called important; no single job protected")
    elif protected:
        protected_id = protected[0]
        if len(protected) > 1:
            notes.append(
                f"several jobs called important ({', '.join(protected)}); protecting "
                f"{protected_id}, the first named"
            )
    rush_job = r.rush_jobs[0] if rush and r.rush_jobs else None
    if rush and len(r.rush_jobs) > 1:
        notes.append(f"several rush jobs named; rushing {rush_job}, the first named")

    if rush:
        objective = Objective.RUSH_FIRST
    elif protected_id is not None:
        objective = Objective.PROTECT_JOB
    elif r.plain_day or (r.negated_rush and not (r.flexible or r.events or r.watch)):
        objective = Objective.BASELINE
    else:
        objective = Objective.BALANCED

    if r.risk_high and not r.risk_low:
        risk = RiskTolerance.HIGH
    elif r.risk_low and not r.risk_high:
        risk = RiskTolerance.LOW
    else:
        risk = RiskTolerance.MEDIUM

    arrival = due = None
    if rush_job is not None:
        arrival, due = rush_times(r.rush_segment, factory.time_horizon)
    events = [
        {"machine_id": mid, "kind": e.kind.value, "start_time": e.start, "end_time": e.end}
        for mid, e in r.events[:MAX_EVENTS]
        if e.start is None or e.end is None or e.start < e.end
    ]
    watch = r.watch[0] if r.watch else (r.events[0][0] if r.events else None)
    return {
        "objective": objective.value,
        "protected_job_id": protected_id,
        "risk_tolerance": risk.value,
        "rush_job_id": rush_job,
        "rush_arrival_time": arrival,
        "rush_due_time": due,
        "flexible_job_ids": [j for j in r.flexible if j != protected_id],
        "watch_machine_id": watch,
        "events": events,
    }, notes


@lru_cache(maxsize=65_536)
def _stem(identifier: str) -> tuple[str, str] | None:
    """``J12`` -> (``J``, digits); ``CNC-A`` -> (``CNC-``, letter); None when no clear stem."""
    match = re.fullmatch(r"(.*?[A-Za-z_.\-])(\d+)", identifier)
    if match:
        return match.group(1), "digits"
    match = re.fullmatch(r"(.*[_.\-])([A-Za-z])", identifier)
    if match:
        return match.group(1), "letter"
    return None


@lru_cache(maxsize=64)
def id_stems(ids: frozenset[str]) -> frozenset[tuple[str, str]]:
    """The distinct (stem, suffix kind) shapes of a set of ids (1,000 ``JB0001``.. -> one)."""
    return frozenset(stem for ident in ids if (stem := _stem(ident)) is not None)


def has_id_shape(token: str, stems: frozenset[tuple[str, str]]) -> bool:
    """Whether ``token`` has one of the shapes in ``stems`` (see :func:`id_stems`): its own
    stem is one of them (a set lookup, however many ids the factory has)."""
    return _stem(token) in stems


_GENERIC_ID = re.compile(r"[A-Za-z]{1,4}[_\-]?\d{1,4}")
"""An id in any factory's style: a short letter stem and a number (``J3``, ``M2``, ``ORD-9``).
Units are number-first (``3h``, ``2pm``), so they never match."""
_NOT_AN_ID = re.compile(r"x\d+|q[1-4]|co2|a[0-9]|h2o?|covid\d*|iso\d+", re.IGNORECASE)
"""Letter-number words a planner writes that name nothing in a factory: a factor (``x2``), a
quarter (``Q4``), a paper size, a gas, a standard."""


def unknown_references(text: str, factory: FactoryConfig) -> list[str]:
    """Tokens of the note shaped like a job or machine id that match none of this factory:
    in this factory's style (``J9`` beside ``J1``..``J3``) or the usual one (``J3``, ``M2`` on a
    factory of ``ORD-100`` and ``PRESS``: a note written for another factory), in order, at
    most :data:`MAX_UNKNOWN`."""
    text = text[:MAX_TEXT]
    known = {k.casefold() for k in (*factory.job_ids, *factory.machine_ids, *factory.step_ids)}
    stems = id_stems(frozenset((*factory.job_ids, *factory.machine_ids)))
    found: list[str] = []
    for token in _TOKEN.findall(text):
        if token.casefold() in known or token in found:
            continue
        if (
            has_id_shape(token, stems)
            or has_id_shape(token.upper(), stems)
            or (_GENERIC_ID.fullmatch(token) and not _NOT_AN_ID.fullmatch(token))
        ):
            found.append(token)
            if len(found) >= MAX_UNKNOWN:
                break
    return found


MAX_UNKNOWN = 10
