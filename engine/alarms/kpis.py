"""Alarm-system KPIs (EEMUA 191, ANSI/ISA-18.2 / IEC 62682), each with its target beside it.

Pure: a list of ``Sample`` (one per alarm raised: its source, priority, raise / clear on one
plant-time line, and how it was presented) and a window in, an ``AlarmKpis`` out. Both
``controlroom report`` (a live run's logs, with its review store's ``raised_as`` per alarm) and
the review API (the store, for the TUI panel) feed ``compute``, so the two agree.

Who is counted. ISA-18.2 and EEMUA 191 measure the operator's load by the alarms **annunciated**
(presented) to the operator: an alarm that raises while its source is shelved, its asset out of
service, or while it is suppressed for chattering is recorded but not shown, and adding it to the
operator's rate would blame the operator's load for what the alarm system kept from them. So each
sample says how it was presented at its raise (``raised_as``, decided by the lifecycle and kept
in the store, ``Alarm.raised_as``), and every figure says which population it counts:

- **annunciated** (the operator's load): the rate, periods over 1, flood, peak, and the priority
  split (ISA-18.2's "annunciated alarm priority distribution": the priorities the operator sees);
- **raised** (the alarm system's health): standing alarms (a stale alarm hidden by a shelve or
  out of service is still a condition left standing; not counting it would reward shelving it),
  chattering sources (suppression is the remedy, the source still needs fixing), and bad actors
  (the rationalisation list: a shelved nuisance alarm is still a nuisance to fix).

The raised total and the withheld ones by reason are given beside the annunciated, so load and
presentation are both visible. A raise whose presentation is not known (``controlroom report``
from the logs alone, which cannot see shelving, or an alarm stored before ``raised_as`` was kept)
is ``unknown``: suppressed if the lifecycle's chattering rule suppresses it on its raise times
(those the logs have), else counted as annunciated ("shelving not known: counted as raised").
An alarm withheld at its raise and shown later (its shelve ends, its asset returns to service
while it is active) stays counted as withheld: its later showing is not a new raise, as an
escalation is not a new alarm.

Definitions (``PERIOD_S`` = 10 minutes; the window is cut into 10-minute periods from its start,
the last one possibly shorter but counted whole):

- **alarms per 10 min per operator**: alarms annunciated in the window / periods / operators.
  EEMUA 191 and ISA-18.2: ~1 is "very likely acceptable", ~2 "maximum manageable".
- **periods over 1 alarm**: % of periods with more than one alarm annunciated; neither guide
  sets a figure, each such period is above the "very likely acceptable" rate, so: as few as
  possible.
- **flood**: % of periods with more than 10 alarms annunciated; ISA-18.2: under ~1 %.
- **peak**: the most alarms annunciated in one period; ISA-18.2: at most 10.
- **standing**: alarms raised and still active at the window's end that have been for over 24 h
  (ISA-18.2's "stale" alarms: fewer than 5 on any day; EEMUA 191's standing alarms: under 10).
- **chattering**: sources with ``chatter_raises`` raises within ``chatter_window_s`` (the rule
  the lifecycle flags with); target zero.
- **bad actors**: the 10 sources raising the most alarms, with their share of those raised;
  ISA-18.2: the top 10 should carry ~1-5 % of the load (a real plant has thousands of tags: with
  a handful of pumps the top 10 are all there is, and this one cannot be met).
- **priority split**: % per priority of the alarms annunciated; ISA-18.2 with four priorities:
  ~80 % low, ~15 % medium, ~5 % high, < 1 % critical. Met when critical <= 1 % and high plus
  critical <= 6 % (priority inflation is what the target guards against).

Re-annunciations (escalations) are not new alarms.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from engine.alarms.lifecycle import DEFAULT_POLICY, Policy, alert_revision, is_chattering, rank
from engine.alarms.lifecycle import source_of as alarm_source
from engine.http_schemas import PRIORITIES, Alarm, AlarmKpis, BadActor, KpiRow
from engine.schemas import AlertEvent

PERIOD_S = 600.0
FLOOD_ALARMS = 10
STANDING_S = 24 * 3600.0
TOP_N = 10
PRIORITY_TARGET = {"low": 80.0, "medium": 15.0, "high": 5.0, "critical": 1.0}


UNKNOWN = "unknown"
"""A sample's ``raised_as`` when no record says how it was presented."""
WITHHELD = ("out_of_service", "shelved", "suppressed")
WITHHELD_WORDS = {
    "out_of_service": "out of service",
    "shelved": "shelved",
    "suppressed": "suppressed",
}
SHOWN = ("annunciated", UNKNOWN)


