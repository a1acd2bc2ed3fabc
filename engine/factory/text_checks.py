"""Checks on prose that an agent wrote: does it name only real ids and cite only real numbers?

The spec leaves briefing correctness to prompt design and review; here it is enforced. The
rules are deliberately simple and conservative (a false alarm costs a fallback to the offline
briefing, a missed invention would cost the planner's trust):

- **Ids.** A token is an unknown id when it is not a job, machine or step id of the factory
  (case-insensitive) and either has the shape of one (``J9`` next to ``J1``..``J3``, ``CNC-Z``
  next to ``CNC-A``) or mixes letters and digits (``M9``, ``X7``). Times and factors (``14h``,
  ``2.0x``) and the scenario type names are not ids.
- **Numbers.** Every number must be one the simulation produced or the inputs hold: the
  :class:`Facts` collect them (metrics, per-job lateness and completion, step times, scenario
  parameters, what-if results and the differences between scenarios). Percentages are matched
  against utilizations (to the rounding shown); decimals to 0.05.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from engine.factory.intent import has_id_shape, id_stems
from engine.factory.metrics import waits_of
from engine.factory.models import FactoryConfig
from engine.factory.results import ScenarioMetrics, SimulationResult, WhatIfResult
from engine.factory.scenario import ScenarioSpec

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[_.\-][A-Za-z0-9]+)*")
_UNIT = re.compile(r"^\d+(?:\.\d+)?(?:h|hr|hrs|x|st|nd|rd|th|am|pm|min|pp|d)$", re.IGNORECASE)
_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)(\s?%)?")
VOCABULARY = frozenset(
    {
        "BASELINE",
        "RUSH_ARRIVES",
        "MACHINE_SLOWDOWN",
        "M2_SLOWDOWN",
        "RUSH_FIRST",
        "PROTECT_JOB",
        "BALANCED",
        "LOW",
        "MEDIUM",
        "HIGH",
        "EDD",
        "FCFS",
    }
)


def known_ids(factory: FactoryConfig) -> set[str]:
    return {*factory.job_ids, *factory.machine_ids, *factory.step_ids}


_INDEX: dict[tuple[int, frozenset[str]], tuple[FactoryConfig, frozenset[str], Any]] = {}


def _id_index(
    factory: FactoryConfig, extra: Iterable[str]
) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """(every known id casefolded, the id shapes), built once per factory: a briefing checks
    a dozen texts against thousands of step ids."""
    extras = frozenset(extra)
    key = (id(factory), extras)
    hit = _INDEX.get(key)
    if hit is None or hit[0] is not factory:
        folded = frozenset(k.casefold() for k in known_ids(factory) | extras)
        stems = id_stems(frozenset((*factory.job_ids, *factory.machine_ids, *extras)))
        if len(_INDEX) >= 8:
            _INDEX.clear()
        hit = _INDEX[key] = (factory, folded, stems)
    return hit[1], hit[2]


def unknown_ids(text: str, factory: FactoryConfig, extra: Iterable[str] = ()) -> set[str]:
    """Tokens of ``text`` that look like ids but are not ids of ``factory`` (nor ``extra``:
    work-order ids and plant assets the briefing cites)."""
    folded, stems = _id_index(factory, extra)
    out: set[str] = set()
    for token in _TOKEN.findall(text):
        if token.casefold() in folded or token in VOCABULARY or _UNIT.match(token):
            continue
        if has_id_shape(token, stems):
            out.add(token)
            continue
        parts = re.split(r"[_.\-]", token)
        for part in parts if len(parts) > 1 else [token]:
            if part.casefold() in folded or _UNIT.match(part) or part.upper() in VOCABULARY:
                continue
            if re.search(r"[A-Za-z]", part) and re.search(r"\d", part):
                out.add(token)
                break
    return out


def numbers_in(
    text: str, factory: FactoryConfig, extra: Iterable[str] = ()
) -> list[tuple[str, Fraction, bool]]:
    """(as written, value, is_percent) for each number in ``text`` outside ids and words."""
    folded, _ = _id_index(factory, extra)
    text = _TOKEN.sub(lambda m: " " if m.group(0).casefold() in folded else m.group(0), text)
    text = _WORD.sub(" ", text)
    return [
        (m.group(0).strip(), Fraction(m.group(1)), bool(m.group(2))) for m in _NUMBER.finditer(text)
    ]


def _key(value: float | int | Fraction) -> float:
    return round(abs(float(value)), 4)


@dataclass
class Facts:
    """Every figure a briefing may cite, collected from the pipeline's typed outputs.

    Stored as floats rounded to 4 decimals (every figure here is an integer hour, a metric
    rounded to 2-4 decimals or a factor like 2.5, so nothing distinct collides)."""

    numbers: set[float] = field(default_factory=set)
    percents: set[float] = field(default_factory=set)
    extra_ids: set[str] = field(default_factory=set)
    """Ids that are not the factory's but are facts: cited work orders and plant assets."""

    def add(self, *values: float | int | None) -> None:
        numbers = self.numbers
        for v in values:
            if type(v) is int:  # exact: a set of floats finds 3 for 3.0 (equal hash)
                numbers.add(v if v >= 0 else -v)
            elif v is not None:
                numbers.add(_key(v))

    def add_percent(self, *fractions_of_one: float) -> None:
        self.percents.update(_key(v * 100) for v in fractions_of_one)

    def allows(self, value: Fraction, written: str, percent: bool) -> bool:
        decimals = len(written.split(".")[1].rstrip("% ")) if "." in written else 0
        pool = self.percents if percent else self.numbers
        if _key(value) in pool:
            return True
        target = float(value)
        if percent:
            tolerance = 0.5 if decimals == 0 else 5 / 10 ** (decimals + 1)
            return any(abs(p - target) <= tolerance + 1e-9 for p in pool)
        if decimals:
            tolerance = 5 / 10 ** (decimals + 1)
            return any(abs(p - target) <= tolerance + 1e-9 for p in pool if p != int(p))
        return False


