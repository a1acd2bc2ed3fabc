"""Every broker we start requires credentials, one identity per service, and enforces the ACL
of engine/bus/acl.py: each identity publishes only its own topics, the TUI none."""

from __future__ import annotations

import grp
import json
import os
import stat
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from engine.bus import acl
from engine.bus.acl import credentials_path
from engine.bus.broker import AmqttBroker, MosquittoBroker, connack_code, mosquitto_binary
from engine.bus.client import BusClient
from engine.paths import var_dir
from engine.schemas import AlertEvent, DiagnosisReport, Telemetry
from engine.services.stack import Stack
from engine.settings import process_environ


def alert(n: int, asset: str = "pump01") -> AlertEvent:
    return AlertEvent(alert_id=f"a{n}", asset=asset, ts=n, onset_ts=n, severity="high",
                      score=4.2, signals=["vibration"], detector="t")  # fmt: skip


def forged_diagnosis(n: int) -> DiagnosisReport:
    return DiagnosisReport(diagnosis_id=f"forged-{n}", alert_id=f"x{n}", asset="pump09", ts=1,
                           onset_ts=1, root_cause="bearing_wear", confidence=1.0,
                           severity="critical", summary="forged")  # fmt: skip


def test_credentials_are_generated_once_private_and_cover_every_identity(tmp_path):
    path = tmp_path / "var" / "broker" / "credentials.json"
    creds = acl.ensure_credentials(path)
    assert set(creds) == set(acl.ACL) and len(set(creds.values())) == len(creds)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert acl.ensure_credentials(path) == creds, "generated on first run only"
    assert json.loads(path.read_text())["identities"] == creds


def test_the_tui_reads_a_file_of_its_own_identity_alone(tmp_path):
    """The TUI (maybe a colleague's, in the operators' group) is given the read-only ``tui``
    password alone, never a file holding the identities that may publish."""
    path = tmp_path / "var" / "broker" / "credentials.json"
    creds = acl.ensure_credentials(path)
    tui = acl.tui_credentials(path)
    assert json.loads(tui.read_text())["identities"] == {"tui": creds["tui"]}
    assert stat.S_IMODE(tui.stat().st_mode) == 0o600
    assert acl.credentials_for("tui", None, tui) == ("tui", creds["tui"])
    assert acl.credentials_for("review", None, tui) is None
    group = grp.getgrgid(os.getgid()).gr_name
    assert acl.ensure_credentials(path, group) == creds
    assert stat.S_IMODE(tui.stat().st_mode) == 0o640 and tui.stat().st_gid == os.getgid()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o710, "the group may open, not list"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the services' passwords stay private"
    with pytest.raises(acl.CredentialsError, match="no such group"):
        acl.ensure_credentials(path, "no-such-group-here")