@dataclass(frozen=True)
class Sample:
    source: str
    priority: str
    raised: float
    cleared: float | None = None
    raised_as: str = "annunciated"
    """``Alarm.raised_as`` (annunciated, or withheld: one of ``WITHHELD``), or ``UNKNOWN``."""


def sample_of(alarm: Alarm) -> Sample:
    return Sample(
        alarm.source,
        alarm.priority,
        alarm.plant_raised,
        alarm.plant_cleared,
        alarm.raised_as or UNKNOWN,
    )


def samples_from_alerts(
    alerts: Iterable[AlertEvent],
    offset: float = 0.0,
    raised_as: Mapping[str, str | None] | None = None,
) -> list[Sample]:
    """One sample per alert id from a run's alert publications (any order, repeats allowed),
    as the lifecycle would record them: raised at its first publication's plant time (its
    onset when only the clear was seen), priority the highest severity, cleared at its clear.
    ``offset`` places the run on a longer plant timeline. ``raised_as``: how each alarm was
    presented, by alert id, as the run's review store recorded it (``UNKNOWN`` if missing)."""
    known = raised_as or {}
    first: dict[str, AlertEvent] = {}
    top: dict[str, str] = {}
    cleared: dict[str, float] = {}
    for a in sorted(alerts, key=alert_revision):
        if a.alert_id not in first:
            first[a.alert_id] = a
        if a.alert_id not in top or rank(a.severity) > rank(top[a.alert_id]):
            top[a.alert_id] = a.severity
        if a.status == "cleared":
            cleared[a.alert_id] = a.cleared_ts if a.cleared_ts is not None else a.ts
    out = []
    for alert_id, a in first.items():
        raised = a.ts if a.status == "active" else a.onset_ts
        end = cleared.get(alert_id)
        out.append(
            Sample(
                alarm_source(a.asset, a.signals),
                top[alert_id],
                offset + raised,
                None if end is None else offset + max(end, raised),
                known.get(alert_id) or UNKNOWN,
            )
        )
    return sorted(out, key=lambda s: s.raised)


def presented(samples: Sequence[Sample], policy: Policy = DEFAULT_POLICY) -> list[Sample]:
    """The samples with each ``UNKNOWN`` decided where the raise times can: suppressed when the
    lifecycle's chattering rule would have suppressed it (``is_chattering`` on the earlier
    raises of its source, as ``open_alarm`` does); shelving and out of service stay unknown."""
    earlier: dict[str, list[float]] = defaultdict(list)
    out = []
    for s in sorted(samples, key=lambda s: s.raised):
        times = earlier[s.source]  # ascending: only the window's tail is looked at
        recent = times[bisect_left(times, s.raised - policy.chatter_window_s) :]
        unknown = s.raised_as == UNKNOWN and policy.suppress_chattering
        if unknown and is_chattering(recent, s.raised, policy):
            s = replace(s, raised_as="suppressed")
        times.append(s.raised)
        out.append(s)
    return out


def presentation(k: AlarmKpis) -> str:
    """'12 annunciated of 15 raised; 3 not: 1 out of service, 2 shelved': load and
    presentation side by side, as the report and the TUI panel head their tables."""
    text = f"{k.annunciated} annunciated of {k.alarms} raised"
    withheld = [f"{n} {WITHHELD_WORDS.get(why, why)}" for why, n in k.withheld.items() if n]
    if withheld:
        text += f"; {sum(k.withheld.values())} not: {', '.join(withheld)}"
    elif k.alarms:
        text += "; none shelved, out of service or suppressed"
    if k.not_known:
        text += f"; shelving not known for {k.not_known}: counted as raised"
    return text


def _pct(n: float, d: float) -> float:
    return 100.0 * n / d if d else 0.0


def _fmt(v: float, unit: str = "") -> str:
    text = f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}".rstrip("0").rstrip(".")
    return text + unit


TARGET_RATE = "≤ 1 very likely acceptable, ≤ 2 manageable (EEMUA 191, ISA-18.2)"
TARGET_OVER1 = "as few as possible (each is over the ≤ 1 per 10 min rate)"
TARGET_STANDING = "< 5 (ISA-18.2 stale); < 10 (EEMUA 191)"


def _row(name: str, value: float | None, shown: str, target: str, meets: bool | None) -> KpiRow:
    v = None if value is None else round(float(value), 3)
    return KpiRow(name=name, value=v, shown=shown, target=target, meets=meets)


