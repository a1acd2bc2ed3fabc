"""Agent B over an alert's life: partial samples, escalation updates (C2), state across a restart.

Each test feeds the real agent the messages of a real replay (the session's demo runs), changed
the way the live bus can change them: samples missing signals, later revisions of an alert, an
agent replaced mid-run by one restored from the first one's exported state — or by one with no
state at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.agent_files import load_rules
from engine.agents.diagnosis import DiagnosisAgent
from engine.agents.diagnosis_state import DiagnosisState
from engine.agents.steady import SteadyRunning, SteadyRunningArray
from engine.schemas import AlertEvent, DiagnosisReport, PlantMessage, Telemetry

RULES = load_rules()


def revise(a: AlertEvent, revision: int, severity: str, ts: float, **kw: Any) -> AlertEvent:
    """A later revision of alert ``a``, as contract C1 publishes it."""
    data = a.model_dump() | {"severity": severity, "ts": ts, "revision": revision, **kw}
    return AlertEvent.model_validate(data)


def inputs(run) -> list[PlantMessage]:
    """What the diagnosis agent receives in a run: telemetry and alerts, in bus order."""
    return [m for m in run.messages if isinstance(m, Telemetry | AlertEvent)]


def first_alert(run) -> tuple[AlertEvent, list[PlantMessage], int]:
    """The run's first alert, what the agent receives in the run, and where the alert is in it."""
    alert = run.active[0]
    msgs = inputs(run)
    return alert, msgs, msgs.index(alert)


def feed_all(agent: DiagnosisAgent, msgs: list[PlantMessage]) -> list[DiagnosisReport]:
    out: list[DiagnosisReport] = []
    for m in msgs:
        out += agent.feed(m)  # type: ignore[arg-type]
    return out


def as_json(reports: list[DiagnosisReport]) -> list[str]:
    return [r.to_json() for r in reports]


# ------------------------------------------------------------------ partial samples (issue 12.3)


