"""Trend history and the trend chart: decimation keeps both a slow rise and a short spike at
every span, memory is fixed, and the chart marks limits, episodes and time."""

from __future__ import annotations

import itertools

import numpy as np

from tui.trend import COLUMNS, SPANS, TrendHistory
from tui.trend_plot import Episode, Limit, plot_lines, plot_width, time_ticks


def shift(hours: float = 8.0, spike_at: float = 3 * 3600.0) -> TrendHistory:
    """A bearing warming 55 -> 90 °C over ``hours`` at 1 Hz, with a 3-second knock to 99."""
    h = TrendHistory(["bearing_temp", "flow"])
    n = int(hours * 3600)
    for i in range(n):
        temp = 55.0 + 35.0 * i / n
        if spike_at <= i < spike_at + 3:
            temp = 99.0
        h.add(float(i), {"bearing_temp": temp, "flow": 90.0})
    return h


def test_a_slow_rise_and_a_spike_both_show_at_every_span() -> None:
    h = shift()
    memory = h.memory_bytes
    for span, spec in enumerate(SPANS):
        w = h.window("bearing_temp", span, 70)
        assert w is not None
        assert len(w.lo) == len(w.hi) == 70
        finite = np.isfinite(w.hi)
        # The rise: the newest column is warmer than the oldest one shown.
        assert w.hi[finite][-1] > w.lo[finite][0]
        assert w.hi[-1] >= 89.0
        covers_spike = spec.seconds is None or spec.seconds >= 8 * 3600 - 3 * 3600
        if covers_spike:
            assert float(np.nanmax(w.hi)) == 99.0, spec.label  # not averaged away
        assert float(np.nanmin(w.lo)) >= 55.0  # the min is a real sample, not a blend
    assert h.memory_bytes == memory  # nothing grew


def test_the_run_span_holds_the_whole_run_in_fixed_buckets() -> None:
    h = shift(hours=20.0, spike_at=60.0)
    w = h.window("bearing_temp", len(SPANS) - 1, 100)
    assert w is not None
    assert w.start == 0.0 and w.end >= 20 * 3600
    assert h.bucket_s(len(SPANS) - 1) * COLUMNS >= 20 * 3600
    assert float(np.nanmax(w.hi)) == 99.0  # a knock in the first minute, 20 hours later
    assert float(w.lo[0]) == 55.0


def test_a_new_run_clears_the_history_and_late_samples_are_harmless() -> None:
    h = shift(hours=1.0)
    h.add(3599.0 - 10, {"bearing_temp": 60.0})  # late, within its bucket's ring: folded in
    h.add(5.0, {"bearing_temp": 40.0})  # time jumped back: a reload, a new run
    w = h.window("bearing_temp", 0, 10)
    assert w is not None and float(np.nanmax(w.hi)) == 40.0
    assert h.window("flow", 0, 10) is not None
    assert np.isnan(h.window("flow", 0, 10).hi).all()  # type: ignore[union-attr]


def test_columns_wider_than_buckets_repeat_and_missing_signals_are_blank() -> None:
    h = TrendHistory(["a"])
    for i in range(30):
        h.add(float(i), {"a": float(i)})
    w = h.window("a", 3, 200)  # 30 s of run over 200 columns
    assert w is not None and np.isfinite(w.hi).all()
    assert h.window("missing", 0, 10) is None


def test_chart_marks_limits_episodes_and_time() -> None:
    h = shift(hours=1.0, spike_at=1800.0)
    width, height = 80, 20
    limits = [Limit(80.0, "H", "warn"), Limit(90.0, "HH", "alarm")]
    w = h.window("bearing_temp", 1, plot_width(width, limits))
    lines = plot_lines(
        w,
        lo=20.0,
        hi=100.0,
        decimals=0,
        width=width,
        height=height,
        limits=limits,
        episodes=[Episode(1800.0, 1900.0, "medium"), Episode(3000.0, None, "high")],
    )
    text = ["".join(t for t, _ in line) for line in lines]
    assert len(text) == height and all(len(t) == width for t in text)
    assert any(t.rstrip().endswith("HH 90") for t in text)
    assert any("╌" in t and t.rstrip().endswith("H 80") for t in text)
    alarms = text[-1]
    assert alarms.startswith(" alarms") and "M" in alarms and alarms.rstrip().endswith("H")
    assert "┊" in "".join(text[:-3])  # onset lines
    assert "00:30" in text[-2]  # a time label at the spike's half hour
    styles = {s for line in lines for _, s in line}
    assert {"band", "band-alarm", "limit-warn", "limit-alarm", "sev-medium", "sev-high"} <= styles


def test_chart_without_data_draws_the_frame() -> None:
    lines = plot_lines(None, lo=0.0, hi=8.0, decimals=2, width=40, height=10)
    text = ["".join(t for t, _ in line) for line in lines]
    assert "no data yet" in text[-1]
    assert text[0].startswith("   8.00┤")


def test_time_ticks_are_round_and_spaced_for_their_labels() -> None:
    ticks = time_ticks(3600.0, 7200.0, 100, 5)
    times = [t for _, t in ticks]
    assert all(t % 300 == 0 for t in times)
    cols = [c for c, _ in ticks]
    assert all(b - a >= 8 for a, b in itertools.pairwise(cols))


def test_a_limit_label_is_never_cut_mid_number() -> None:
    """The demo's bearing limit was drawn as " limit 85." at 80 columns (the label margin is
    ten cells): decimals give way first."""
    h = shift(hours=1.0, spike_at=1800.0)
    limits = [Limit(85.0, "limit", "alarm")]
    w = h.window("bearing_temp", 1, plot_width(80, limits))
    lines = plot_lines(w, lo=20.0, hi=100.0, decimals=1, width=80, height=20, limits=limits)
    text = ["".join(t for t, _ in line) for line in lines]
    assert all(len(t) == 80 for t in text)
    assert any(t.endswith(" limit 85 ") for t in text), text
