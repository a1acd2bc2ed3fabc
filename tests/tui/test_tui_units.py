"""The TUI's pure parts: text safety, fixed-scale sparklines, the feed's bounds, step parsing,
edit validation, status parsing."""

from __future__ import annotations

import sys
import unicodedata
from datetime import timedelta

import numpy as np
from rich.console import Console
from tui_sample import alert, diagnosis, telemetry, ticket

from engine.plant.signals import SIGNALS
from engine.schemas import Telemetry
from tui.feed import PlantFeed
from tui.safe import clean, safe_text
from tui.screens.edit_ticket import validate_edit
from tui.sparkline import spark_rows
from tui.status import service_state
from tui.widgets.alert_feed import AlertFeed
from tui.widgets.step_log import status_of
from tui.widgets.ticket_detail import render_ticket


def test_clean_shows_control_characters_as_escapes() -> None:
    assert clean("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert clean("bell\x07\r") == "bell\\x07\\x0d"
    assert clean("two\nlines\tok") == "two\nlines\tok"
    assert clean("two\nlines", single_line=True) == "two lines"
    assert clean("rtl\u202eevil") == "rtl\\u202eevil"
    assert clean("°C m³/h é") == "°C m³/h é"


def test_zero_width_and_bidi_characters_are_escaped() -> None:
    """Issue 12 item 12: invisible format characters are shown, like other controls."""
    assert clean("ad\u200bmin") == "ad\\u200bmin"  # zero-width space
    assert clean("x\u2066y\u2069") == "x\\u2066y\\u2069"  # bidi isolates
    assert clean("\ufeffbom\u00adsoft") == "\\ufeffbom\\xadsoft"
    assert clean("tag\U000e0041") == "tag\\U000e0041"
    # Every format character Unicode knows (category Cf), and the separators, is escaped.
    invisible = [
        chr(c)
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) in ("Cf", "Zl", "Zp")
    ]
    assert [ch for ch in invisible if clean(ch) == ch] == []
    assert clean("café ☕ 日本") == "café ☕ 日本"  # visible text is untouched


def test_safe_text_is_never_markup() -> None:
    text = safe_text("[@click=app.quit]x [bold]b[/bold]")
    assert text.plain == "[@click=app.quit]x [bold]b[/bold]"
    assert text.spans == []


def test_sparkline_scale_is_fixed_not_autoscaled() -> None:
    """Noise of ±0.1 on a 0..8 scale stays flat; Textual's Sparkline would fill the height."""
    quiet = spark_rows([2.0, 2.1, 1.9, 2.0], lo=0.0, hi=8.0, width=4).rows[0]
    assert len(set(quiet)) == 1
    # The same value draws the same bar whatever else is in the window.
    a = spark_rows([2.0, 7.5], 0.0, 8.0, 2).rows[0][0]
    b = spark_rows([2.0, 0.5], 0.0, 8.0, 2).rows[0][0]
    assert a == b


def test_sparkline_clips_and_flags_out_of_range_and_pads_left() -> None:
    rows = spark_rows([-5.0, 4.0, 100.0], lo=0.0, hi=8.0, width=5, height=2)
    assert rows.clipped == [False, False, True, False, True]
    top, bottom = rows.rows
    assert top[:2] == "  " and bottom[:2] == "  "  # no data yet: blank, not a baseline
    assert bottom[2] == "▁" and top[2] == " "  # below range: one-eighth baseline
    assert top[4] == "█" and bottom[4] == "█"  # above range: full
    assert bottom[3] == "█" and top[3] == " "  # mid-range: bottom row full, top empty