def test_a_sample_missing_signals_does_not_crash_and_is_held(demo_run) -> None:
    """A complete sample then one without a signal used to raise ValueError (the held row was
    mutated by the residuals appended to it). Missing signals hold their last value."""
    run = demo_run("chronic_wear")
    names = list(run.telemetry[0].signals)
    msgs = []
    for m in inputs(run):
        if isinstance(m, Telemetry) and m.seq % 7 == 3:
            dropped = {names[m.seq % len(names)], names[(m.seq // 7) % len(names)]}
            m = m.model_copy(
                update={"signals": {k: v for k, v in m.signals.items() if k not in dropped}}
            )
        elif isinstance(m, Telemetry) and m.seq % 50 == 11:
            m = m.model_copy(update={"signals": {"flow": m.signals["flow"]}})  # one signal only
        msgs.append(m)
    out = feed_all(DiagnosisAgent(RULES), msgs)
    finals = [d for d in out if d.stage == "final"]
    assert [d.root_cause for d in finals] == [d.root_cause for d in run.diagnoses]
    assert [d.alert_id for d in finals] == [a.alert_id for a in run.active]


def test_stale_and_future_samples_never_decide_a_final(demo_run) -> None:
    """Issue 12 items 2 and 5: one sample stamped 10**6 s ahead, arriving while a final was
    pending, made it due at once — decided on no history as "unknown", and the ticket store
    settles an episode's cause on its first final. Samples out of order (and unconfirmed
    jumps) are kept out of the history, counted and reported; the finals are unchanged."""
    run = demo_run("sudden_clog_and_drift")
    msgs: list[PlantMessage] = []
    for m in inputs(run):
        msgs.append(m)
        if isinstance(m, Telemetry) and m.seq in (3020, 3021, 7300):
            for k in (10**6, -2000):
                msgs.append(m.model_copy(update={"msg_id": f"x{m.seq}{k}", "seq": m.seq + k,
                                                 "ts": m.ts + k}))  # fmt: skip
            msgs.append(m)  # and a duplicate
    agent = DiagnosisAgent(RULES)
    out = feed_all(agent, msgs)
    clean = feed_all(DiagnosisAgent(RULES), inputs(run))
    assert as_json(out) == as_json(clean)
    assert next(d.root_cause for d in out if d.stage == "final") == "clogging"
    assert (agent.stats["jump"], agent.stats["duplicate"], agent.stats["new_run"]) == (6, 3, 0)
    kinds = sorted(r.kind for r in agent.take_rejections())
    assert kinds == ["duplicate"] * 3 + ["jump"] * 6 and agent.take_rejections() == []


def test_partial_first_samples_and_reordered_signals(demo_run) -> None:
    run = demo_run("sudden_clog_and_drift")
    agent = DiagnosisAgent(RULES)
    tele = run.telemetry
    agent.feed(tele[0])
    agent.feed(tele[1].model_copy(update={"signals": {"speed": tele[1].signals["speed"]}}))
    reordered = dict(reversed(list(tele[2].signals.items())))
    agent.feed(tele[2].model_copy(update={"signals": reordered}))
    out = feed_all(agent, [m for m in inputs(run) if not isinstance(m, Telemetry) or m.seq > 2])
    assert [d.root_cause for d in out if d.stage == "final"] == ["clogging", "sensor_drift"]


# ------------------------------------------------------------------ escalation (contract C2)


def test_escalation_updates_carry_the_cause_and_never_lower_the_severity(demo_run) -> None:
    run = demo_run("chronic_wear")
    alert, msgs, i = first_alert(run)
    agent = DiagnosisAgent(RULES)
    before = feed_all(agent, msgs[: i + 1])
    (prov,) = before
    assert prov.stage == "provisional" and prov.severity == "medium"

    def at(ts: float) -> list[DiagnosisReport]:
        """Feed telemetry up to ``ts``."""
        nonlocal i
        out = []
        while isinstance(msgs[i + 1], Telemetry) and msgs[i + 1].ts <= ts:
            i += 1
            out += agent.feed(msgs[i])  # type: ignore[arg-type]
        return out

    assert at(alert.ts + 5) == []
    # low -> medium: the alert rose, but not above what the report already said.
    assert agent.feed(revise(alert, 1, "medium", alert.ts + 5)) == []
    (upd,) = agent.feed(revise(alert, 2, "high", alert.ts + 10))
    assert (upd.stage, upd.severity, upd.diagnosis_id) == ("update", "high", f"{alert.alert_id}-U2")
    assert (upd.root_cause, upd.confidence) == (prov.root_cause, prov.confidence)
    assert upd.ts == alert.ts + 10
    assert upd.alert_id == alert.alert_id and upd.evidence == prov.evidence
    assert agent.feed(revise(alert, 2, "high", alert.ts + 10)) == []  # redelivered
    assert agent.feed(revise(alert, 1, "medium", alert.ts + 5)) == []  # late, older
    assert agent.feed(revise(alert, 3, "medium", alert.ts + 20)) == []  # lower: no update
    (final,) = at(alert.ts + 120)
    assert final.stage == "final" and final.root_cause == "bearing_wear"
    assert final.severity == "high"  # physics says medium; the escalation already said high
    (upd2,) = agent.feed(revise(alert, 4, "critical", alert.ts + 200))
    assert (upd2.stage, upd2.severity, upd2.diagnosis_id) == (
        "update",
        "critical",
        f"{alert.alert_id}-U4",
    )
    assert upd2.root_cause == final.root_cause and upd2.summary == final.summary
    cleared = revise(alert, 5, "critical", alert.ts + 300, status="cleared", cleared_ts=6000.0)
    assert agent.feed(cleared) == []  # nothing new on a clear once the final is out
    assert agent.feed(revise(alert, 4, "critical", alert.ts + 200)) == []  # after the clear
    assert agent.feed(revise(alert, 6, "critical", alert.ts + 400)) == []


def test_escalation_before_the_final_and_a_clear_that_decides(demo_run) -> None:
    run = demo_run("sudden_clog_and_drift")
    clog, msgs, i = first_alert(run)
    agent = DiagnosisAgent(RULES)
    (prov,) = feed_all(agent, msgs[: i + 1])
    assert prov.severity == clog.severity != "critical"
    (upd,) = agent.feed(revise(clog, 1, "critical", clog.ts + 1))
    assert upd.stage == "update" and upd.severity == "critical"
    assert upd.root_cause == prov.root_cause  # the cause it already reported
    feed_all(agent, msgs[i + 1 : i + 20])
    (final,) = agent.feed(revise(clog, 2, "critical", clog.ts + 20, status="cleared"))
    assert final.stage == "final" and final.severity == "critical"  # never lower than announced


def test_scoring_ignores_updates() -> None:
    from engine.evaluation.scoring import StreamScorer

    base = dict(alert_id="a", asset="p", ts=1.0, onset_ts=1.0, confidence=0.9, summary="s")
    scorer = StreamScorer()
    for stage, cause in (
        ("provisional", "clogging"),
        ("update", "clogging"),
        ("final", "valve_stuck"),
    ):
        scorer.add(
            DiagnosisReport(
                diagnosis_id=f"a-{stage}", stage=stage, root_cause=cause, severity="low", **base
            )
        )
    assert scorer._diag == {"a": "valve_stuck"} and scorer._prov == {"a": "clogging"}


# ------------------------------------------------------------------ state across a restart (12.8)


def _cuts(run) -> dict[str, int]:
    msgs = inputs(run)
    clog, drift = run.active[0], run.active[1]
    i, j = msgs.index(clog), msgs.index(drift)
    return {
        "warm-up": 300,
        "right after the alert": i + 1,
        "while the final waits": i + 31,
        "after the final": i + 400,
        "second alert pending": j + 10,
    }


@pytest.mark.parametrize(
    "cut",
    [
        "warm-up",
        "right after the alert",
        "while the final waits",
        "after the final",
        "second alert pending",
    ],
)
def test_a_restored_agent_carries_on_exactly(demo_run, cut: str) -> None:
    run = demo_run("sudden_clog_and_drift")
    msgs = inputs(run)
    k = _cuts(run)[cut]
    whole = DiagnosisAgent(RULES)
    feed_all(whole, msgs[:k])
    saved = whole.export_state(tail_s=3600).model_dump_json()
    expected = feed_all(whole, msgs[k:]) + whole.flush()

    restored = DiagnosisAgent(RULES)
    restored.restore_state(DiagnosisState.model_validate_json(saved))
    got = feed_all(restored, msgs[k:]) + restored.flush()
    assert as_json(got) == as_json(expected)
    assert expected or cut == "after the final"


def test_pending_finals_survive_with_the_compact_state(demo_run) -> None:
    """The default export carries only the history pending finals need: those finals come out
    the same; the state stays small."""
    run = demo_run("sudden_clog_and_drift")
    msgs = inputs(run)
    k = _cuts(run)["while the final waits"]
    whole = DiagnosisAgent(RULES)
    feed_all(whole, msgs[:k])
    saved = whole.export_state().model_dump_json()
    assert len(saved) < 400_000
    expected = [d for d in feed_all(whole, msgs[k:]) if d.stage == "final"][:1]
    restored = DiagnosisAgent(RULES)
    restored.restore_state(DiagnosisState.model_validate_json(saved))
    got = [d for d in feed_all(restored, msgs[k:]) if d.stage == "final"][:1]
    assert as_json(got) == as_json(expected) and got[0].root_cause == "clogging"


def test_a_corrupt_state_is_refused_by_the_model(demo_run) -> None:
    run = demo_run("sudden_clog_and_drift")
    agent = DiagnosisAgent(RULES)
    feed_all(agent, inputs(run)[:2000])
    data = agent.export_state(tail_s=60).model_dump(mode="json")
    data["assets"][0]["history"]["rows"][0] = [1.0, 2.0]
    with pytest.raises(ValueError, match="every row needs"):
        DiagnosisState.model_validate(data)
    with pytest.raises(ValueError, match="columns"):
        DiagnosisState.model_validate({"columns": ["flow"], "assets": []})


def test_without_state_the_agent_defers_and_never_guesses(demo_run) -> None:
    """A restart with no saved state, mid-fault: the alert is redelivered before any telemetry.
    No report until the agent can judge; no final it cannot support; the work order still gets
    a report (provisional) saying why the cause is undetermined."""
    run = demo_run("sudden_clog_and_drift")
    clog, msgs, i = first_alert(run)
    agent = DiagnosisAgent(RULES)
    assert agent.feed(clog) == []  # nothing known about pump01 yet: deferred
    out: list[tuple[float, DiagnosisReport]] = []
    for m in msgs[i + 1 :]:
        out += [(m.ts, d) for d in agent.feed(m)]  # type: ignore[arg-type]
    out += [(-1.0, d) for d in agent.flush()]
    clog_reports = [(ts, d) for ts, d in out if d.alert_id == clog.alert_id]
    # The clog never clears and the pump is faulty from the restart on: no healthy reference
    # can be learned, so the agent waits max_defer_s, then says it cannot tell.
    ((ts, rep),) = clog_reports
    assert rep.stage == "provisional" and rep.root_cause == "unknown"
    assert ts >= clog.ts + agent.config.max_defer_s
    assert "restarted without its saved state" in rep.summary
    assert not [d for _, d in out if d.stage == "final" and d.root_cause == "unknown"]
    assert agent.stats["deferred"] >= 1 and agent.stats["finals_abandoned"] >= 1


# ------------------------------------------------------------------ shared steady-running rule


def test_steady_running_scalar_and_array_agree() -> None:
    import numpy as np

    rng = np.random.default_rng(5)
    n, ticks = 6, 400
    speeds = np.zeros((ticks, n))
    for j in range(n):  # starts, stops, trims and noise
        level = 0.0
        for t in range(ticks):
            if rng.random() < 0.02:
                level = float(rng.choice([0.0, 2950.0, 2500.0, 2950.0]))
            target = speeds[t - 1, j] if t else 0.0
            step = max(-300.0, min(300.0, level - target))
            speeds[t, j] = target + step + rng.normal(0, 2)
    one = [SteadyRunning() for _ in range(n)]
    many = SteadyRunningArray(n)
    mask = np.ones(n, bool)
    for t in range(ticks):
        mask[:] = rng.random(n) > 0.1  # some pumps skip a tick
        settled = many.update(speeds[t], mask)
        for j in range(n):
            if mask[j]:
                one[j].update(float(speeds[t, j]))
            assert settled[j] == one[j].settled and many.steady_for[j] == one[j].steady_for
    assert many.steady_for.max() > 30  # some settled, some ramps seen
    # One reference speed per pump (a monitor that learns each pump's own): same rule.
    rated = np.array([2950.0, 1475.0])
    per = SteadyRunningArray(2, rated_rpm=rated)
    each = [SteadyRunning(rated_rpm=2950.0), SteadyRunning(rated_rpm=1475.0)]
    for v in (0.0, 600.0, 1200.0, 1400.0, 1410.0, 1420.0):
        got = per.update(np.array([v, v]))
        assert list(got) == [s.update(v) for s in each]
        assert list(per.running) == [s.running for s in each]


# ------------------------------------------------------------------ bounds


def _tele(asset: str, ts: float) -> Telemetry:
    return Telemetry(msg_id=f"{asset}-{ts}", asset=asset, seq=int(ts), ts=ts, signals={"x": 1.0})


def _raise(asset: str, n: int, ts: float) -> AlertEvent:
    return AlertEvent(
        alert_id=f"{asset}-A{n}",
        asset=asset,
        ts=ts,
        onset_ts=ts,
        severity="low",
        score=2.0,
        signals=["x"],
        detector="level",
    )


def test_assets_and_alerts_are_bounded() -> None:
    from engine.agents.diagnosis import DiagnosisConfig

    agent = DiagnosisAgent(RULES, config=DiagnosisConfig(max_assets=3, max_alerts_per_asset=2))
    agent.feed(_tele("busy", 0.0))
    assert agent.feed(_raise("busy", 1, 1.0))  # provisional at once (a non-pump stream)
    for i in range(6):
        agent.feed(_tele(f"idle{i}", float(i)))
    assert len(agent._assets) == 3 and "busy" in agent._assets  # pending: never dropped
    assert agent.stats["assets_dropped"] == 4
    agent.feed(_raise("busy", 2, 2.0))
    out = agent.feed(_raise("busy", 3, 3.0))  # a third alert: the oldest pending is decided
    assert [d.alert_id for d in out if d.stage == "final"] == ["busy-A1"]
    assert agent.stats["alerts_dropped"] == 1 and len(agent._assets["busy"].alerts) == 2


def test_the_work_order_follows_the_alarm_to_critical(demo_run, tmp_path) -> None:
    """Issue 9: through ``chronic_wear`` the monitor's alert escalates to CRITICAL (the bearing
    past the work order's ISO 10816-3 zone C/D limit); the diagnosis publishes updates and the
    one ticket's severity and priority follow, each change in its history."""
    from engine.tickets.store import TicketStore

    run = demo_run("chronic_wear")
    (alert,) = run.active
    revs = [a for a in run.alerts if a.alert_id == alert.alert_id]
    assert revs[-1].severity == "critical" or any(a.severity == "critical" for a in revs)
    store = TicketStore(tmp_path / "tickets.db")
    try:
        for d in run.all_diagnoses:
            store.record_diagnosis(d)
        (ticket,) = store.tickets()
        assert ticket.alert_ids == [alert.alert_id]
        assert ticket.severity == "critical" and "priority:P1" in ticket.labels
        assert "priority **P1**" in ticket.body
        escalations = [h for h in ticket.history if h.action == "severity_escalated"]
        assert escalations and "-> critical" in escalations[-1].detail
    finally:
        store.close_db()
