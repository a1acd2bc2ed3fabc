"""ASCII Gantt: rows per machine, hour columns, labels, markers, and the width budget."""

from __future__ import annotations

import re

from engine.factory import render_gantt
from engine.factory.models import FactoryConfig
from engine.factory.scenario import BASELINE_SPEC, ScenarioSpec
from engine.factory.scheduler import simulate

RUSH = ScenarioSpec(
    type="RUSH_ARRIVES",
    label="Rush J2",
    modifications={"rush_job_id": "J2", "arrival_time": 2, "due_time": 10},
)
SLOW = ScenarioSpec(
    type="MACHINE_SLOWDOWN",
    label="M2 slowdown",
    modifications={"machine_id": "M2", "slowdown_factor": 2.0, "start_time": 8, "end_time": 14},
)


def machine_line(chart: str, machine: str) -> str:
    return next(line for line in chart.splitlines() if re.match(rf"{machine} +\|", line))


def row(chart: str, machine: str) -> str:
    line = machine_line(chart, machine)
    return line[line.index("|") + 1 : line.rindex("|")]


def test_toy_day_fits_80_columns_with_three_columns_per_hour(toy) -> None:
    chart = render_gantt(simulate(toy, BASELINE_SPEC), toy, 80)
    lines = chart.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0] == "Baseline | makespan 16h | no late jobs"
    m2 = row(chart, "M2")
    assert len(m2) == 24 * 3
    # J1-s2 runs 2-7h on M2: columns 6..21 hold its block; idle hours are dots.
    assert m2[6:21] == "[J1===========]" and m2[:6] == "......"
    assert m2[21:33] == "[J2========]" and m2[33:42] == "[J3=====]"
    assert set(m2[42:]) == {"."}
    assert "^J1" in chart and "Due: J1 11h, J2 14h, J3 16h." in chart
    assert "Legend:" in chart


def test_late_jobs_rush_and_slowdown_are_marked(toy) -> None:
    rush = render_gantt(simulate(toy, RUSH), toy, 80)
    assert "late: J1 +4h" in rush.splitlines()[0]
    assert "[J1!==========]" in row(rush, "M2")
    assert "Late: J1 +4h (due 11h, done 15h)" in rush
    assert "Rush: J2 arrives 2h, due 10h." in rush
    slow = render_gantt(simulate(toy, SLOW), toy, 80)
    m2 = row(slow, "M2")
    assert "[J2!~~~~~~~~~~~~~~~~]" in m2  # stretched from 4h to 7h by the slowdown
    lines = slow.splitlines()
    window_row = lines[lines.index(machine_line(slow, "M2")) + 1]
    assert "2x slower" in window_row and "~" in window_row


def test_machine_windows_and_unscheduled_steps_show(press) -> None:
    chart = render_gantt(simulate(press, BASELINE_SPEC), press, 80)
    assert max(len(line) for line in chart.splitlines()) <= 80
    press_row = row(chart, "PRESS")
    cph = len(press_row) // 24
    assert press_row[: 6 * cph] == " " * (6 * cph)  # the press opens at 6h
    assert press_row[22 * cph :] == " " * (2 * cph)  # closed after 22h
    assert "late: ORD-103 incomplete" in chart.splitlines()[0]
    assert "Unscheduled (job incomplete): ORD-103-pack on PACK" in chart.replace("\n  ", " ")


def test_two_day_plan_wraps_into_panels(two_shift) -> None:
    chart = render_gantt(simulate(two_shift, BASELINE_SPEC), two_shift, 80)
    lines = chart.splitlines()
    assert max(len(line) for line in lines) <= 80
    axes = [line for line in lines if line.strip().startswith(("0 ", "24 "))]
    assert len(axes) == 2  # hours 0-24 and 24-48
    assert sum(bool(re.match(r"CNC-1 +\|", line)) for line in lines) == 2


def test_long_horizons_scale_the_time_axis() -> None:
    jobs = [
        {
            "id": f"Q{i}",
            "name": f"Order {i}",
            "due_time": 500,
            "steps": [{"id": f"Q{i}-a", "machine_id": f"K{i % 4}", "duration_hours": 7 + i % 5}],
        }
        for i in range(70)
    ]
    factory = FactoryConfig.model_validate(
        {
            "time_horizon": 600,
            "machines": [{"id": f"K{i}", "name": f"Cell {i}"} for i in range(4)],
            "jobs": jobs,
        }
    )
    chart = render_gantt(simulate(factory, BASELINE_SPEC), factory, 80)
    lines = chart.splitlines()
    assert max(len(line) for line in lines) <= 80
    # The work ends at 163h of the 600h horizon: the chart spends its 74 columns on the work
    # (3h a column), not on 437 empty hours, and says what it leaves out.
    assert "1 column = 3h." in chart and "Hours 222-600 are not drawn: nothing runs" in chart
    assert len(row(chart, "K0")) == 74 and "#" in row(chart, "K0")  # 70 jobs: too many to letter
    assert row(chart, "K0").rstrip(".").endswith("#") and len(row(chart, "K0").rstrip(".")) > 50


