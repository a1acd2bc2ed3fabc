"""The alarm key paths at 80x24 against the real review service: acknowledge with a note, shelve
and auto-unshelve as the service's injected clock advances, out of service, and the keys that
do not apply saying why.

The review service runs in this process (tests/alarms/review_server.py: the same class and
listeners ``controlroom serve review`` uses) so the test can move its clock; alarms reach it,
and the TUI, the way the plant sends them: an AlertEvent on ``alerts/{asset}`` of the session's
test broker. Every outcome is checked in the service's answer, which reads the store.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tui_screen import record_notifications, screen_text, settle

from engine.http_schemas import Alarm
from engine.paths import var_dir
from engine.schemas import AlertEvent
from tui.app import ControlRoomApp
from tui.screens.alarm_action import AlarmActionScreen
from tui.screens.plant import PlantScreen
from tui.settings import UiSettings
from tui.widgets.alert_feed import AlertFeed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "alarms"))
from alarm_data import Clock
from review_server import InProcessReview


@pytest.fixture
def review(broker: Any, tmp_path: Path) -> Iterator[InProcessReview]:
    var = tmp_path / "var"
    var.mkdir(parents=True, exist_ok=True)
    server = InProcessReview(var, broker.url, Clock()).start()
    yield server
    server.stop()


@pytest.fixture
def publisher(broker: Any, bus_client: Callable[..., Any]) -> Any:
    return bus_client(broker.url, name="tui-alarm-pub", persistent=False)


def raise_alert(publisher: Any, asset: str, severity: str = "medium", **extra: Any) -> str:
    alert_id = f"{asset}-A{uuid.uuid4().hex[:6]}"
    publisher.publish(
        AlertEvent(
            alert_id=alert_id,
            asset=asset,
            ts=1000.0,
            onset_ts=990.0,
            severity=severity,  # type: ignore[arg-type]
            score=7.0,
            signals=["vibration"],
            detector="test",
            **extra,
        )
    )
    return alert_id


async def stored(review: InProcessReview, alarm_id: str) -> Alarm:
    async with review.client() as api:
        return await api.alarm(alarm_id)


async def until_stored(
    pilot: Any, review: InProcessReview, alarm_id: str, check: Callable[[Alarm], bool], what: str
) -> Alarm:
    deadline = time.monotonic() + 15
    while True:
        alarm = await stored(review, alarm_id)
        if check(alarm):
            return alarm
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last: {alarm!r}"[:1500])
        await pilot.pause(0.05)


def app_for(broker: Any, review: InProcessReview) -> ControlRoomApp:
    app = ControlRoomApp(
        UiSettings(
            broker_url=broker.url,
            service_urls={"review": review.url},
            var=var_dir(os.environ),  # this test's own var/ (tests/conftest.py)
        )
    )
    record_notifications(app)
    return app


async def select_alarm(pilot: Any, app: ControlRoomApp, alarm_id: str) -> AlertFeed:
    """Wait until the alarm list shows ``alarm_id`` with its stored state, focus it, select it."""
    screen = app.screen
    assert isinstance(screen, PlantScreen)
    feed = screen.query_one(AlertFeed)
    await settle(
        pilot,
        lambda: (row := feed._shown.get(alarm_id)) is not None and row.alarm is not None,
        f"alarm {alarm_id} in the list with its stored state",
        timeout=20,
    )
    feed.table.focus()
    await pilot.press("g")
    while feed.table.selected_key != alarm_id:
        await pilot.press("j")
    return feed


@asynccontextmanager
async def alarm_selected(
    broker: Any, review: InProcessReview, publisher: Any, severity: str = "medium"
) -> AsyncIterator[tuple[ControlRoomApp, Any, AlertFeed, str, str]]:
    """The TUI at 80x24 with an alarm of a new asset raised, listed and selected: ``(app, pilot,
    feed, alarm_id, asset)``."""
    app = app_for(broker, review)
    asset = f"pump-{uuid.uuid4().hex[:6]}"
    async with app.run_test(size=(80, 24)) as pilot:
        alarm_id = raise_alert(publisher, asset, severity)
        yield app, pilot, await select_alarm(pilot, app, alarm_id), alarm_id, asset


async def test_ack_with_note_shelve_auto_unshelve_and_out_of_service(
    broker: Any, review: InProcessReview, publisher: Any
) -> None:
    async with alarm_selected(broker, review, publisher) as selected:
        app, pilot, feed, alarm_id, asset = selected
        assert "!" in screen_text(app)  # unacknowledged, marked (not only coloured)

        # Acknowledge with a note.
        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, AlarmActionScreen), "the ack form")
        await pilot.press(*"checked on site", "enter")
        acked = await until_stored(pilot, review, alarm_id, lambda a: a.acknowledged, "the ack")
        assert (acked.history[-1].action, acked.history[-1].note) == (
            "acknowledged",
            "checked on site",
        )
        await settle(pilot, lambda: feed.selected is not None and feed.selected.acknowledged, "ack")
        # Acknowledging again is not offered, and the key says why.
        await pilot.press("a")
        await settle(pilot, lambda: any("already acknowledged" in m for m in app.shown), "why")
        assert not isinstance(app.screen, AlarmActionScreen)

        # Shelve for 15 minutes (the first choice) with a note; the service's clock runs out.
        await pilot.press("s")
        await settle(pilot, lambda: isinstance(app.screen, AlarmActionScreen), "the shelve form")
        await pilot.press("enter", *"valve work", "enter")
        shelved = await until_stored(
            pilot, review, alarm_id, lambda a: a.state == "shelved", "the shelve"
        )
        assert shelved.shelved_until is not None and shelved.history[-1].note == "valve work"
        await settle(pilot, lambda: feed.selected is not None and feed.selected.hidden, "S mark")
        clock = review.clock
        assert isinstance(clock, Clock)
        clock.advance(minutes=15)
        back = await until_stored(
            pilot, review, alarm_id, lambda a: a.state != "shelved", "the shelve to run out"
        )
        assert back.history[-1].action == "shelve_expired"
        await settle(
            pilot,
            lambda: feed.selected is not None and feed.selected.state == "acknowledged",
            "the TUI to show it back",
        )

        # Out of service, with its reason; the alarm follows its asset.
        await pilot.press("o")
        await settle(pilot, lambda: isinstance(app.screen, AlarmActionScreen), "the OOS form")
        await pilot.press("enter")  # a reason is required: the form says so and stays
        assert isinstance(app.screen, AlarmActionScreen)
        assert "reason: required" in screen_text(app)
        await pilot.press(*"bearing replacement", "enter")
        oos = await until_stored(
            pilot, review, alarm_id, lambda a: a.out_of_service, "out of service"
        )
        assert oos.out_of_service_reason == "bearing replacement"
        await settle(pilot, lambda: app.alarms.out_of_service().get(asset), "the asset's state")
        await settle(
            pilot,
            lambda: feed.selected is not None and feed.selected.state == "out_of_service",
            "the X mark",
        )
        await pilot.press("u")  # not shelved: says so
        await settle(pilot, lambda: any("is not shelved" in m for m in app.shown), "why not")


async def test_reannunciation_when_an_acknowledged_alarm_escalates(
    broker: Any, review: InProcessReview, publisher: Any
) -> None:
    async with alarm_selected(broker, review, publisher, "low") as selected:
        app, pilot, feed, alarm_id, asset = selected
        async with review.client() as api:
            await api.ack(alarm_id, "seen")
        await settle(pilot, lambda: feed.selected and feed.selected.acknowledged, "the ack")
        publisher.publish(
            AlertEvent(
                alert_id=alarm_id,
                asset=asset,
                ts=1100.0,
                onset_ts=990.0,
                severity="high",
                score=9.0,
                signals=["vibration"],
                detector="test",
                revision=1,
            )
        )
        await settle(
            pilot,
            lambda: any("re-annunciated" in m or "rose to HIGH" in m for m in app.shown),
            "the re-annunciation notice",
        )
        # the notice comes off the bus; the row's stored state follows on the next poll
        await settle(
            pilot,
            lambda: (
                (row := feed.selected) is not None
                and not row.acknowledged
                and row.priority == "high"
            ),
            "the row unacknowledged at high priority",
        )
        assert "H●↑" in screen_text(app)


async def test_a_pump_that_never_alarmed_goes_out_of_service_from_the_fleet(
    broker: Any, review: InProcessReview, publisher: Any
) -> None:
    """The service refuses an asset no alarm names (a typo); the TUI vouches for a pump it sees
    in telemetry, so maintenance before its first alarm still works."""
    from tui_sample import telemetry

    from tui.screens.fleet import FleetScreen
    from tui.widgets.row_table import RowTable

    app = app_for(broker, review)
    asset = f"pump-{uuid.uuid4().hex[:6]}"
    async with app.run_test(size=(80, 24)) as pilot:
        publisher.publish(telemetry(asset, 1)[-1])
        await settle(pilot, lambda: asset in app.feed.assets(), "the pump's telemetry")
        await settle(pilot, lambda: app.alarms.available, "the review API")
        await pilot.press("3")
        await settle(pilot, lambda: isinstance(app.screen, FleetScreen), "the fleet")
        await pilot.press("slash", *asset, "enter")
        table = app.screen.query_one("#fleet-table", RowTable)
        await settle(pilot, lambda: table.selected_key == asset, "the pump selected")
        await pilot.press("o")
        await settle(pilot, lambda: isinstance(app.screen, AlarmActionScreen), "the OOS form")
        await pilot.press(*"seal swap", "enter")
        await settle(pilot, lambda: app.alarms.out_of_service().get(asset), "out of service")
        assert not [m for m in app.shown if "failed" in m]
        async with review.client() as api:
            [status] = [a for a in await api.assets() if a.asset == asset]
        assert status.out_of_service and status.reason == "seal swap"
