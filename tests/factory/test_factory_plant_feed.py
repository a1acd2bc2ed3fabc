"""The plant feeds the factory: work orders on assets mapped to machines become scenarios.

Unit cases build real tickets in a real store (the diagnosis -> ticket path the ticket service
uses); the end-to-end case serves them from the real review service (``controlroom serve
review``, a child process on a free port with its own broker) and runs ``controlroom brief
--tickets URL``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from probes import http

from engine.bus.broker import free_port
from engine.cli import main
from engine.factory import run_pipeline
from engine.factory.plant_feed import TicketSourceError, fetch_tickets, ticket_scenarios
from engine.schemas import DiagnosisReport, Ticket
from engine.tickets.store import TicketStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tickets"))
from tickets_data import report

ROOT = Path(__file__).resolve().parents[2]
DATE = "2026-11-23"


def toy_with_assets(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "scenarios/factory/toy_day.yaml").read_text())
    data["machines"][1]["asset"] = "pump01"  # M2 is the pump the plant watches
    data["machines"][2]["asset"] = "pump02"
    path = tmp_path / "toy_assets.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def diagnosis(**fields: Any) -> DiagnosisReport:
    """A diagnosis as the agent publishes it (the tickets' test data): high bearing wear on
    pump01 (M2 in ``toy_with_assets``) unless ``fields`` say otherwise."""
    return report(**{"severity": "high", **fields})


def tickets_in(tmp_path: Path, *reports: DiagnosisReport) -> tuple[Path, list[Ticket]]:
    path = tmp_path / "var" / "controlroom.db"
    store = TicketStore(path)
    try:
        for r in reports:
            store.record_diagnosis(r)
        return path, store.tickets("active")
    finally:
        store.close_db()


def test_severity_and_action_set_the_window(tmp_path: Path) -> None:
    from engine.factory.config import load_factory

    factory = load_factory(toy_with_assets(tmp_path))
    _, tickets = tickets_in(
        tmp_path,
        diagnosis(),  # high bearing wear on pump01 (M2): a planned 4h stop today
        diagnosis(asset="pump02", root_cause="sensor_drift", category="instrumentation"),
        diagnosis(asset="pump77"),  # not a machine of this factory
    )
    specs, cites = ticket_scenarios(factory, tickets)
    assert len(specs) == 1
    spec = specs[0]
    assert spec.type.value == "MACHINE_DOWN" and spec.origin == "ticket"
    assert spec.down.machine_id == "M2" and spec.down.planned
    assert spec.down.end_time - spec.down.start_time == 4  # the bearing replacement
    assert {c.asset for c in cites} == {"pump01", "pump02"}  # pump77 maps to no machine
    drift = next(c for c in cites if c.asset == "pump02")
    assert drift.scenario_label is None and "no stop needed" in drift.work
    # Critical (or "stop the pump" as an instruction): down now, an outage, not movable.
    bearing = [t for t in tickets if t.asset == "pump01"]
    critical = [t.model_copy(update={"severity": "critical"}) for t in bearing]
    (now,) = ticket_scenarios(factory, critical)[0]
    assert (now.down.start_time, now.down.end_time, now.down.planned) == (0, 4, False)
    stop = [t.model_copy(update={"body": "1. Stop the pump and isolate it"}) for t in bearing]
    assert not ticket_scenarios(factory, stop)[0][0].down.planned
    # Medium: plan it within the week, no stop today; closed: ignored.
    medium = [t.model_copy(update={"severity": "medium"}) for t in tickets]
    assert ticket_scenarios(factory, medium)[0] == []
    closed = [t.model_copy(update={"state": "closed"}) for t in tickets]
    assert ticket_scenarios(factory, closed) == ([], [])
    # A factory may name its own repair times.
    longer = factory.model_copy(update={"repair_hours": {"bearing_wear": 6}})
    (six,) = ticket_scenarios(longer, tickets)[0]
    assert six.down.end_time - six.down.start_time == 6


def test_an_outage_ticket_is_cited_in_the_briefing(tmp_path: Path) -> None:
    path = toy_with_assets(tmp_path)
    _, tickets = tickets_in(tmp_path, diagnosis(severity="critical"))
    state = run_pipeline("", path, DATE, llm="off", tickets=tickets)
    assert state.pipeline_completed and state.pipeline_errors == ()
    label = "M2 repair (T-0001)"
    assert label in state.labels
    assert all(a.start_time >= 4 for a in state.sim_results[label].machine_allocations["M2"])
    md = state.briefing_markdown
    assert (
        "From work order T-0001 (bearing wear on pump01, critical, open): M2 down 0-4h for "
        "bearing replacement." in md
    )
    assert f"With work order T-0001 ({label})" in md  # the glance answers with it


def review_service(var: Path, broker_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLROOM_")}
    env.update(
        CONTROLROOM_VAR=str(var),
        CONTROLROOM_BROKER=broker_url,
        CONTROLROOM_ENV_FILE=str(var / "no.env"),
        CONTROLROOM_LOG_LEVEL="warning",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "review", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}"


def test_brief_takes_open_tickets_from_the_review_api(tmp_path, make_broker, wait_for, capsys):
    path = toy_with_assets(tmp_path)
    var = tmp_path / "var"
    tickets_in(tmp_path, diagnosis(), diagnosis(asset="pump02", severity="medium"))
    broker = make_broker()
    proc, url = review_service(var, broker.url)
    try:

        def healthy() -> bool:
            assert proc.poll() is None, "the review service exited"
            try:
                return http.get(url + "/health", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=30, what="the review service")
        assert [t.ticket_id for t in fetch_tickets(url)] == ["T-0002", "T-0001"]
        code = main(["brief", "", "--factory", str(path), "--date", DATE, "--llm", "off",
                     "--tickets", url, "--json"])  # fmt: skip
        out, err = capsys.readouterr()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert code == 0, err
    import json

    data = json.loads(out)
    labels = [s["label"] for s in data["scenarios"]]
    assert "M2 repair (T-0001)" in labels
    ticket_spec = next(s for s in data["scenarios"] if s["label"] == "M2 repair (T-0001)")
    assert ticket_spec["origin"] == "ticket" and ticket_spec["modifications"]["planned"]
    assert {c["ticket_id"] for c in data["tickets"]} == {"T-0001", "T-0002"}
    md = data["briefing_markdown"]
    assert "From work order T-0001 (bearing wear on pump01, high, open): M2 down" in md
    assert "Work order T-0002 (bearing wear on pump02, M3) needs no stop today" in md
    assert "Plant work orders | " in err and "2 open, 2 on mapped machines" in err


def test_ticket_sources_fail_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(TicketSourceError, match="no such ticket store"):
        fetch_tickets(str(tmp_path / "missing.db"))
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(TicketSourceError, match=f"127.0.0.1:{port}/tickets: cannot read"):
        fetch_tickets(f"http://127.0.0.1:{port}", timeout=2)
    assert time.monotonic() - t0 < 10
