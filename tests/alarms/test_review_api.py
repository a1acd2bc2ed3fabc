"""The alarm lifecycle through the real review service on loopback: alerts from a real broker,
real SQLite, the operator authenticated on the Unix socket, an injected clock that the test
moves. No pilot: the same client the TUI and the CLI use."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from alarm_data import ME, alert, wire

from engine.alarms.store import AlarmStore
from engine.review_client import ApiError


async def eventually(fetch: Any, check: Any, what: str, timeout: float = 10.0) -> Any:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if check(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last: {value!r}"[:2000])
        await asyncio.sleep(0.05)


async def test_alarms_from_the_bus_ack_shelve_and_auto_unshelve(
    make_review: Any, bus_client: Any, broker: Any, clock: Any
) -> None:
    review = make_review()
    pub = bus_client(broker.url, name="monitor-sim")
    pub.publish(wire("pump01-A1", severity="high", ts=1000.0))
    async with review.client() as api:
        [alarm] = await eventually(api.alarms, lambda x: len(x) == 1, "the alarm from the bus")
        assert (alarm.alarm_id, alarm.state, alarm.priority) == (
            "pump01-A1",
            "unacknowledged",
            "high",
        )
        assert alarm.active and not alarm.acknowledged and alarm.shelved_until is None

        acked = await api.ack("pump01-A1", note="seen, operator on the way")
        assert acked.state == "acknowledged" and acked.acknowledged_by == ME
        last = acked.history[-1]
        assert (last.who, last.action, last.note) == (
            ME,
            "acknowledged",
            "seen, operator on the way",
        )

        shelved = await api.shelve("pump01-A1", 30, note="valve work")
        assert shelved.state == "shelved" and shelved.shelved_until == clock.now.replace(minute=30)
        clock.advance(minutes=29, seconds=59)
        assert (await api.alarm("pump01-A1")).state == "shelved"
        clock.advance(seconds=1)
        back = await api.alarm("pump01-A1")
        assert (back.state, back.shelved_until) == ("acknowledged", None)
        assert back.history[-1].action == "shelve_expired" and back.history[-1].who == "system"

        pub.publish(wire("pump01-A1", status="cleared", severity="high", ts=1600.0, revision=1))
        done = await eventually(
            lambda: api.alarm("pump01-A1"), lambda a: not a.active, "the clear from the bus"
        )
        assert done.state == "normal" and [e.action for e in done.history] == [
            "raised",
            "acknowledged",
            "shelved",
            "shelve_expired",
            "returned_to_normal",
        ]
        assert await api.alarms() == []  # the default list shows what is not back to normal
        assert [a.alarm_id for a in await api.alarms("all")] == ["pump01-A1"]


async def test_illegal_transitions_are_4xx_with_a_reason(make_review: Any) -> None:
    review = make_review()
    review.service.on_alert(alert("pump02-A1", asset="pump02", severity="medium"))
    async with review.client() as api:
        await api.ack("pump02-A1")
        for call, status, words in [
            (api.ack("pump02-A1"), 409, f"already acknowledged by {ME}"),
            (api.unshelve("pump02-A1"), 409, "is not shelved"),
            (api.ack("nope"), 404, "no alarm 'nope'"),
            (api.shelve("pump02-A1", 481), 422, "less than or equal to 480"),
        ]:
            with pytest.raises(ApiError) as err:
                await call
            assert err.value.status == status and words in err.value.detail, err.value.detail
        await api.shelve("pump02-A1", 10)
        with pytest.raises(ApiError, match="unshelve it first") as err:
            await api.shelve("pump02-A1", 20)
        assert err.value.status == 409
        # the service refuses what the client would not send: a body naming its operator,
        # a shelve with both kinds, a note that forges a line
        raw = httpx.Client(transport=httpx.HTTPTransport(uds=str(review.socket)))
        for body, words in [
            ({"alarm_id": "pump02-A1", "who": "admin"}, "who: not accepted"),
            ({"alarm_id": "pump02-A1", "minutes": 5, "until_clear": True}, "not both"),
            ({"alarm_id": "pump02-A1", "note": "ok\n2026-12-01 admin acknowledged"}, "U+000A"),
            ({"alarm_id": "pump02-A1", "note": "\u202eevil"}, "U+202E"),
        ]:
            path = "/alarms/shelve" if "minutes" in body else "/alarms/ack"
            r = raw.post(f"http://review{path}", json=body)
            assert r.status_code == 422 and words in r.json()["detail"], r.text
        assert review.service.actions["refused"] >= 8
        alarm = await api.alarm("pump02-A1")
        assert [e.action for e in alarm.history] == ["raised", "acknowledged", "shelved"]


async def test_out_of_service_asset_and_the_ticket_path_check(
    make_review: Any, var: Any, clock: Any
) -> None:
    review = make_review()
    review.service.on_alert(alert("pump03-A1", asset="pump03"))
    async with review.client() as api:
        status = await api.out_of_service("pump03", True, "bearing change, permit 4711")
        assert (status.out_of_service, status.by, status.open_alarms) == (True, ME, 1)
        with pytest.raises(ApiError, match="already out of service") as err:
            await api.out_of_service("pump03", True, "again")
        assert err.value.status == 409
        with pytest.raises(ApiError, match="say why"):
            await api.out_of_service("pump03", True)
        assert (await api.alarm("pump03-A1")).state == "out_of_service"
        # a new alarm on that asset is recorded, out of service
        review.service.on_alert(alert("pump03-A2", asset="pump03", signals=("flow",)))
        assert (await api.alarm("pump03-A2")).state == "out_of_service"
        # the check the ticket service calls, from its own connection to the store, at the
        # service's (injected) time: at the wall clock's, the 15-minute shelve below had run out
        # once the real time passed the fixed clock's start (a test that failed from 08:15 UTC)
        checker = AlarmStore(var / "controlroom.db")
        found = checker.suppression("pump03-A3", "pump03", "flow", now=clock.now)
        assert found is not None and found.reason == "out_of_service"
        assert "permit 4711" in found.detail
        assert checker.suppression("pump04-A1", "pump04", "flow", now=clock.now) is None
        await api.out_of_service("pump03", False)
        assert (await api.alarm("pump03-A1")).state == "unacknowledged"
        assert checker.suppression("pump03-A1", "pump03", now=clock.now) is None
        [asset] = [a for a in await api.assets() if a.asset == "pump03"]
        assert not asset.out_of_service and [h.action for h in asset.history] == [
            "out_of_service",
            "returned_to_service",
        ]
        # shelving is what the check reports next; a shelve of the source covers the next
        # episode before the review service has even recorded it
        await api.shelve("pump03-A2", 15)
        found = checker.suppression("pump03-A9", "pump03", "flow", now=clock.now)
        assert found is not None and found.reason == "shelved"
        checker.close_db()


async def test_out_of_service_refuses_an_asset_it_has_never_heard_of(make_review: Any) -> None:
    """A typo ('nosuchpump') was accepted (200) and listed out of service for good. The service
    knows assets by their alarms: an unknown name is a 404 naming the field, unless the caller
    vouches that the pump has not alarmed yet (maintenance before its first alarm); taken back
    into service, such a never-alarmed name leaves the list (its record stays, for history)."""
    review = make_review()
    review.service.on_alert(alert("pump03-A1", asset="pump03"))
    async with review.client() as api:
        with pytest.raises(ApiError) as err:
            await api.out_of_service("nosuchpump", True, "bearing change")
        assert err.value.status == 404 and err.value.detail.startswith("asset: "), err.value
        assert "nosuchpump" in err.value.detail and "never_alarmed" in err.value.detail
        assert [a.asset for a in await api.assets()] == ["pump03"]
        # a pump that reports but never alarmed: the operator says so
        status = await api.out_of_service("pump09", True, "seal swap", never_alarmed=True)
        assert status.out_of_service and status.open_alarms == 0
        assert [a.asset for a in await api.assets()] == ["pump03", "pump09"]
        # its first alarm is recorded out of service
        review.service.on_alert(alert("pump09-A1", asset="pump09"))
        assert (await api.alarm("pump09-A1")).state == "out_of_service"
        # a name put out of service by mistake, taken back: no longer listed
        await api.out_of_service("pumpp07", True, "typo", never_alarmed=True)
        assert "pumpp07" in [a.asset for a in await api.assets()]
        back = await api.out_of_service("pumpp07", False)
        assert not back.out_of_service
        assert [a.asset for a in await api.assets()] == ["pump03", "pump09"]
        # an asset known by its alarms needs no flag; returning an unknown one is a 404 too
        assert (await api.out_of_service("pump03", True, "permit 12")).out_of_service
        with pytest.raises(ApiError, match="asset: no alarm names 'nosuchpump'") as err:
            await api.out_of_service("nosuchpump", False)
        assert err.value.status == 404


async def test_escalation_reannunciates_over_the_api(make_review: Any) -> None:
    review = make_review()
    review.service.on_alert(alert("pump05-A1", asset="pump05", severity="medium"))
    async with review.client() as api:
        await api.ack("pump05-A1")
        review.service.on_alert(alert("pump05-A1", asset="pump05", severity="critical", revision=1))
        review.service.on_alert(alert("pump05-A1", asset="pump05", severity="high", revision=1))
        a = await api.alarm("pump05-A1")
        assert (a.priority, a.state, a.latched, a.revision) == (
            "critical",
            "unacknowledged",
            True,
            1,
        )
        assert [x.alarm_id for x in await api.alarms(priority="critical")] == ["pump05-A1"]
        assert await api.alarms(priority="low") == []
        assert review.service.alerts == {"recorded": 2, "ignored": 1}


async def test_polling_costs_a_304_until_something_changes(make_review: Any) -> None:
    review = make_review()
    review.service.on_alert(alert("pump06-A1", asset="pump06"))
    async with review.client() as api:
        etag, alarms = await api.alarms_if_changed(None)
        assert etag and alarms is not None and len(alarms) == 1
        assert await api.alarms_if_changed(etag) == (etag, None)
        await api.ack("pump06-A1")
        etag2, alarms = await api.alarms_if_changed(etag)
        assert etag2 != etag and alarms is not None and alarms[0].acknowledged


async def test_kpis_served_for_the_tui_panel(make_review: Any) -> None:
    review = make_review()
    for i in range(3):  # three raises of one source within a minute of plant time: chattering
        review.service.on_alert(alert(f"pump07-A{i}", asset="pump07", ts=3600.0 + 20 * i))
    async with review.client() as api:
        k = await api.kpis(hours=1)
        assert k.alarms == 3 and k.periods == 6
        chatter = next(r for r in k.rows if r.name.startswith("Chattering"))
        assert chatter.value == 1 and chatter.meets is False
        third = await api.alarm("pump07-A2")
        assert third.chattering and third.state == "suppressed"
        # the suppressed third raise is in the load, not in the operator's rate
        assert (third.raised_as, k.annunciated, k.withheld["suppressed"]) == ("suppressed", 2, 1)
        assert (await api.alarm("pump07-A0")).chattering  # flagged for the record too


def test_the_cli_list_keeps_id_priority_and_asset_whole_at_80_columns(
    make_review: Any, capsys: Any, monkeypatch: Any
) -> None:
    """At 80 columns rich squeezed every column evenly: PRI and ASSET vanished and the IDs
    (which the operator types to act) were cut to "pump04-A0001-195…"."""
    from engine.cli import main as cli

    review = make_review()
    signals = ("res.vibration", "res.bearing_temp", "res.power")
    review.service.on_alert(alert("pump01-A0001-540423d2cf32", severity="high", signals=signals))
    review.service.on_alert(alert("pump03-A0001-ddcf19a66203", asset="pump03", status="cleared"))
    review.service.on_alert(alert("pump04-A0001-195a9fd099eb", asset="pump04", severity="high"))
    api = ["--api", review.url]
    assert cli(["alarms", "ack", "pump01-A0001-540423d2cf32", *api]) == 0
    assert cli(["alarms", "shelve", "pump04-A0001-195a9fd099eb", "--minutes", "30", *api]) == 0
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "80")
    assert cli(["alarms", "list", *api]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split()[:4] == ["ID", "STATE", "PRI", "ASSET"], lines
    for alarm_id, priority, asset in [
        ("pump01-A0001-540423d2cf32", "high", "pump01"),
        ("pump03-A0001-ddcf19a66203", "medium", "pump03"),
        ("pump04-A0001-195a9fd099eb", "high", "pump04"),
    ]:
        [row] = [line for line in lines if line.startswith(alarm_id + " ")]
        assert f" {priority} " in row and f" {asset} " in row, row
    assert "returned_unacknowledged" in "\n".join(lines)
    assert lines[-1] == "3 alarm(s); not shown: RAISED, ACK BY, SHELVED (alarms show ID)"
    monkeypatch.setenv("COLUMNS", "200")  # wide: every column, as before
    assert cli(["alarms", "list", *api]) == 0
    wide = capsys.readouterr().out.splitlines()
    heads = ["ID", "STATE", "PRI", "ASSET", "SIGNALS", "RAISED", "ACK", "BY", "SHELVED"]
    assert wide[0].split() == heads
    assert "res.vibration, res.bearing_temp, res.power" in wide[-2] + wide[-3] + wide[-4]
    assert cli(["alarms", "show", "pump04-A0001-195a9fd099eb", *api]) == 0
    shown = capsys.readouterr().out
    assert "acknowledged: no\n" in shown and "False" not in shown, shown  # not Python's bool


async def test_a_shelved_sources_re_raise_is_raised_not_annunciated_in_api_and_report(
    make_review: Any, var: Any, capsys: Any
) -> None:
    """Issue 13: ISA-18.2's rates count the alarms annunciated. pump08/flow is shelved for an
    hour, then raises again (a new episode: it starts shelved), pump09 raises while out of
    service: both are in the load, neither in the operator's rate. The review API (for the TUI)
    and ``controlroom report`` (the run's logs with the store beside them) say the same. Before,
    both counted all 4 in the rate: 4 / 3 periods = 1.33 per 10 min, not met."""
    from engine.cli import main as cli
    from engine.services.jsonl_log import JsonlLog

    review = make_review()
    log = JsonlLog(var / "logs" / "monitor.jsonl", "monitor")
    log.event("scenario_loaded", scenarios=["by hand"])

    def raise_(alert_id: str, asset: str, ts: float) -> None:
        a = wire(alert_id, asset=asset, ts=ts, signals=("flow",))
        log.message("alert", a)
        review.service.on_alert(a)

    raise_("pump08-A1", "pump08", 1000.0)
    raise_("pump10-A1", "pump10", 1100.0)
    async with review.client() as api:
        await api.shelve("pump08-A1", 60, note="valve stroking test")
        await api.out_of_service("pump09", True, "impeller change", never_alarmed=True)
        raise_("pump08-A2", "pump08", 1300.0)  # the same source again, its shelve running
        raise_("pump09-A1", "pump09", 1400.0)
        log.close()
        again = await api.alarm("pump08-A2")
        assert (again.state, again.raised_as) == ("shelved", "shelved")
        assert (await api.alarm("pump09-A1")).raised_as == "out_of_service"
        assert (await api.alarm("pump08-A1")).raised_as == "annunciated"  # shelved later
        k = await api.kpis(hours=1)
    # plant time 0..1400: three 10-min periods; 2 annunciated (pump08-A1, pump10-A1) of 4 raised
    assert (k.alarms, k.annunciated, k.periods) == (4, 2, 3)
    assert k.withheld == {"out_of_service": 1, "shelved": 1, "suppressed": 0}
    assert k.summary == "2 annunciated of 4 raised; 2 not: 1 out of service, 1 shelved"
    rate = next(r for r in k.rows if r.name.startswith("Alarms per 10 min"))
    assert (rate.shown, rate.meets) == ("0.67", True)
    assert k.bad_actors[0].source == "pump08/flow" and k.bad_actors[0].alarms == 2  # raised

    assert cli(["report", "--logs", str(var / "logs")]) == 0
    text = capsys.readouterr().out
    assert "the run's review store's record" in text and "Shelving not known" not in text
    assert f"{k.summary}; over 0.389 h of plant time (3 ten-minute period(s))" in text
    assert "| Alarms per 10 min per operator | 0.67 |" in text
    assert "| pump08/flow | 2 | 50.0 % |" in text


def test_the_report_without_a_store_says_shelving_is_not_known(var: Any, capsys: Any) -> None:
    from engine.cli import main as cli
    from engine.services.jsonl_log import JsonlLog

    log = JsonlLog(var / "run" / "logs" / "monitor.jsonl", "monitor")
    log.message("alert", wire("pump08-A1", asset="pump08", ts=1000.0))
    log.close()
    assert cli(["report", "--logs", str(var / "run" / "logs")]) == 0
    text = capsys.readouterr().out
    assert "**Shelving not known: counted as raised.** No review store beside the logs" in text
    assert "1 annunciated of 1 raised" in text
    missing = var / "run" / "nowhere.db"
    assert cli(["report", "--logs", str(var / "run" / "logs"), "--store", str(missing)]) == 2
    assert "no such review store" in capsys.readouterr().err
