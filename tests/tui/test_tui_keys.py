"""Keyboard behaviour that needs no services: help completeness, pane order, table keys, forms
that swallow global keys, footer state. (Key paths that talk to services: test_tui_live.py.)"""

from __future__ import annotations

from textual.binding import Binding
from tui_sample import fixed_clock, sample_feed
from tui_screen import record_notifications, screen_text

from tui.app import ControlRoomApp, key_sections
from tui.screens.alarm_action import AlarmActionScreen
from tui.screens.alarms import AlarmsScreen
from tui.screens.close_ticket import CloseTicketScreen
from tui.screens.edit_ticket import EditTicketScreen
from tui.screens.factory import FactoryScreen
from tui.screens.fleet import FleetScreen
from tui.screens.help import HelpScreen
from tui.screens.plant import PlantScreen
from tui.screens.trend import TrendScreen
from tui.widgets.alert_feed import AlertFeed
from tui.widgets.keyed_table import KeyedTable
from tui.widgets.signal_panel import SignalPanel
from tui.widgets.ticket_table import TicketTable


def app() -> ControlRoomApp:
    return ControlRoomApp(feed=sample_feed(), clock=fixed_clock)


async def test_help_lists_every_binding() -> None:
    a = app()
    async with a.run_test(size=(100, 120)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(a.screen, HelpScreen)
        await pilot.pause()
        text = screen_text(a)
        for cls in (
            ControlRoomApp,
            PlantScreen,
            FactoryScreen,
            KeyedTable,
            EditTicketScreen,
            CloseTicketScreen,
            AlertFeed,
            FleetScreen,
            AlarmsScreen,
            TrendScreen,
            SignalPanel,
            AlarmActionScreen,
        ):
            for b in cls.BINDINGS:
                assert isinstance(b, Binding)
                assert b.description in text, (
                    f"{cls.__name__}: {b.key} ({b.description}) not in help"
                )
        assert sum(len(keys) for _, keys in key_sections()) >= 35
        await pilot.press("escape")
        assert isinstance(a.screen, PlantScreen)


async def test_tab_walks_the_panes_and_tables_take_vi_keys() -> None:
    a = app()
    async with a.run_test(size=(80, 24)) as pilot:
        seen = []
        for _ in range(6):
            await pilot.press("tab")
            seen.append(a.focused.id if a.focused else None)
        assert {"asset-select", "alert-table", "tickets", "detail"} <= set(seen)
        table = a.screen.query_one("#tickets", TicketTable)
        table.focus()
        await pilot.press("g")
        first = table.selected_key
        await pilot.press("j")
        assert table.selected_key != first
        await pilot.press("k")
        assert table.selected_key == first
        await pilot.press("enter")
        assert a.focused is not None and a.focused.id == "detail"
        await pilot.press("z")  # zoom the focused pane to the whole screen
        assert a.screen.maximized is not None
        await pilot.press("z")
        assert a.screen.maximized is None


async def test_forms_swallow_global_keys_and_escape_sends_nothing() -> None:
    a = app()
    shown = record_notifications(a)
    async with a.run_test(size=(80, 24)) as pilot:
        a.screen.query_one("#tickets", TicketTable).focus()
        await pilot.press("e")
        assert isinstance(a.screen, EditTicketScreen)
        await pilot.press("end", "q", "1", "2")  # typed into the title, not quit / switch
        assert a.is_running and isinstance(a.screen, EditTicketScreen)
        assert a.screen.query_one("#edit-title").value.endswith("q12")  # type: ignore[attr-defined]
        await pilot.press("tab", "tab")  # on the severity picker: q still must not quit
        await pilot.press("q")
        assert a.is_running
        await pilot.press("escape")
        assert isinstance(a.screen, PlantScreen)
        await pilot.press("c")
        assert isinstance(a.screen, CloseTicketScreen)
        await pilot.press("escape")
        assert isinstance(a.screen, PlantScreen)
        await pilot.pause()
        # No request was attempted (none is configured: any call would have notified an error).
        assert not [n for n in shown if "failed" in n]


async def test_footer_offers_only_what_applies_to_the_selected_ticket() -> None:
    a = app()
    async with a.run_test(size=(80, 24)) as pilot:
        screen = a.screen
        assert isinstance(screen, PlantScreen)
        table = screen.query_one("#tickets", TicketTable)
        table.focus()
        await pilot.press("g")
        assert screen.selected_ticket().state == "open"  # type: ignore[union-attr]
        assert screen.check_action("approve", ()) is True
        await pilot.press("G")  # the approved one (closed ones are hidden)
        await pilot.pause()
        assert screen.selected_ticket().state == "approved"  # type: ignore[union-attr]
        assert screen.check_action("approve", ()) is None  # shown dimmed, does nothing
        assert screen.check_action("close_ticket", ()) is True
        await pilot.press("h")
        await pilot.pause()
        await pilot.press("G")
        await pilot.pause()
        assert screen.selected_ticket().state == "closed"  # type: ignore[union-attr]
        assert screen.check_action("edit", ()) is None
        shown = record_notifications(a)
        await pilot.press("a")  # disabled: nothing is sent, and the key says why
        await pilot.pause()
        assert shown == [f"{screen.selected_ticket().ticket_id} is closed: nothing to approve."]  # type: ignore[union-attr]


async def test_asset_keys_and_truth_overlay() -> None:
    a = app()
    async with a.run_test(size=(120, 40)) as pilot:
        screen = a.screen
        assert isinstance(screen, PlantScreen)
        await pilot.pause()
        assert screen.asset == "pump01"
        await pilot.press("right_square_bracket")
        assert screen.asset == "pump02"
        await pilot.pause(0.2)
        assert "Signals · pump02" in screen_text(a)
        await pilot.press("left_square_bracket", "t")
        await pilot.pause(0.2)
        text = screen_text(a)
        assert "truth bearing_wear" in text
        assert "✓ bearing_wear" in text