def test_broker_init_keeps_the_operators_read_of_the_tuis_file(tmp_path):
    """``controlroom broker init`` (the compose Mosquitto's files) wrote the credentials without
    the operators' group: run beside a stack started with ``CONTROLROOM_REVIEW_SOCKET_GROUP``,
    it set ``tui.json`` back to 0600 and ``var/broker`` to 0700, and every colleague's TUI
    (their own account, in the group) could no longer read its identity."""
    import subprocess
    import sys

    group = grp.getgrgid(os.getgid()).gr_name
    var = tmp_path / "var"
    path = var / "broker" / "credentials.json"
    acl.ensure_credentials(path, group)  # as the stack does (ensure_broker)
    env = {**os.environ, "CONTROLROOM_VAR": str(var), acl.OPERATORS_GROUP_ENV: group}
    env.pop(acl.CREDENTIALS_ENV, None)
    r = subprocess.run(
        [sys.executable, "-m", "engine", "broker", "init"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    tui = acl.tui_credentials(path)
    assert stat.S_IMODE(tui.stat().st_mode) == 0o640 and tui.stat().st_gid == os.getgid()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o710


def test_the_acl_table_grants_each_service_only_its_own_topics():
    assert acl.may_publish("diagnosis", "diagnosis/pump01")
    assert not acl.may_publish("monitor", "diagnosis/pump01")
    assert not acl.may_publish("tui", "tickets/pump01")
    assert acl.may_subscribe("tui", "tickets/+") and not acl.may_subscribe("tui", "#")
    assert not acl.may_publish(None, "alerts/pump01")
    assert not acl.may_publish("simulator", "telemetry/+")
    rendered = acl.mosquitto_acl_file()
    assert "user monitor\ntopic read telemetry/#\ntopic read feedback/#\ntopic write alerts/#" in (
        rendered
    )


def _brokers(tmp_path, creds):
    kinds = ["amqtt"] + (["mosquitto"] if mosquitto_binary() else [])
    for kind in kinds:
        if kind == "mosquitto":
            yield MosquittoBroker(workdir=tmp_path / "m", credentials=creds).start()
        else:
            yield AmqttBroker(credentials=creds).start()


def test_our_brokers_refuse_strangers_and_enforce_the_acl(tmp_path, wait_for):
    creds = acl.ensure_credentials(credentials_path(os.environ))  # the test's own var/
    for b in _brokers(tmp_path, creds):
        try:
            _check_acl(b, creds, wait_for)
        finally:
            b.cleanup()


def _check_acl(b, creds, wait_for) -> None:
    assert connack_code(b.host, b.port) == 5, f"{b.url}: anonymous refused"
    intruder = BusClient(
        f"mqtt://ticket:guess@127.0.0.1:{b.port}", "x", "intruder", var=var_dir(os.environ)
    )
    with pytest.raises(TimeoutError):
        intruder.start(wait=2)
    intruder.stop(drain=0.2)

    got: list[object] = []
    var, creds_file = var_dir(os.environ), credentials_path(os.environ)
    ticket = BusClient(b.url, f"t-{uuid.uuid4().hex[:6]}", "ticket-test",
                       identity="ticket", var=var, credentials=creds_file)  # fmt: skip
    ticket.subscribe("diagnosis/+", got.append)
    ticket.subscribe("alerts/+", got.append)
    ticket.start(wait=10)
    monitor = BusClient(b.url, f"m-{uuid.uuid4().hex[:6]}", "m", identity="monitor",
                        var=var, credentials=creds_file)  # fmt: skip
    samples: list[Telemetry] = []
    monitor.subscribe("telemetry/#", samples.append)
    monitor.start(wait=10)
    sim = BusClient(b.url, f"s-{uuid.uuid4().hex[:6]}", "s", identity="simulator",
                    var=var, credentials=creds_file)  # fmt: skip
    sim.start(wait=10)
    tui = BusClient(b.url, f"u-{uuid.uuid4().hex[:6]}", "tui", persistent=False,
                    var=var, credentials=creds_file)  # fmt: skip
    tui.start(wait=10)
    assert monitor.username == "monitor" and tui.username == "tui"
    wait_for(lambda: monitor.publish(alert(0)) and got, what=f"{b.url}: allowed alert")
    # forgeries: the monitor and the TUI publish a diagnosis; the TUI an alert
    monitor.publish(forged_diagnosis(1))
    tui.publish(forged_diagnosis(2))
    tui.publish(alert(3))
    assert monitor.flush(5) and tui.flush(5)
    monitor.publish(alert(4))  # allowed, and after the forgeries
    wait_for(lambda: any(getattr(m, "alert_id", "") == "a4" for m in got),
             what="the allowed alert after the forgeries")  # fmt: skip
    assert not [m for m in got if isinstance(m, DiagnosisReport)], "forged diagnosis"
    # telemetry (a replay of old samples could start a pump's run over): only the simulator
    for who, seq in ((sim, 0), (monitor, 1), (tui, 2), (sim, 3)):
        who.publish(Telemetry(msg_id=f"t{seq}", asset="pump01", seq=seq, ts=float(seq),
                              signals={"flow": 40.0}))  # fmt: skip
        assert who.flush(5)
    wait_for(lambda: 3 in [t.seq for t in samples], what=f"{b.url}: sim telemetry {samples}")
    assert [t.seq for t in samples] == [0, 3], "only the simulator publishes telemetry"
    assert "a3" not in [getattr(m, "alert_id", "") for m in got], "TUI published"
    # a raw client with the TUI's password reads only what the TUI may read: amqtt
    # refuses the '#' subscription, Mosquitto accepts it and filters every delivery
    raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"r-{uuid.uuid4().hex[:6]}")
    raw.username_pw_set("tui", creds["tui"])
    granted: list[object] = []
    topics: list[str] = []
    raw.on_subscribe = lambda c, u, mid, codes, p: granted.extend(codes)
    raw.on_message = lambda c, u, m: topics.append(m.topic)
    raw.connect(b.host, b.port)
    raw.loop_start()
    raw.subscribe([("#", 1), ("alerts/+", 1)])
    wait_for(lambda: len(granted) == 2, what="SUBACK")
    if isinstance(b, AmqttBroker):
        assert getattr(granted[0], "is_failure", False), granted
    wait_for(lambda: monitor.publish(alert(5)) and monitor.flush(5) and topics,
             what="an alert the TUI may read")  # fmt: skip
    assert monitor.flush(5)  # its durability round trip went to sync/monitor
    assert {t.split("/")[0] for t in topics} == {"alerts"}, topics
    raw.loop_stop()
    for c in (ticket, monitor, tui, sim):
        c.stop(drain=0.5)


def test_up_and_demo_stacks_run_on_an_authenticated_broker(tmp_path):
    with Stack(environ=process_environ(), broker_url="embedded", ports="auto", var=tmp_path / "var",
               services=("monitor", "ticket")) as stack:  # fmt: skip
        assert stack.broker is not None and "credentials" in stack.broker.describe()
        assert connack_code(stack.broker.host, stack.broker.port) == 5
        creds_file = tmp_path / "var" / "broker" / "credentials.json"
        assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
        for name in ("monitor", "ticket"):
            h = stack.health(name)
            assert h["broker"]["identity"] == name and h["broker"]["subscribed"], h