def collect_facts(
    factory: FactoryConfig,
    scenarios: Iterable[ScenarioSpec],
    results: dict[str, SimulationResult],
    metrics: dict[str, ScenarioMetrics],
    what_ifs: Iterable[WhatIfResult],
    date: str = "",
) -> Facts:
    facts = Facts()
    facts.add(0, 1, factory.time_horizon, len(factory.machines), len(factory.jobs))
    facts.add(sum(len(j.steps) for j in factory.jobs))
    facts.add_percent(0.0, 1.0)
    for m in factory.machines:
        facts.add(m.available_start, m.available_end, m.available_hours)
    for j in factory.jobs:
        facts.add(j.due_time, j.release_time, len(j.steps), sum(s.duration_hours for s in j.steps))
        facts.add(*(s.duration_hours for s in j.steps))
    specs = list(scenarios)
    facts.add(len(specs))
    for spec in specs:
        mods = spec.modifications.model_dump()
        facts.add(*(v for v in mods.values() if isinstance(v, int | float)))
        if spec.slowdown is not None:
            facts.add(spec.slowdown.end_time - spec.slowdown.start_time)
        if spec.rush is not None:
            facts.add(spec.rush.due_time - spec.rush.arrival_time)
    for result in results.values():
        for ready, wait in waits_of(result, factory).values():
            facts.add(ready, wait)
        for tl in result.job_timelines.values():
            facts.add(tl.completion_time, tl.due_time, tl.release_time)
            if tl.completion_time is not None and tl.completion_time <= tl.due_time:
                facts.add(tl.due_time - tl.completion_time)  # slack
            for st in tl.steps_timeline:
                facts.add(st.start_time, st.end_time, st.duration_hours, st.base_duration_hours)
                facts.add(st.duration_hours - st.base_duration_hours)
        for u in result.unscheduled:
            facts.add(u.duration_hours)
    ms = list(metrics.values())
    for sm in ms:
        facts.add(sm.num_jobs, sm.num_late_jobs, sm.max_lateness_hours, sm.avg_lateness_hours)
        facts.add(sm.makespan_hours, len(sm.incomplete_job_ids), len(sm.unscheduled_step_ids))
        facts.add(*sm.busy_hours_by_machine.values(), *sm.lateness_by_job.values())
        facts.add(*sm.completion_by_job.values())
        facts.add_percent(*sm.utilization_by_machine.values())
        facts.add(sum(v for v in sm.lateness_by_job.values() if v is not None))
    for a in ms:  # differences between scenarios
        for b in ms:
            facts.add(a.makespan_hours - b.makespan_hours, a.num_late_jobs - b.num_late_jobs)
            for mid, util in a.utilization_by_machine.items():
                facts.add_percent(util - b.utilization_by_machine.get(mid, 0.0))
                facts.add(a.busy_hours_by_machine[mid] - b.busy_hours_by_machine.get(mid, 0))
            for jid, late in a.lateness_by_job.items():
                other = b.lateness_by_job.get(jid)
                if late is not None and other is not None:
                    facts.add(late - other)
    for w in what_ifs:
        facts.add(w.makespan_before, w.makespan_after, w.makespan_after - w.makespan_before)
        facts.add(w.late_before, w.late_after, w.total_lateness_before, w.total_lateness_after)
        facts.add(w.total_lateness_before - w.total_lateness_after)
        facts.add(*(v for v in w.params.values() if isinstance(v, int | float)))
        for jid, late in w.lateness_after.items():
            prior = w.lateness_before.get(jid)
            facts.add(late, prior)
            if late is not None and prior is not None:
                facts.add(late - prior)
    if date:
        facts.add(*(int(p) for p in re.findall(r"\d+", date)))
    return facts


def check_prose(text: str, factory: FactoryConfig, facts: Facts) -> list[str]:
    """Problems of one piece of agent-written prose: unknown ids and unsupported numbers."""
    problems: list[str] = []
    strangers = unknown_ids(text, factory, facts.extra_ids)
    if strangers:
        problems.append(f"names {', '.join(sorted(strangers))}, not in this factory")
    unsupported = [
        w for w, v, pct in numbers_in(text, factory, facts.extra_ids) if not facts.allows(v, w, pct)
    ]
    if unsupported:
        shown = ", ".join(dict.fromkeys(unsupported[:5]))
        problems.append(f"cites {shown}, not in the simulation's figures")
    return problems
