"""Margins: how far a stated stop may grow before the day gets worse.

A note says "the drill is offline from 2pm to 5pm", or a work order says "stop the pump for a
bearing replacement". The simulation answers what that window does; the planner's next question
is how sure that answer is: *what if it starts an hour earlier, or the repair overruns?* An
outage that costs nothing because M2 happens to finish at 14h is one hour from costing a job
five, and the planner should hear that before the floor does.

For every fact (the note or a work order, never a probe) that stops or slows a machine in a
window, the window is stretched one hour at a time, earlier at its start and later at its end,
and each stretch is re-simulated by the same rule as the scenario. The first hour at which some
job is later past its due time than in the scenario as stated bounds the margin on that side.
Stretches stop at the machine's own availability window and after a bounded number of
simulations (``candidates_per_lever``), so a 1,000-job factory stays interactive.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from engine.factory.futures import candidates_per_lever
from engine.factory.metrics import evaluate
from engine.factory.models import FactoryConfig
from engine.factory.results import Margin, ScenarioMetrics, WindowStretch
from engine.factory.scenario import ScenarioSpec

MAX_SHOWN_JOBS = 3


def find_margins(
    factory: FactoryConfig,
    scenarios: Iterable[ScenarioSpec],
    metrics: dict[str, ScenarioMetrics],
) -> list[Margin]:
    out: list[Margin] = []
    for spec in scenarios:
        window = spec.down or spec.slowdown
        if window is None or not spec.is_fact:
            continue
        stated = metrics[spec.label]
        stretches = tuple(
            s
            for s in (
                _stretch(factory, spec, stated, "earlier"),
                _stretch(factory, spec, stated, "later"),
            )
            if s is not None
        )
        if stretches:
            out.append(
                Margin(
                    scenario_label=spec.label,
                    machine_id=window.machine_id,
                    start_time=window.start_time,
                    end_time=window.end_time,
                    stretches=stretches,
                )
            )
    return out


def _stretch(
    factory: FactoryConfig,
    spec: ScenarioSpec,
    stated: ScenarioMetrics,
    direction: Literal["earlier", "later"],
) -> WindowStretch | None:
    window = spec.down or spec.slowdown
    assert window is not None
    machine = factory.machine(window.machine_id)
    if direction == "earlier":
        room = window.start_time - machine.available_start
    else:
        room = machine.available_end - window.end_time
    if room <= 0:
        return None  # the window already touches the machine's edge on this side
    budget = min(room, candidates_per_lever(factory))
    for hours in range(1, budget + 1):
        if direction == "earlier":
            mods = window.model_copy(update={"start_time": window.start_time - hours})
        else:
            mods = window.model_copy(update={"end_time": window.end_time + hours})
        after = evaluate(factory, spec.model_copy(update={"modifications": mods}))
        worse = _later_jobs(stated, after)
        if worse:
            return WindowStretch(
                direction=direction,
                safe_hours=hours - 1,
                harmed_at=mods.start_time if direction == "earlier" else mods.end_time,
                worse=dict(worse[:MAX_SHOWN_JOBS]),
                worse_count=len(worse),
            )
    edge = machine.available_start if direction == "earlier" else machine.available_end
    reached = window.start_time - budget if direction == "earlier" else window.end_time + budget
    return WindowStretch(
        direction=direction, safe_hours=budget, to_edge=reached == edge, harmed_at=None
    )


def _later_jobs(
    stated: ScenarioMetrics, after: ScenarioMetrics
) -> list[tuple[str, tuple[int | None, int | None]]]:
    """Jobs later past their due time than as stated (or no longer complete), worst first:
    (job, (lateness as stated, lateness now)). Finishing later but still on time is slack
    spent, not harm."""
    out = []
    for jid, now in after.lateness_by_job.items():
        was = stated.lateness_by_job.get(jid)
        if was is not None and (now is None or now > was):
            out.append((jid, (was, now)))
    # Incomplete first, then the largest lateness, then the job's order in the factory.
    return sorted(out, key=lambda t: (t[1][1] is not None, -(t[1][1] or 0)))