def test_feed_is_bounded() -> None:
    now = [0.0]
    feed = PlantFeed(max_alerts=10, max_tickets=5, max_assets=3, clock=lambda: now[0])
    for asset in ("p1", "p2", "p3", "p4"):
        for t in telemetry(asset, 120):
            feed.ingest(t)
    # Full of live assets: a fourth is refused and counted, the others keep their history.
    assert feed.live_assets() == ["p1", "p2", "p3"]
    assert feed.counters.assets_refused == 120
    # Once the longest-silent asset has been idle long enough, a new one takes its place.
    now[0] = feed.idle_evict_s + 1
    for t in telemetry("p2", 5) + telemetry("p3", 5) + telemetry("p4", 5):
        feed.ingest(t)
    assert feed.live_assets() == ["p2", "p3", "p4"]
    assert feed.counters.assets_evicted == 1
    view = feed.asset_view("p4")
    assert view.trend is not None and view.trend.memory_bytes == feed.memory_per_asset()
    for i in range(30):
        feed.ingest(alert(f"a{i}", "p4", 10.0 + i, "low", ["flow"]))
    assert len(feed.alerts()) == 10
    assert feed.alerts()[0].alert_id == "a29"  # newest first
    feed.put_tickets([ticket(f"T-{i}") for i in range(12)])
    assert len(feed.tickets()) == 5


def test_memory_per_asset_is_fixed_and_small() -> None:
    """A pump's whole history is a fixed block: the same after 10 minutes as after 10 hours."""
    feed = PlantFeed()
    (sample,) = telemetry("p1", 1)

    def at(ts: float) -> Telemetry:
        return sample.model_copy(update={"ts": ts})

    for ts in range(600):
        feed.ingest(at(float(ts)))
    early = feed.memory_per_asset()
    for ts in range(600, 36_000, 7):
        feed.ingest(at(float(ts)))
    assert feed.memory_per_asset() == early < 64 * 1024
    trend = feed.asset_view("p1").trend
    assert trend is not None and trend.bucket_s(3) >= 36_000 / 160  # "run" spans all 10 h


def test_a_hundred_assets_keep_their_history() -> None:
    """Issue 14: at 100 assets (over the old cap of 64) every asset keeps its history."""
    feed = PlantFeed()
    for tick in range(30):
        for t in (telemetry(f"pump{i:03d}", 1, seed=i)[0] for i in range(100)):
            feed.ingest(t.model_copy(update={"ts": 3600.0 + tick}))
    assert len(feed.live_assets()) == 100
    trend = feed.asset_view("pump000").trend
    assert trend is not None
    window = trend.window("flow", 0, 160)
    assert window is not None and int(np.isfinite(window.hi).sum()) == 8  # 30 s / 3.75 s


def test_bus_ticket_snapshots_never_override_the_store() -> None:
    """Issue 12 item 5: a forged ``tickets/pump02`` snapshot with a huge revision is only a hint
    to refetch; the ticket shown stays the store's."""
    feed = PlantFeed()
    feed.put_tickets([ticket("T-1", asset="pump02", state="open", severity="critical")])
    forged = ticket("T-1", asset="pump02", state="closed", close_reason="duplicate", revision=999)
    feed.ingest(forged)
    assert feed.ticket("T-1").state == "open"  # type: ignore[union-attr]
    assert feed.take_ticket_hints() == ["T-1"]
    assert feed.take_ticket_hints() == []
    # An older fetch finishing after a newer one does not roll the ticket back.
    feed.put_tickets([ticket("T-1", asset="pump02", state="approved", revision=3)])
    feed.put_tickets([ticket("T-1", asset="pump02", state="open", revision=2)])
    assert feed.ticket("T-1").state == "approved"  # type: ignore[union-attr]
    # A complete listing drops what the store no longer has, but not a ticket fetched after
    # the listing was requested (a slow listing racing a new ticket's own fetch).
    mark = feed.ticket_mark()
    feed.put_tickets([ticket("T-3")])
    feed.put_tickets([ticket("T-2")], complete_since=mark)
    assert sorted(t.ticket_id for t in feed.tickets()) == ["T-2", "T-3"]


def test_a_flood_of_ticket_hints_is_bounded() -> None:
    feed = PlantFeed()
    for i in range(1000):
        feed.ingest(ticket(f"T-{i}"))
    assert len(feed.take_ticket_hints(limit=10_000)) == 256
    assert feed.counters.ticket_hints_dropped == 1000 - 256


