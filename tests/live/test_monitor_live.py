"""The monitor service on a real broker: a second scenario on the same asset is watched from
scratch (issue 9), and what the monitor does not use is dead-lettered and counted (issue 12)."""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid

from probes import health

from engine.bus.client import BusClient
from engine.paths import var_dir
from engine.plant.scenario import load_scenario
from engine.plant.simulator import Simulator
from engine.schemas import AlertEvent, Telemetry, telemetry_topic
from engine.services.stack import CODE_ROOT

PREFIX = f"monlive{uuid.uuid4().hex[:6]}"


def test_scenario_a_then_b_alarms_in_b_and_rejects_are_dead_lettered(
    tmp_path, broker, wait_for, serve_process
):
    var = tmp_path / "var"
    env = {
        "CONTROLROOM_CLIENT_PREFIX": PREFIX,
        **os.environ,
        "PYTHONPATH": CODE_ROOT,
        "CONTROLROOM_VAR": str(var),
        "CONTROLROOM_ENV_FILE": str(tmp_path / "none.env"),
        "CONTROLROOM_BROKER": broker.url,
    }
    proc, url = serve_process(["monitor"], env)
    alerts: list[AlertEvent] = []
    lock = threading.Lock()

    def on_alert(a: AlertEvent) -> None:
        with lock:
            alerts.append(a)

    sub = BusClient(
        broker.url, f"mon-sub-{uuid.uuid4().hex[:6]}", "mon-sub", var=var_dir(os.environ)
    )
    sub.subscribe("alerts/+", on_alert)  # type: ignore[arg-type]
    sub.start(wait=10)
    pub = BusClient(
        broker.url, f"mon-pub-{uuid.uuid4().hex[:6]}", "mon-pub", var=var_dir(os.environ)
    ).start(wait=10)
    try:
        wait_for(lambda: health(url), timeout=30, what="monitor healthy")
        a = load_scenario("normal").model_copy(update={"duration_s": 900.0})
        b = load_scenario("sudden_clog_and_drift").model_copy(update={"duration_s": 3060.0})
        sent = 0
        for scenario in (a, b):
            for t in Simulator(scenario).run():
                pub.publish(t)
                sent += 1
                if sent % 400 == 0:  # paced: the service keeps up, nothing queues up
                    wait_for(
                        lambda n=sent: health(url)["counters"]["received"] >= n,  # type: ignore[index]
                        timeout=30,
                        what=f"{sent} samples received",
                    )

        def clog_alarm() -> AlertEvent | None:
            with lock:
                return next((x for x in alerts if x.ts >= 3000.0 and x.status == "active"), None)

        alarm = wait_for(clog_alarm, timeout=30, what="an alarm in scenario B")
        assert alarm.asset == "pump01" and "res.flow" in alarm.signals and alarm.ts <= 3030.0
        last = Telemetry.model_validate_json(t.to_json())
        pub.publish(last)  # the same sample again
        pub.publish(last.model_copy(update={"seq": last.seq - 2, "ts": last.ts - 2.0,
                                            "msg_id": "late"}))  # fmt: skip

        def rejected() -> dict | None:
            h = health(url)
            r = (h or {}).get("rejected", {})
            return h if r.get("duplicate") == 1 and r.get("late") == 1 else None

        h = wait_for(rejected, timeout=20, what="duplicate and late counted")
        assert h["rejected"]["new_run"] == 1
        assert h["counters"]["dead_letters"] >= 2
        letters = [
            json.loads(line)
            for line in (var / "deadletter" / "monitor.jsonl").read_text().splitlines()
        ]
        reasons = [d["reason"] for d in letters]
        assert any("duplicate" in r for r in reasons) and any("late" in r for r in reasons)
        assert all(d["topic"] == telemetry_topic("pump01") for d in letters)
    finally:
        pub.stop()
        sub.stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
