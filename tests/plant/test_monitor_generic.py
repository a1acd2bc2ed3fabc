"""Agent A on any stream (a historian export, another plant): learned from the warm-up, scales
that never collapse, episodes that end, labels never read, causal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.agents.monitor import Monitor, MonitorConfig
from engine.cli import main
from engine.schemas import AlertEvent, Telemetry


def _stream(columns: dict[str, np.ndarray], asset: str = "kiln") -> list[Telemetry]:
    n = len(next(iter(columns.values())))
    return [
        Telemetry(
            msg_id=str(i),
            asset=asset,
            seq=i,
            ts=float(i),
            signals={k: float(v[i]) for k, v in columns.items()},
        )
        for i in range(n)
    ]


def _run(msgs: list[Telemetry], warmup: int = 400) -> tuple[list[AlertEvent], list[int]]:
    """Alerts, and the rows flagged (an episode open after the row)."""
    monitor = Monitor(MonitorConfig(warmup_n=warmup), id_prefix="g")
    alerts, flagged, open_ = [], [], set()
    for i, m in enumerate(msgs):
        for a in monitor.feed(m):
            alerts.append(a)
            (open_.add if a.status == "active" else open_.discard)(a.alert_id)
        if open_:
            flagged.append(i)
    return alerts, flagged


def test_quantised_and_constant_signals_do_not_collapse_the_thresholds() -> None:
    """SKAB's Pressure takes five values (a median absolute deviation of 0); a setpoint never
    moves. Neither makes a threshold of zero: 3,000 normal rows raise nothing."""
    rng = np.random.default_rng(11)
    n = 3400
    levels = np.array([-0.0273, 0.0547, 0.0809, 0.1072, 0.3826])
    quantised = rng.choice(levels, size=n, p=[0.05, 0.15, 0.6, 0.15, 0.05])  # five values
    constant = np.full(n, 3.5)
    flow = 32 + rng.normal(0, 0.4, n)
    slow = 70 + np.cumsum(rng.normal(0, 0.01, n))  # a temperature wandering slowly
    alerts, flagged = _run(
        _stream({"Pressure": quantised, "setpoint": constant, "flow": flow, "temp": slow})
    )
    assert alerts == [] and flagged == []
    warm = quantised[:400]
    assert len(np.unique(warm)) == 5 and np.median(np.abs(warm - np.median(warm))) == 0.0
    # ... and a real shift in the quantised signal is still seen.
    quantised[2500:] += 0.5
    alerts, _ = _run(
        _stream({"Pressure": quantised, "setpoint": constant, "flow": flow, "temp": slow})
    )
    raised = [a for a in alerts if a.status == "active" and a.revision == 0]
    assert raised and raised[0].signals[0] == "Pressure" and 2500 <= raised[0].ts < 2530


def test_one_spike_in_the_warm_up_does_not_mask_a_later_fault() -> None:
    """A glitch of 40 sd in one warm-up sample (inside the warm-up screen's range, so it is
    learned from) moves the ten window means that contain it; if the largest of them set the
    scale, the threshold would be 3.5 x 4 sd and the fault below (a step of 8 sd on the same
    signal) would never alarm. The calibration caps it by the largest departure a single
    spike cannot reach, so the fault is seen, on the faulty signal, as without the spike."""

    def columns(spike: float) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(1)
        a = rng.normal(0, 1.0, 1200)
        b = 0.5 * a + rng.normal(0, 1.0, 1200)
        c = rng.normal(0, 1.0, 1200)
        c[300] += spike
        c[800:] += 8.0
        return {"a": 50 + a, "b": 20 + b, "c": 10 + c}

    clean, _ = _run(_stream(columns(0.0)))
    spiked, _ = _run(_stream(columns(40.0)))
    for alerts in (clean, spiked):
        raised = [a for a in alerts if a.status == "active"]
        assert raised and raised[0].signals == ["c"] and 800 <= raised[0].ts <= 815


def test_an_episode_on_a_csv_stream_ends_and_a_second_one_is_its_own() -> None:
    """Two valve closures in one file (the SKAB shape): two alarms, each cleared when the flow
    is back, the rows between them unflagged."""
    rng = np.random.default_rng(5)
    n = 3000
    flow = 32 + rng.normal(0, 0.4, n)
    flow[900:1300] -= 2.5
    flow[2000:2400] -= 2.5
    temp = 75 + rng.normal(0, 0.1, n)
    alerts, flagged = _run(_stream({"flow": flow, "temp": temp}))
    raised = [a for a in alerts if a.status == "active" and a.revision == 0]
    cleared = [a for a in alerts if a.status == "cleared"]
    assert len(raised) == 2 and len(cleared) == 2
    assert [a.alert_id for a in raised] == [a.alert_id for a in cleared]
    assert 900 <= raised[0].ts < 940 and 1300 <= cleared[0].ts < 1360
    assert 2000 <= raised[1].ts < 2040
    rows = set(flagged)
    assert not rows & set(range(1400, 1990)) and not rows & set(range(400, 890))


def test_a_foreign_stream_is_causal_and_sees_a_stuck_transmitter() -> None:
    """Other names, other units: cross-regression level, stuck and noise detectors; the decision
    at sample t does not change when later samples are added."""
    rng = np.random.default_rng(1)
    n = 2400
    temp = 60 + rng.normal(0, 0.3, n)
    temp[1500:] += 5  # a level shift
    press = 3 + rng.normal(0, 0.02, n)
    press[1000:1100] = press[999]  # a frozen transmitter
    msgs = _stream({"TI-204.PV": temp, "PI_17": press})
    full, _ = _run(msgs, warmup=600)
    raised = [
        (a.ts, a.signals, a.evidence[0].detector)
        for a in full
        if a.status == "active" and a.revision == 0
    ]
    assert raised[0][1] == ["PI_17"] and raised[0][2] == "stuck" and 1015 <= raised[0][0] < 1040
    assert any(
        s[0] == "TI-204.PV" and d == "cross-regression" and 1500 <= t < 1540 for t, s, d in raised
    )
    cut = 1520
    prefix, _ = _run(msgs[:cut], warmup=600)
    assert [a.to_json() for a in prefix] == [a.to_json() for a in full if a.ts < cut]


def test_detect_never_reads_label_columns_and_says_what_it_used(tmp_path: Path, capsys) -> None:
    """The labels are the answer: a file whose only anomaly is in its label columns flags
    nothing, and the summary names used and ignored columns."""
    rng = np.random.default_rng(2)
    lines = ["datetime;Current;Volume Flow RateRMS;status;anomaly;changepoint;is_anomaly"]
    for i in range(1200):
        label = 1 if 700 <= i < 900 else 0
        stamp = f"2020-03-09 10:{(i // 60) % 60:02d}:{i % 60:02d}"
        if i >= 3600:
            stamp = f"2020-03-09 11:{(i // 60) % 60:02d}:{i % 60:02d}"
        lines.append(
            f"{stamp};{1.0 + rng.normal(0, 0.25):.4f};{32 + rng.normal(0, 0.4):.3f};RUN;"
            f"{label}.0;{label}.0;{label}"
        )
    path = tmp_path / "skab_like.csv"
    path.write_text("\n".join(lines) + "\n")
    flags = tmp_path / "flags.csv"
    assert main(["detect", str(path), "--warmup", "400", "--flags", str(flags)]) == 0
    out = capsys.readouterr().out
    assert "signals used: Current, Volume_Flow_RateRMS;" in out
    assert "anomaly (label)" in out and "changepoint (label)" in out
    assert "is_anomaly (label)" in out and "status (not numeric)" in out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("skab_like.csv: 1200 rows, 2 signals, 0 episodes, 0.0 % flagged")
    assert all(line.endswith(",0") for line in flags.read_text().splitlines()[1:])


def test_a_signal_that_starts_late_is_learned_or_reported_never_silently_ignored() -> None:
    """A channel missing from the first samples: starting during the warm-up, the warm-up
    starts over with it and its fault is seen; starting after the warm-up, it is reported
    once (kind ``signal``) and the other channels keep their detectors (no relearning)."""
    rng = np.random.default_rng(3)
    n = 3000
    a = 10 + rng.normal(0, 0.2, n)
    b = 20 + rng.normal(0, 0.3, n)
    c = 50 + rng.normal(0, 0.5, n)
    c[2200:] += 5.0

    def stream(start: int, shift_a: bool = False) -> list[Telemetry]:
        aa = a + (4.0 * (np.arange(n) >= 1500) if shift_a else 0.0)
        out = []
        for i in range(n):
            sig = {"a": float(aa[i]), "b": float(b[i])}
            if i >= start:
                sig["c"] = float(c[i])
            out.append(Telemetry(msg_id=str(i), asset="k", seq=i, ts=float(i), signals=sig))
        return out

    for start in (1, 200):
        alerts, _ = _run(stream(start))
        raised = [x for x in alerts if x.status == "active" and x.revision == 0]
        assert len(raised) == 1 and raised[0].signals == ["c"] and 2200 <= raised[0].ts < 2230
    monitor = Monitor(MonitorConfig(warmup_n=400), id_prefix="g")
    alerts = [x for m in stream(600, shift_a=True) for x in monitor.feed(m)]
    raised = [x for x in alerts if x.status == "active" and x.revision == 0]
    assert len(raised) == 1 and raised[0].signals == ["a"] and 1500 <= raised[0].ts < 1530
    assert [(r.kind, r.seq) for r in monitor.take_rejections()] == [("signal", 600)]
    assert monitor.unwatched("k") == ["c"] and monitor.counters["signal"] == 1