def compute(
    samples: Sequence[Sample],
    start: float,
    end: float,
    *,
    operators: int = 1,
    policy: Policy = DEFAULT_POLICY,
) -> AlarmKpis:
    if operators < 1:
        raise ValueError("operators must be >= 1")
    end = max(end, start)
    periods = max(1, math.ceil((end - start) / PERIOD_S))
    samples = presented(samples, policy)
    inside = [s for s in samples if start <= s.raised <= end]
    shown = [s for s in inside if s.raised_as in SHOWN]
    bins = [0] * periods
    for s in shown:
        bins[min(periods - 1, int((s.raised - start) // PERIOD_S))] += 1
    n, n_shown = len(inside), len(shown)
    rate = n_shown / periods / operators
    over1 = _pct(sum(1 for b in bins if b > 1), periods)
    flood = _pct(sum(1 for b in bins if b > FLOOD_ALARMS), periods)
    peak = max(bins)
    standing = sum(
        1
        for s in samples
        if (s.cleared is None or s.cleared > end)
        and s.raised <= end
        and end - s.raised > STANDING_S
    )
    raises: dict[str, list[float]] = defaultdict(list)
    for s in sorted(inside, key=lambda s: s.raised):
        raises[s.source].append(s.raised)
    chattering = sum(
        1
        for times in raises.values()
        if any(is_chattering(times[:i], t, policy) for i, t in enumerate(times))
    )
    counts = Counter(s.source for s in inside)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_N]
    actors = [BadActor(source=src, alarms=k, share=round(_pct(k, n), 2)) for src, k in top]
    top_share = _pct(sum(k for _, k in top), n)
    by_priority = Counter(s.priority for s in shown)
    split = {p: round(_pct(by_priority[p], n_shown), 2) for p in PRIORITIES}
    split_ok = (
        split["critical"] <= PRIORITY_TARGET["critical"]
        and split["high"] + split["critical"] <= PRIORITY_TARGET["high"] + 1.0
    )
    rows = [
        _row("Alarms per 10 min per operator", rate, _fmt(rate), TARGET_RATE, rate <= 1.0),
        _row("10-min periods with > 1 alarm", over1, _fmt(over1, " %"), TARGET_OVER1, None),
        _row(
            "10-min periods in flood (> 10 alarms)",
            flood,
            _fmt(flood, " %"),
            "< 1 % (ISA-18.2)",
            flood < 1.0,
        ),
        _row(
            "Peak alarms in one 10-min period",
            peak,
            str(peak),
            "≤ 10 (ISA-18.2)",
            peak <= FLOOD_ALARMS,
        ),
        _row(
            "Standing alarms (active > 24 h)",
            standing,
            str(standing),
            TARGET_STANDING,
            standing < 5,
        ),
        _row(
            "Chattering sources (≥ 3 raises in 1 min)",
            chattering,
            str(chattering),
            "0 (ISA-18.2)",
            chattering == 0,
        ),
        _row(
            "Top 10 sources' share of alarms",
            top_share if n else None,
            _fmt(top_share, " %") if n else "n/a",
            "~1-5 % (ISA-18.2)",
            top_share <= 5.0 if n else None,
        ),
        _row(
            "Priority split low / medium / high / critical",
            None,
            " / ".join(_fmt(split[p]) for p in PRIORITIES) + " %" if n_shown else "n/a",
            "~80 / 15 / 5 / < 1 % (ISA-18.2)",
            split_ok if n_shown else None,
        ),
    ]
    kpis = AlarmKpis(
        window_start=start,
        window_end=end,
        hours=round((end - start) / 3600.0, 3),
        operators=operators,
        alarms=n,
        annunciated=n_shown,
        withheld={why: sum(1 for s in inside if s.raised_as == why) for why in WITHHELD},
        not_known=sum(1 for s in shown if s.raised_as == UNKNOWN),
        periods=periods,
        rows=rows,
        bad_actors=actors,
        priority_split=split,
    )
    return kpis.model_copy(update={"summary": presentation(kpis)})


def render_markdown(k: AlarmKpis) -> str:
    """The KPI table and the bad actors, as the report prints them."""
    verdict = {True: "met", False: "**not met**", None: "—"}
    lines = [
        f"{k.summary}; over {k.hours:g} h of plant time ({k.periods} ten-minute "
        f"period(s)), {k.operators} operator(s).",
        "",
        "The rate, the periods over 1 and in flood, the peak and the priority split count the "
        "alarms annunciated; standing, chattering and the top sources count every alarm raised.",
        "",
        "| KPI | value | target | |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {r.name} | {r.shown} | {r.target} | {verdict[r.meets]} |" for r in k.rows]
    if k.bad_actors:
        lines += [
            "",
            "Top sources (bad actors):",
            "",
            "| source | alarms | share |",
            "|---|---:|---:|",
        ]
        lines += [f"| {b.source} | {b.alarms} | {b.share:.1f} % |" for b in k.bad_actors]
    return "\n".join(lines) + "\n"
