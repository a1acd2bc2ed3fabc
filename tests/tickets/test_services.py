"""The ticket and review services as real processes on a real broker: diagnosis -> one ticket ->
review over HTTP and from the CLI -> ticket snapshots and feedback on the bus; restarts of the
ticket service and of the broker (SIGTERM and SIGKILL) lose no ticket and double none.

Each test has its own broker: the services' client ids are fixed (``controlroom-ticket``), so on a
shared broker one test's leftover queued messages would reach the next test's service."""

from __future__ import annotations

import json
import os
import pwd
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from fake_github import FakeGitHub
from probes import http
from service_procs import ServiceProc, Watcher, review_socket_client, service_env, wait_subscribed
from tickets_data import alert, report

from engine.alarms.store import AlarmStore
from engine.auth.tokens import TokenRegistry
from engine.cli import main as cli
from engine.schemas import Feedback, utc_now
from engine.tickets.store import TicketStore


def log_lines(var: Path, service: str) -> list[dict[str, Any]]:
    path = var / "logs" / f"{service}.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def var(tmp_path: Path) -> Path:
    return tmp_path / "var"


def test_diagnosis_to_ticket_to_review(make_broker, bus_client, wait_for, var, capsys) -> None:
    broker = make_broker()
    github = FakeGitHub("ghp_test_token").start()
    env = service_env(
        var,
        broker.url,
        GITHUB_TOKEN=github.token,
        GITHUB_REPO=github.repo,
        GITHUB_API_URL=github.url,
    )
    ticket_svc = ServiceProc("ticket", env).launch()
    review_svc = ServiceProc("review", env).launch()
    ticket_svc.wait_healthy()
    review_svc.wait_healthy()
    try:
        watcher = Watcher(bus_client(broker.url, "watch"))
        pub = bus_client(broker.url, "pub")
        wait_subscribed(ticket_svc, watcher, pub, wait_for)
        pub.publish(alert(alert_id="A-1"))
        first = report(alert_id="A-1", stage="provisional")
        pub.publish(first)
        pub.publish(first.model_copy(update={"wall_time": time.time()}))  # a replay
        pub.publish(report(alert_id="A-1", severity="high"))  # the final diagnosis
        wait_for(
            lambda: (t := watcher.tickets.get("T-0001")) and len(t.diagnosis_ids) == 2,
            what="the ticket with both diagnoses on tickets/pump01",
        )
        assert watcher.tickets["T-0001"].occurrences == 1  # one alert: one occurrence
        store = TicketStore(var / "controlroom.db")
        assert len(store.tickets()) == 1
        assert store.get("T-0001").severity == "high"
        # Mirrored to GitHub by the ticket service; the link is announced on the bus.
        wait_for(
            lambda: (t := watcher.tickets["T-0001"]).external and t.external.id == "1",
            what="the GitHub issue link on tickets/pump01",
        )
        assert len(github.issues) == 1

        api = review_svc.url
        me = pwd.getpwuid(os.getuid()).pw_name
        local = review_socket_client(var)  # the operator is this process's login
        r = local.get("/tickets", params={"state": "open"})
        assert r.status_code == 200 and [t["ticket_id"] for t in r.json()] == ["T-0001"]
        assert local.get("/tickets/3").status_code == 404
        assert http.get(f"{api}/tickets").status_code == 401  # TCP needs a token

        # Approve over HTTP with ana's token: the ticket snapshot and the feedback reach the bus.
        token, _ = TokenRegistry(var / "operators.json").add("ana")
        r = http.post(
            f"{api}/review/approve",
            json={"ticket_id": "T-0001"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200 and r.json()["state"] == "approved"
        wait_for(lambda: watcher.feedback, what="feedback on feedback/pump01")
        fb = watcher.feedback[0]
        assert (fb.action, fb.who, fb.ticket_id, fb.root_cause) == (
            "approve",
            "ana",
            "T-0001",
            "bearing_wear",
        )
        wait_for(lambda: watcher.tickets["T-0001"].state == "approved", what="approved snapshot")
        # The mirror copies the approval and stores the issue's new sync time (a change, with
        # its own revision): wait for that to be done, so the refusals below are the only thing
        # that could change the ticket.
        wait_for(
            lambda: {"name": "approved"} in github.issues[1]["labels"],
            what="the approval on the issue",
        )
        wait_for(lambda: store.counts()["mirror_pending"] == 0, what="the mirror idle")

        # Refusals: clear message, nothing changed.
        before = store.get("T-0001")
        for path, body, status, text in [
            ("approve", {"ticket_id": "T-0001"}, 409, "is approved; only an open ticket"),
            ("approve", {"ticket_id": "T-0042"}, 404, "no ticket 'T-0042'"),
            ("close", {"ticket_id": "T-0001", "reason": "fixed"}, 422, "reason: Input should be"),
            ("close", {"ticket_id": "T-0001"}, 422, "reason: Field required"),
            ("edit", {"ticket_id": "T-0001"}, 422, "nothing to edit"),
            ("edit", {"ticket_id": "T-0001", "severity": "urgent"}, 422, "severity: Input"),
            ("edit", {"ticket_id": "T-0001", "owner": "x"}, 422, "owner: Extra inputs"),
            ("edit", {"ticket_id": "T-0001", "title": "x", "who": "ana"}, 422, "who: not acc"),
        ]:
            r = local.post(f"/review/{path}", json=body)
            assert r.status_code == status, (path, body, r.text)
            assert text in r.json()["detail"], r.json()
        assert store.get("T-0001") == before

        # The CLI drives the same API.
        assert cli(["tickets", "--api", api]) == 0
        out = capsys.readouterr().out
        assert "T-0001" in out and "approved" in out and "bearing_wear" in out
        assert cli(["tickets", "show", "1", "--api", api]) == 0
        out = capsys.readouterr().out
        assert "Vibration and bearing temperature rising" in out and "ana" in out
        assert cli(["tickets", "edit", "1", "--api", api, "--title", "Replace DE bearing"]) == 0
        assert cli(["tickets", "approve", "1", "--api", api]) == 2
        assert "only an open ticket can be approved" in capsys.readouterr().err
        code = cli(
            ["tickets", "close", "T-0001", "--reason", "resolved", "--note", "done", "--api", api]
        )
        assert code == 0
        t = store.get("T-0001")
        assert (t.state, t.close_reason, t.title) == ("closed", "resolved", "Replace DE bearing")
        assert [(h.who, h.action) for h in t.history][-3:] == [
            ("ana", "approved"),
            (me, "edited"),
            (me, "closed"),
        ]
        wait_for(lambda: len(watcher.feedback) == 3, what="edit and close feedback")
        assert [f.action for f in watcher.feedback] == ["approve", "edit", "close"]
        assert watcher.feedback[1].changes == {"title": "Replace DE bearing"}
        assert watcher.feedback[2].reason == "resolved"
        wait_for(lambda: watcher.tickets["T-0001"].state == "closed", what="closed snapshot")
        wait_for(lambda: github.issues[1]["state"] == "closed", what="the issue closed")
        assert github.issues[1]["title"] == "[T-0001] Replace DE bearing"
        assert len(github.issues) == 1 and ticket_svc.health()["mirror"]["failed"] == 0
        for path in [*(var / "logs").iterdir(), ticket_svc.stderr, var / "controlroom.db"]:
            assert github.token.encode() not in path.read_bytes(), path
        assert github.token not in json.dumps(ticket_svc.health())
        assert cli(["tickets", "--api", "http://127.0.0.1:9"]) == 1
        assert "cannot reach the review service" in capsys.readouterr().err

        # Alert -> ticket latency is in the ticket service's log, with the ids to join on.
        created = [x for x in log_lines(var, "ticket") if x["event"] == "ticket_created"]
        assert len(created) == 1
        line = created[0]
        assert line["ids"] == {
            "ticket_id": "T-0001",
            "alert_id": "A-1",
            "diagnosis_id": first.diagnosis_id,
        }
        assert line["latency_from"] == "alert" and 0 <= line["latency_ms"] < 10_000
        health = ticket_svc.health()
        assert health["diagnoses"] == {
            "created": 1,
            "updated": 0,
            "refined": 1,
            "revised": 0,
            "merged": 0,
            "escalated": 0,
            "kept": 0,
            "attached": 0,
            "noted": 0,
            "suppressed": 0,
            "duplicate": 1,
        }
        assert health["alert_to_ticket"]["n"] == 1  # the first ticket of each alert only
        assert review_svc.health()["actions"]["refused"] >= 8
        assert review_svc.health()["auth"]["refused"] == 1
        local.close()
        store.close_db()
    finally:
        ticket_svc.stop()
        review_svc.stop()
        github.stop()


# ---- nothing lost, nothing doubled ---------------------------------------------------------

EPISODES = 6
PER_EPISODE = 4


def stream() -> list[Any]:
    """EPISODES episodes (asset x root cause), PER_EPISODE diagnoses each, interleaved."""
    causes = ["bearing_wear", "clogging", "sensor_drift"]
    out = []
    for k in range(PER_EPISODE):
        for e in range(EPISODES):
            out.append(
                report(
                    diagnosis_id=f"D-{e}-{k}",
                    alert_id=f"A-{e}-{k}",
                    asset=f"pump{e % 2 + 1:02d}",
                    root_cause=causes[e % 3],
                    category="unknown",
                    ts=1000.0 + 100 * k,
                )
            )
    return out


def check_nothing_lost_or_doubled(store: TicketStore, watcher: Watcher, wait_for: Any) -> None:
    total = EPISODES * PER_EPISODE

    def done() -> bool:
        counts = store.counts()
        return counts["diagnoses"] == total and counts["outbox_pending"] == 0

    try:
        wait_for(done, timeout=30, what=f"all {total} diagnoses stored and announced")
    except BaseException:
        stored = {d for t in store.tickets() for d in t.diagnosis_ids}
        missing = [f"D-{e}-{k}" for k in range(PER_EPISODE) for e in range(EPISODES)]
        print("store:", store.counts(), "missing:", [d for d in missing if d not in stored])
        raise
    tickets = store.tickets()
    assert len(tickets) == EPISODES, [(t.asset, t.root_cause) for t in tickets]
    assert sorted(d for t in tickets for d in t.diagnosis_ids) == sorted(
        f"D-{e}-{k}" for e in range(EPISODES) for k in range(PER_EPISODE)
    ), "each diagnosis recorded exactly once"
    assert all(t.occurrences == PER_EPISODE for t in tickets)
    wait_for(
        lambda: all(
            (seen := watcher.tickets.get(t.ticket_id)) and seen.revision == t.revision
            for t in tickets
        ),
        timeout=30,
        what="every ticket's final state on the bus",
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_ticket_service_restart_mid_run(
    make_broker, bus_client, wait_for, var, sig, db_target
) -> None:
    """On each store: SQLite and PostgreSQL."""
    broker = make_broker()
    env = service_env(var, broker.url, CONTROLROOM_DB=str(db_target))
    svc = ServiceProc("ticket", env).start()
    watcher = Watcher(bus_client(broker.url, "watch"))
    pub = bus_client(broker.url, "pub")
    store = TicketStore(db_target)
    msgs = stream()
    try:
        wait_subscribed(svc, watcher, pub, wait_for)
        for m in msgs[:10]:
            pub.publish(m)
        pub.flush(10)
        svc.stop(sig)  # while it is still working through them
        for m in msgs[10:18]:
            pub.publish(m)  # queued by the broker for the service's persistent session
        pub.flush(10)
        svc.start()
        for m in msgs[18:]:
            pub.publish(m)
        for m in msgs[:6]:  # replays of diagnoses it may or may not have stored before
            pub.publish(m.model_copy(update={"wall_time": time.time()}))
        check_nothing_lost_or_doubled(store, watcher, wait_for)
        assert svc.health()["counters"]["dead_letters"] == 0
    finally:
        svc.stop()
        store.close_db()


@pytest.mark.parametrize("kill", [False, True], ids=["SIGTERM", "SIGKILL"])
def test_broker_restart_mid_run(make_broker, bus_client, wait_for, var, kill) -> None:
    """Mosquitto only (skipped without it): amqtt keeps sessions in memory, so a restart of the
    embedded fallback forgets every subscriber by design."""
    b = make_broker("mosquitto")
    svc = ServiceProc("ticket", service_env(var, b.url)).start()
    watcher = Watcher(bus_client(b.url, "watch"))
    pub = bus_client(b.url, "pub")
    store = TicketStore(var / "controlroom.db")
    msgs = stream()
    try:
        wait_subscribed(svc, watcher, pub, wait_for)
        for m in msgs[:12]:
            pub.publish(m)
        assert pub.flush(10)
        # flush() returned: every message is durable at the broker (saved on every change, and
        # confirmed by a later round trip), so even a SIGKILL right now loses none of them.
        b.stop(kill=kill)
        for m in msgs[12:]:
            pub.publish(m)  # while the broker is down: held by the publisher until reconnect
        b.start()
        check_nothing_lost_or_doubled(store, watcher, wait_for)
        assert svc.health()["broker"]["connected"]
        assert svc.health()["counters"]["connects"] >= 2
        assert pub.flush(10), "the publisher's queued messages were all acknowledged"
    finally:
        svc.stop()
        store.close_db()


def test_false_positive_close_tunes_the_running_monitor(
    make_broker, bus_client, wait_for, var
) -> None:
    """Close as false positive -> tuning saved before the feedback is published -> the monitor
    service applies it (its /health) -> the case is in the false-positive log; a hand-edited
    tuning file is adopted by the review service at its next start."""
    broker = make_broker()
    env = service_env(var, broker.url)
    procs = {n: ServiceProc(n, env).launch() for n in ("ticket", "review", "monitor")}
    for p in procs.values():
        p.wait_healthy()
    tuning_file = var / "tuning.json"
    file_at_feedback: list[str | None] = []
    try:
        bus = bus_client(broker.url, "watch")
        watcher = Watcher(bus)
        bus.subscribe(
            "feedback/+",
            lambda fb: file_at_feedback.append(
                tuning_file.read_text() if tuning_file.exists() else None
            ),
        )
        pub = bus_client(broker.url, "pub")
        wait_subscribed(procs["ticket"], watcher, pub, wait_for)
        pub.publish(report(signals=["vibration"], matched_rules=["R01_bearing_vib_temp"]))
        wait_for(lambda: "T-0001" in watcher.tickets, what="the ticket")
        r = review_socket_client(var).post(
            "/review/close", json={"ticket_id": "1", "reason": "false_positive", "note": "stroking"}
        )
        assert r.status_code == 200, r.text
        wait_for(lambda: file_at_feedback, what="the false-positive feedback")
        fb = watcher.feedback[0]
        assert fb.tuning_changes == [
            "threshold pump01/vibration x1 -> x1.1",
            "rule R01_bearing_vib_temp confidence +0 -> -0.05",
        ]
        assert file_at_feedback[0] is not None, "the tuning file existed when feedback arrived"
        assert json.loads(file_at_feedback[0])["thresholds"] == {"pump01/vibration": 1.1}

        def monitor_tuning() -> Any:
            return procs["monitor"].health()["tuning"]["in_effect"]

        wait_for(lambda: monitor_tuning(), what="the monitor to apply the tuning")
        assert monitor_tuning()["thresholds"] == {"pump01/vibration": 1.1}
        assert procs["review"].health()["tuning"]["in_effect"]["rule_offsets"] == {
            "R01_bearing_vib_temp": -0.05
        }
        fp_log = (var / "false_positives.jsonl").read_text().splitlines()
        assert len(fp_log) == 1 and Feedback.model_validate_json(fp_log[0]) == fb

        # An engineer edits the file by hand; the review service adopts it at its next start.
        procs["review"].stop()
        edited = json.loads(tuning_file.read_text())
        edited["thresholds"]["pump01/vibration"] = 2.0
        tuning_file.write_text(json.dumps(edited))
        procs["review"].start()
        in_effect = procs["review"].health()["tuning"]["in_effect"]
        assert in_effect["thresholds"] == {"pump01/vibration": 2.0}
        wait_for(
            lambda: monitor_tuning()["thresholds"] == {"pump01/vibration": 2.0},
            what="the monitor to reload the edited file",
        )
    finally:
        for p in procs.values():
            p.stop()


def test_shelved_and_out_of_service_alarms_open_no_ticket(
    make_broker, bus_client, wait_for, var
) -> None:
    """Contract C6 against the review service's real alarm tables in the same store: a
    diagnosis of a shelved alarm, or of an asset out of service, is recorded and opens no
    ticket; once unshelved, the alarm's next diagnosis opens one."""
    broker = make_broker()
    svc = ServiceProc("ticket", service_env(var, broker.url)).start()
    watcher = Watcher(bus_client(broker.url, "watch"))
    pub = bus_client(broker.url, "pub")
    alarms = AlarmStore(var / "controlroom.db")
    store = TicketStore(var / "controlroom.db")
    try:
        wait_subscribed(svc, watcher, pub, wait_for)
        now = utc_now()
        shelved = alert(alert_id="A-shelved", asset="pump01")
        alarms.record_alert(shelved, now)
        alarms.shelve("A-shelved", "ana", now, minutes=30, until_clear=False, note="stroking")
        alarms.set_out_of_service("pump02", True, "ben", now, "bearing change")
        for a in (
            shelved,
            alert(alert_id="A-oos", asset="pump02"),
            alert(alert_id="A-ok", asset="pump03"),
        ):
            pub.publish(a)
        quiet = [
            report(alert_id="A-shelved", asset="pump01", stage="provisional"),
            report(alert_id="A-oos", asset="pump02"),
        ]
        for r in [*quiet, report(alert_id="A-ok", asset="pump03")]:
            pub.publish(r)
        wait_for(lambda: store.counts()["diagnoses"] == 3, what="three diagnoses recorded")
        assert [t.asset for t in store.tickets()] == ["pump03"]
        assert svc.health()["diagnoses"]["suppressed"] == 2
        reasons = [x.get("reason", "") for x in log_lines(var, "ticket")]
        assert any("shelved" in r for r in reasons if r)
        assert any("out of service: bearing change" in r for r in reasons if r)
        alarms.unshelve("A-shelved", "ana", utc_now(), None)
        pub.publish(report(alert_id="A-shelved", asset="pump01"))  # its final diagnosis
        wait_for(lambda: len(store.tickets()) == 2, what="a ticket once unshelved")
        assert {t.asset for t in store.tickets()} == {"pump01", "pump03"}
    finally:
        svc.stop()
        alarms.close_db()
        store.close_db()