def test_feed_joins_diagnoses_and_follows_alert_revisions() -> None:
    feed = PlantFeed()
    feed.ingest(diagnosis("a-9", "pump01", 100.0, "clogging", 0.7))  # before its alert
    feed.ingest(alert("a-9", "pump01", 95.0, "high", ["flow"]))
    (row,) = feed.alerts()
    assert row.diagnosis is not None and row.diagnosis.root_cause == "clogging"
    assert row.signals == ("flow",)
    assert feed.asset_view("pump01").alert_signals == {"flow"}
    feed.ingest(alert("a-9", "pump01", 130.0, "high", ["flow"], status="cleared"))
    assert feed.asset_view("pump01").alert_signals == frozenset()
    feed.ingest(alert("a-9", "pump01", 95.0, "high", ["flow"]))  # a redelivered "active"
    (row,) = feed.alerts()
    assert row.status == "cleared" and feed.counters.stale_alerts == 1
    assert row.peak_severity == "high"


def test_a_late_provisional_diagnosis_never_hides_the_final_one() -> None:
    feed = PlantFeed()
    feed.ingest(alert("a-7", "pump01", 95.0, "high", ["flow"]))
    provisional = diagnosis("a-7", "pump01", 95.0, "sensor_drift", 0.5).model_copy(
        update={"diagnosis_id": "a-7-D0", "stage": "provisional"}
    )
    final = diagnosis("a-7", "pump01", 400.0, "clogging", 0.8).model_copy(
        update={"diagnosis_id": "a-7-D1", "stage": "final"}
    )
    feed.ingest(provisional)
    (row,) = feed.alerts()
    assert row.diagnosis is not None and row.diagnosis.stage == "provisional"
    assert AlertFeed.diagnosis_cell(row).plain == " sensor_drift 50%?"  # marked as not settled
    feed.ingest(final)
    feed.ingest(provisional)  # redelivered after the final one (QoS 1, reconnect)
    (row,) = feed.alerts()
    assert row.diagnosis is not None and row.diagnosis.diagnosis_id == "a-7-D1"
    assert AlertFeed.diagnosis_cell(row).plain == " clogging 80%"


def test_ticket_body_renders_as_markdown_with_links_spelled_out() -> None:
    body = "**Work order** for pump01\n\n### Evidence\n- flow down\n\n[runbook](https://x.test/rb)"
    out = Console(width=60, color_system=None, record=True)
    out.print(render_ticket(ticket("T-5", body=body, state="open")))
    text = out.export_text()
    assert "Work order for pump01" in text and "**" not in text and "###" not in text
    assert "• flow down" in text
    assert "runbook (https://x.test/rb)" in text  # shown, not a clickable hyperlink


def test_step_events_show_their_typed_status() -> None:
    """The step log shows each StepEvent's own fields; nothing is parsed back from text."""
    from engine.factory.results import StepEvent

    agent = StepEvent(kind="briefing", name="Briefing Agent", latency_ms=1, status="valid",
                      output="521 words", source="offline", fallback=True)  # fmt: skip
    assert status_of(agent) == "fallback"
    assert status_of(agent.model_copy(update={"fallback": False})) == "valid"
    assert status_of(agent.model_copy(update={"status": "error"})) == "error"
    done = StepEvent(kind="pipeline", name="Pipeline", latency_ms=198, output="Scenarios: 3")
    assert status_of(done) == "ok"
    assert status_of(done.model_copy(update={"errors": 2})) == "2 errors"
    assert status_of(done.model_copy(update={"status": "halted"})) == "halted"
    assert agent.line().endswith("| Output: 521 words | Source: offline | Fallback: true")


def test_edit_validation_names_the_field() -> None:
    values, errors = validate_edit("  ", "b", "a, a, b", "high")
    assert errors == ["title: may not be empty"]
    assert values["labels"] == ["a", "b"]
    _, errors = validate_edit("t", "x" * 20_001, "", "urgent")
    assert any(e.startswith("body:") for e in errors)
    assert any(e.startswith("severity:") for e in errors)
    _, errors = validate_edit("t", "", "ok, " + "l" * 65, "low")
    assert any("at most 64" in e for e in errors)