def test_wider_terminals_get_more_columns_per_hour(toy) -> None:
    chart = render_gantt(simulate(toy, BASELINE_SPEC), toy, 120)
    assert len(row(chart, "M1")) == 24 * 4
    assert max(len(line) for line in chart.splitlines()) <= 120


def test_a_one_hour_step_reads_clearly_at_80_columns(toy) -> None:
    chart = render_gantt(simulate(toy, BASELINE_SPEC), toy, 80)
    lines = chart.splitlines()
    m3 = lines.index(machine_line(chart, "M3"))
    # J2-s3 runs 11-12h: a bracketed block the width of its hour, its job named under it.
    assert row(chart, "M3")[33:36] == "[=]"
    assert lines[m3 + 1][5 + 33 : 5 + 35] == "J2"


def every_step_is_drawn(chart: str, result, factory) -> None:
    """Each allocation's job symbol appears on its machine's lines within its time span, in
    the panel that holds it (a dense chart splits its hours into panels)."""
    lines = chart.splitlines()
    hours = int(re.search(r"1 column = (\d+)h", chart).group(1))
    legend = chart.split("Symbols: ")[1].split("\n")
    text = legend[0] + "".join(" " + x.strip() for x in legend[1:] if x.startswith("  "))
    symbols = dict(re.findall(r"(\w)=([\w.-]+)", text))
    by_job = {job: sym for sym, job in symbols.items()}
    rulers = [i for i, line in enumerate(lines) if re.match(r"^ +\+-", line)]
    for n, ruler in enumerate(rulers):
        start = int(lines[ruler - 1].split()[0])
        stop = rulers[n + 1] if n + 1 < len(rulers) else len(lines)
        columns = len(lines[ruler].strip()) - 1
        panel = lines[ruler + 1 : stop]
        for machine in factory.machines:
            first = next(i for i, x in enumerate(panel) if re.match(rf"{machine.id} +\|", x))
            own = [panel[first]]
            for line in panel[first + 1 :]:
                if not re.match(r"^ +\|", line):
                    break
                own.append(line)
            cells = [line[line.index("|") + 1 : line.rindex("|")] for line in own]
            for a in result.machine_allocations[machine.id]:
                if a.end_time <= start or a.start_time >= start + columns * hours:
                    continue
                lo = max(0, a.start_time - start) // hours
                hi = max(lo, (min(a.end_time, start + columns * hours) - 1 - start) // hours)
                assert any(by_job[a.job_id] in c[lo : hi + 1] for c in cells), (a, own)


def random_factory(
    seed: int,
    horizon: int,
    jobs: int,
    machines: int,
    durations: list[int],
    due_from: int,
    steps: int | None = None,
) -> FactoryConfig:
    """Chains of steps on random machines; ``steps`` per job (None: 1 to 6 at random)."""
    import random

    rng = random.Random(seed)
    specs = []
    for j in range(jobs):
        due = rng.randint(due_from, horizon)
        count = steps if steps is not None else rng.randint(1, 6)
        specs.append(
            {
                "id": f"J{j}",
                "name": f"Job {j}",
                "due_time": due,
                "steps": [
                    {
                        "id": f"J{j}-{k}",
                        "machine_id": f"M{rng.randrange(machines)}",
                        "duration_hours": rng.choice(durations),
                    }
                    for k in range(count)
                ],
            }
        )
    return FactoryConfig.model_validate(
        {
            "time_horizon": horizon,
            "machines": [{"id": f"M{m}", "name": f"Mach {m}"} for m in range(machines)],
            "jobs": specs,
        }
    )


def test_every_step_of_a_dense_schedule_is_on_its_gantt_at_every_width() -> None:
    """50 jobs on 2 machines over 2,500h, many 1h steps: too dense for one line per machine
    at any width, so busy machines get more lines and the hours split into finer panels."""
    factory = random_factory(0, 2500, 50, 2, [1, 2, 3, 41, 100], due_from=500)
    result = simulate(factory, BASELINE_SPEC)
    for width in (60, 80, 120, 200):
        chart = render_gantt(result, factory, width)
        assert max(len(line) for line in chart.splitlines()) <= width
        assert "too dense" not in chart
        every_step_is_drawn(chart, result, factory)


def test_every_step_of_a_1000_hour_schedule_is_on_its_gantt() -> None:
    # Many steps shorter than a column.
    factory = random_factory(3, 1000, 10, 5, [1, 2, 3, 40, 80], due_from=200, steps=5)
    result = simulate(factory, BASELINE_SPEC)
    chart = render_gantt(result, factory, 80)
    assert max(len(line) for line in chart.splitlines()) <= 80
    assert "too dense" not in chart
    every_step_is_drawn(chart, result, factory)
    # The chart keeps the data width: the work (to 771h) over the 74 columns there are.
    assert "1 column = 11h." in chart and len(row(chart, "M0")) == 74
    assert "Hours 814-1000 are not drawn" in chart


def test_every_panel_labels_its_last_hour(two_shift) -> None:
    for width in (60, 80, 100):
        chart = render_gantt(simulate(two_shift, BASELINE_SPEC), two_shift, width)
        axes = [line for line in chart.splitlines() if re.match(r"^ +0 |^ +24 ", line)]
        assert len(axes) == 2, chart
        assert axes[0].rstrip().endswith("24") and axes[1].rstrip().endswith("48")
