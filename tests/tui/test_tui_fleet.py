"""The fleet's order and filter (pure), and its key path at 80x24: filter, drill-in."""

from __future__ import annotations

from tui_sample import alert, fleet_feed, ticket
from tui_screen import settle

from tui.app import ControlRoomApp
from tui.feed import PlantFeed
from tui.fleet import STALE_S, AlarmFlags, alarm_summary, fleet_order, haystack, matches
from tui.screens.fleet import FleetScreen
from tui.screens.plant import PlantScreen
from tui.widgets.row_table import RowTable


def test_worst_first_then_silent_then_healthy_and_out_of_service_last() -> None:
    feed = PlantFeed()
    for a in (
        alert("a1", "p-low", 100.0, "low", ["flow"]),
        alert("a2", "p-crit", 100.0, "critical", ["flow"]),
        alert("a3", "p-rtn", 100.0, "high", ["flow"], status="cleared"),
        alert("a4", "p-acked", 100.0, "high", ["flow"]),
        alert("a5", "p-shelved", 100.0, "critical", ["flow"]),
    ):
        feed.ingest(a)
    alerts = feed.alerts()
    tickets = [ticket("T-1", asset="p-ticket")]
    flags = {"a4": AlarmFlags(acknowledged=True), "a5": AlarmFlags(shelved=True)}
    alarms = alarm_summary(alerts, tickets, flags=flags, out_of_service={"p-oos": "maintenance"})
    now = 100.0
    heard = {
        name: now
        for name in ("p-low", "p-crit", "p-rtn", "p-acked", "p-ticket", "p-oos", "p-b", "p-a")
    }
    heard["p-silent"] = now - STALE_S - 1
    order = fleet_order(heard, alarms, now)
    assert order == [
        "p-crit",  # unacknowledged, critical
        "p-low",  # unacknowledged, low
        "p-rtn",  # returned to normal, still unacknowledged
        "p-acked",  # active, acknowledged
        "p-ticket",  # an open ticket
        "p-shelved",  # shelved: no longer counts (known to nobody's telemetry here)
        "p-silent",  # stale telemetry
        "p-a",
        "p-b",
        "p-oos",
    ]
    assert alarms["p-shelved"].active == 0 and alarms["p-acked"].unacked == 0
    assert matches(haystack("p-rtn", alarms["p-rtn"], False), "rtn unack")
    assert matches(haystack("p-oos", alarms["p-oos"], False), "maint")
    assert not matches(haystack("p-a", alarms.get("p-a") or alarms["p-ticket"], False), "alarm")


async def test_fleet_filter_and_drill_in_at_80x24() -> None:
    feed, _ = fleet_feed()
    app = ControlRoomApp(feed=feed)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await settle(pilot, lambda: isinstance(app.screen, FleetScreen), "the fleet screen")
        screen = app.screen
        table = screen.query_one(RowTable)
        assert table.row_count == 40
        assert table.selected_key == "pump03"  # the critical one is on top
        await pilot.press("slash", *"stale", "enter")
        await settle(pilot, lambda: table.row_count == 1, "the filter")
        assert table.selected_key == "pump07" and table.has_focus
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, PlantScreen), "the plant screen")
        plant = app.screen
        assert isinstance(plant, PlantScreen)
        await settle(pilot, lambda: plant.asset == "pump07", "the drilled-in asset")
        assert plant.asset_pinned
        await pilot.press("3", "slash", "escape")
        await settle(pilot, lambda: table.row_count == 40, "the filter cleared")