def health_body(**over: object) -> dict[str, object]:
    """A /health reply as every service sends it (engine.http_schemas.Health; the counters are
    taken from the contract, so a new counter does not leave this helper behind)."""
    from engine.http_schemas import BusCounters

    counters: dict[str, object] = {
        name: {} if name.endswith("_by_kind") else 0 for name in BusCounters.model_fields
    }
    body: dict[str, object] = {
        "service": "monitor",
        "instance": "monitor",
        "status": "ok",
        "reasons": [],
        "pid": 1,
        "uptime_s": 5.0,
        "restarts": 0,
        "broker": {
            "url": "mqtt://h:1",
            "identity": "monitor",
            "connected": True,
            "subscribed": True,
            "error": None,
        },
        "shard": "1/1",
        "last_message_at": None,
        "last_published_at": None,
        "queue_depth": 0,
        "queue_bytes": 0,
        "dead_letters": 3,
        "counters": counters,
        "deadletter": {
            "file": "x",
            "written": 0,
            "bytes": 0,
            "max_bytes": 1,
            "rotations": 0,
            "files_dropped": 0,
            "write_errors": 0,
        },
        "retrying": None,
        "http": {
            "max_body_bytes": 1,
            "bodies_refused": 0,
            "heads_timed_out": 0,
            "idle_closed_for_room": 0,
        },
        "extra_key_of_one_service": 1,
    }
    return {**body, **over}


def test_service_state_reads_typed_health() -> None:
    from engine.http_schemas import BrokerStatus, Health
    from tui.status import BrokerSeen, HealthSeen

    Health.model_validate(health_body())  # the helper is a real /health body
    # What the TUI reads is a part of the contract, with the contract's types.
    for seen, full in ((HealthSeen, Health), (BrokerSeen, BrokerStatus)):
        for name, f in seen.model_fields.items():
            assert name in full.model_fields, f"{seen.__name__}.{name} not in {full.__name__}"
            if name != "broker":
                assert f.annotation == full.model_fields[name].annotation, name
    ok = service_state(health_body())
    assert ok.ok and ok.dead_letters == 3 and ok.restarts == 0
    degraded = service_state(health_body(status="degraded", reasons=["store cannot write"]))
    assert degraded.ok is False and degraded.detail == "store cannot write"
    off = health_body()
    off["broker"] = {**off["broker"], "connected": False}  # type: ignore[dict-item]
    assert service_state(off).detail == "broker disconnected"
    junk = service_state({"status": "ok"})
    assert junk.ok is False and junk.detail.startswith("unreadable /health:")
    # A counter the status bar does not show, added or gone (a TUI one version off the stack),
    # does not make a healthy service look broken; a field it shows, mistyped, does (named).
    skewed = health_body()
    skewed["counters"] = {"only_in_a_newer_service": 1}
    assert service_state(skewed).ok is True
    bad = service_state(health_body(dead_letters="many"))
    assert bad.ok is False and bad.detail.startswith("unreadable /health: dead_letters:")


def test_supervision_shows_in_the_status_bar() -> None:
    """Issue 12 item 9: a restarted service, one being restarted, a crash loop."""
    from engine.http_schemas import PartStatus, StackStatus
    from tui.status import with_supervision
    from tui.widgets.status_bar import _service_mark

    services = {n: service_state(health_body(service=n)) for n in ("monitor", "ticket")}
    services["monitor"] = service_state(health_body(restarts=2))

    def part(state: str, restarts: int) -> PartStatus:
        return PartStatus(
            state=state,  # type: ignore[arg-type]
            pid=None,
            restarts=restarts,
            last_exit="killed by SIGKILL",
            last_exit_at=None,
            next_restart_at=None,
        )

    stack = StackStatus(
        pid=1,
        started_at=0.0,
        updated_at=0.0,
        broker=None,
        supervised=True,
        gave_up=None,
        parts={"monitor": part("running", 2), "ticket": part("restarting", 1)},
    )
    merged, gave_up = with_supervision(services, stack)
    assert gave_up == ""
    assert _service_mark(merged["monitor"]) == ("●↻2", "yellow")
    assert _service_mark(merged["ticket"])[0] == "↻1"
    looping = stack.model_copy(
        update={"gave_up": "ticket crashed 5 times", "parts": {"ticket": part("crash-loop", 5)}}
    )
    merged, gave_up = with_supervision(services, looping)
    assert gave_up == "ticket crashed 5 times" and _service_mark(merged["ticket"])[0] == "✗✗"


def test_sample_data_uses_plant_signals() -> None:
    # Guard for the snapshot data: every plant signal is drawn.
    t = telemetry("p", 1)[0]
    assert set(t.signals) == set(SIGNALS)
    assert ticket("T").created_at - ticket("T", age_minutes=0).created_at == timedelta(minutes=-12)


def test_alert_signal_names_map_to_measured_signals() -> None:
    from tui.scales import measured_signals

    assert measured_signals("res.bearing_temp") == {"bearing_temp"}
    assert measured_signals("res.current") == {"motor_current"}
    assert measured_signals("res.head") == {"discharge_pressure", "suction_pressure"}
    assert measured_signals("vibration") == {"vibration"}


def test_cli_rejects_bad_input_before_touching_the_terminal() -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine", *args],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    r = run("tui", "--broker", "http://nope")
    assert r.returncode == 2 and "mqtt://" in r.stderr
    r = run("demo", "--scenario", "no_such_scenario")
    assert r.returncode == 2 and "no_such_scenario" in r.stderr
    r = run("tui")  # stdin is not a terminal
    assert r.returncode == 1 and "needs an interactive terminal" in r.stderr


def test_the_demo_forecasts_its_first_alarm_by_replay() -> None:
    """Issue 15: the scenario line says what is about to happen, computed, not guessed."""
    from engine.cli.ui import DEMO_SCENARIO, DEMO_SPEED
    from tui.forecast import forecast

    f = forecast(DEMO_SCENARIO, None)
    assert f is not None and f.fault == "bearing_wear" and f.first_alarm_ts is not None
    # Early enough that the alarm is on screen within 20 s of launch at the demo's speed
    # (start-up takes 8-10 s on a loaded 2-core machine: bench/demo_first_alarm.py).
    assert f.first_alarm_ts / DEMO_SPEED < 8.0
    eta = f"{f.first_alarm_ts / DEMO_SPEED:.0f}"
    hint = f.hint(0.0, DEMO_SPEED)
    assert hint is not None
    assert hint.long == f"bearing wear due; first alarm expected in ~{eta} s"
    assert hint.short == f"bearing wear: alarm in ~{eta} s"
    later = f.hint(f.onset_ts + 1, DEMO_SPEED)
    assert later is not None and later.long.startswith("bearing wear developing;")
    assert f.hint(f.first_alarm_ts, DEMO_SPEED) is None
    assert forecast("normal", None) is None  # no fault, nothing to announce
    assert forecast("no_such_scenario", None) is None


def test_kpi_panel_never_cuts_a_target() -> None:
    """Issue 13: each KPI with its EEMUA / ISA-18.2 target beside it, and the alarms annunciated
    beside those raised, nothing essential cut at 80x24: a narrow panel puts the target under
    its figure instead of cutting it."""
    from engine.alarms.kpis import Sample, compute
    from tui.screens.alarms import render_kpis

    samples = [Sample(f"pump0{i % 3}/vibration", "high", 60.0 * i, 60.0 * i + 30) for i in range(9)]
    samples += [Sample("pump04/flow", "low", 900.0, raised_as="out_of_service")]
    samples += [Sample("pump05/flow", "low", 950.0, raised_as="shelved")]
    kpis = compute(samples, 0.0, 3600.0)
    shown = "9 annunciated of 11 raised; 2 not: 1 out of service, 1 shelved"
    assert kpis.summary == shown
    for width in (40, 76, 160):
        console = Console(width=width, record=True, color_system=None)
        console.print(render_kpis(kpis))
        lines = console.export_text().splitlines()
        assert all(len(line) <= width for line in lines)
        words = " ".join(lines).split()
        assert "…" not in " ".join(lines)  # nothing cut with an ellipsis
        for row in kpis.rows:
            for text in (row.name, row.shown, row.target):
                assert all(w in words for w in text.split()), (width, text)
        assert shown in " ".join(lines), width  # the load beside what was shown of it
        one_line = all(
            any(row.name in line and row.target in line for line in lines) for row in kpis.rows
        )
        assert one_line == (width == 160), width  # wide: one line per KPI
