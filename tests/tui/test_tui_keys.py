"""Keyboard behaviour that needs no services: help completeness, pane order, table keys, forms
that swallow global keys, footer state. (Key paths that talk to services: test_tui_live.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.binding import Binding
from textual.widgets import Input
from tui_sample import fixed_clock, sample_alarm_book, sample_feed, scenario_status, telemetry
from tui_screen import record_notifications, screen_text, settle

from tui.alarms import AlarmRow
from tui.app import HELP_ROWS, ControlRoomApp, key_sections
from tui.feed import PlantFeed
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
        # Read it as a user does: page down until the end (the help is longer than a screen).
        text = screen_text(a)
        body = a.screen.query_one("#help-body")
        for _ in range(20):
            if body.scroll_y >= body.max_scroll_y:
                break
            await pilot.press("pagedown")
            await pilot.pause()
            text += screen_text(a)
        assert body.scroll_y >= body.max_scroll_y, "pagedown does not reach the help's end"
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
                # a footer pair ("↓↑ Signal") is named in help by what each key does
                described = HELP_ROWS[b.id][1] if b.id in HELP_ROWS else b.description
                assert described in text, f"{cls.__name__}: {b.key} ({described}) not in help"
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
        await settle(pilot, lambda: "Signals · pump02" in screen_text(a), "pump02's signals")
        await pilot.press("left_square_bracket", "t")
        await settle(pilot, lambda: "truth bearing_wear" in screen_text(a), "the truth overlay")
        text = screen_text(a)
        assert "truth bearing_wear" in text
        assert "✓ bearing_wear" in text


async def test_the_small_things_an_operator_tripped_on() -> None:
    """Issue 13's small items: every one fixed and checked on screen at 80x24."""
    a = app()
    shown = record_notifications(a)
    a.scenario_status = scenario_status(running=False, sim_time=0.0)
    async with a.run_test(size=(80, 24)) as pilot:
        screen = a.screen
        assert isinstance(screen, PlantScreen)
        await settle(pilot, lambda: "chronic_wear" in screen_text(a), "the scenario line")
        # Just loaded: the run's own clock (00:00:00), not the last telemetry's 01:03:59.
        assert "00:00:00/08:00:00" in screen_text(a)
        # + while stopped: the speed that will apply is shown at once.
        await pilot.press("plus")
        await settle(pilot, lambda: "×300 at start" in screen_text(a), "the pending speed")
        # x while stopped, s while running: say why nothing happens.
        await pilot.press("x")
        await settle(pilot, lambda: any("not running" in m for m in shown), "why not stop")
        a.scenario_status = scenario_status(running=True)
        await pilot.press("s")
        await settle(pilot, lambda: any("already running" in m for m in shown), "why not start")
        # A run that reached its end says "finished".
        a.scenario_status = scenario_status(running=False, done=True, sim_time=28800.0)
        await settle(pilot, lambda: "■ finished" in screen_text(a), "finished")
        # r says what it did (here: no review API configured).
        await pilot.press("r")
        await settle(pilot, lambda: any("Refetch" in m for m in shown), "the refetch notice")
        # e: the cursor lands at the end of the title; typing appends, it does not replace.
        table = screen.query_one("#tickets", TicketTable)
        table.focus()
        await pilot.press("g", "e")
        await settle(pilot, lambda: isinstance(a.screen, EditTicketScreen), "the edit form")
        title = a.screen.query_one("#edit-title", Input)
        before = title.value
        await pilot.press("x")
        assert title.value == before + "x"
        await pilot.press("escape")
        # The filter hint fits the 80x24 alarm pane.
        await pilot.press("slash")
        await settle(pilot, lambda: "cause…" in screen_text(a), "the whole filter hint")
        await pilot.press("escape")


async def test_one_asset_and_nothing_to_trend_say_so() -> None:
    feed = PlantFeed()
    for t in telemetry("pump01", 30):
        feed.ingest(t)
    a = ControlRoomApp(feed=feed, clock=fixed_clock)
    shown = record_notifications(a)
    async with a.run_test(size=(80, 24)) as pilot:
        await pilot.press("right_square_bracket")
        await settle(pilot, lambda: "pump01 is the only asset." in shown, "the ] notice")
        await pilot.press("w")
        await settle(pilot, lambda: "History span 1 h" in shown, "the span notice")
        assert a.span == 1


async def test_a_fleet_runs_scenario_line_keeps_its_state_and_clock_at_80x24() -> None:
    """``controlroom demo --assets 5`` runs one scenario per pump: the names joined filled the
    line and cut the state, speed and run time off it."""
    names = ["demo_bearing", *(f"demo_bearing-f5-000{k}-bearing_wear" for k in (2, 3, 4))]
    a = app()
    a.scenario_status = scenario_status(
        name=",".join(names), scenarios=names, assets=[f"pump0{k}" for k in range(1, 6)]
    )
    async with a.run_test(size=(80, 24)) as pilot:
        await settle(pilot, lambda: "+3 more" in screen_text(a), "the scenario line")
        line = next(x for x in screen_text(a).splitlines() if "demo_bearing" in x)
        assert "demo_bearing +3 more  ▶ running  ×240  01:03:59" in line, line
        a.scenario_status = scenario_status(
            name=",".join(names[:2]), scenarios=names[:2], running=False, done=True
        )
        await settle(pilot, lambda: "finished" in screen_text(a), "the finished run")


async def test_enter_on_an_alarm_opens_it() -> None:
    """Enter on the alarm list did nothing: on the plant screen it now shows the alarm's asset,
    on the alarms screen it moves into the alarm's detail (its history then scrolls)."""
    a = app()
    a.alarms = sample_alarm_book()
    async with a.run_test(size=(80, 24)) as pilot:
        screen = a.screen
        assert isinstance(screen, PlantScreen)
        feed = screen.query_one(AlertFeed)
        await select_alarm(pilot, feed, lambda row: row.row.asset != screen.asset)
        assert feed.selected is not None and feed.selected.row.asset != screen.asset
        other = feed.selected.row.asset
        await pilot.press("enter")
        await settle(pilot, lambda: f"Signals · {other}" in screen_text(a), "the alarm's asset")
        assert screen.asset == other
        await pilot.press("4")
        await settle(pilot, lambda: isinstance(a.screen, AlarmsScreen), "the alarms screen")
        await pilot.press("enter")
        await settle(
            pilot, lambda: a.focused is not None and a.focused.id == "alarm-detail", "the detail"
        )
    alarm_keys = dict(key_sections())["Alarm list (plant and alarms screens)"]
    assert ("enter", "Its asset (plant) / its detail (alarms)") in alarm_keys  # named in help


def footer_line(a: ControlRoomApp) -> str:
    return screen_text(a).splitlines()[-1]


async def select_alarm(pilot: Any, feed: AlertFeed, wanted: Callable[[AlarmRow], bool]) -> None:
    """Focus the alarm list and move its cursor down from the top to the first ``wanted`` row."""
    feed.table.focus()
    await pilot.press("g")
    for _ in range(10):
        if feed.selected is not None and wanted(feed.selected):
            return
        await pilot.press("j")
    raise AssertionError("no such alarm in the list")


async def test_every_footer_keeps_help_and_quit_at_80x24() -> None:
    """At 80 columns the alarm list's footer ran past the edge and cut ``? Help`` and ``q Quit``.
    The footer now holds only the keys that apply to the focused pane and the selected row:
    every screen, in each focus state (and on a shelved alarm, which brings ``u``), keeps both."""
    a = app()
    a.alarms = sample_alarm_book()
    async with a.run_test(size=(80, 24)) as pilot:
        seen: dict[str, str] = {}

        async def walk(screen_key: str) -> None:
            await pilot.press(screen_key)
            for _ in range(6):
                await pilot.pause()
                focused = a.focused.id if a.focused is not None else None
                if isinstance(a.focused, Input):  # typing there: ? and q are letters
                    await pilot.press("tab")
                    continue
                await settle(pilot, lambda: footer_line(a).strip(), "a footer drawn")
                seen[f"{type(a.screen).__name__}/{focused}"] = footer_line(a)
                await pilot.press("tab")

        for key in ("1", "3", "4", "2"):
            await walk(key)
        # A shelved alarm on each alarm list: u Unshelve joins the footer, which still fits.
        for key in ("1", "4"):
            await pilot.press(key)
            feed = a.screen.query_one(AlertFeed)
            await select_alarm(pilot, feed, lambda row: row.state == "shelved")
            await settle(pilot, lambda: "u Unshelve" in footer_line(a), "u on a shelved alarm")
            seen[f"{type(a.screen).__name__}/shelved"] = footer_line(a)
        await pilot.press("1", "v")
        await settle(pilot, lambda: isinstance(a.screen, TrendScreen), "the trend view")
        await settle(pilot, lambda: footer_line(a).strip(), "the trend view's footer")
        seen["TrendScreen"] = footer_line(a)
        assert "[] Asset" in seen["TrendScreen"]  # the pair, as ↓↑ Signal is
        await pilot.press("escape", "question_mark")
        # (the help screen's footer is drawn after it is pushed: blank for a frame under load)
        await settle(pilot, lambda: footer_line(a).strip(), "the help screen's footer")
        seen["HelpScreen"] = footer_line(a)
    assert {"PlantScreen/alert-table", "AlarmsScreen/alert-table", "PlantScreen/signals"} <= set(
        seen
    )
    for where, footer in seen.items():
        if where == "HelpScreen":
            assert "esc Close help" in footer
            continue
        assert "? Help" in footer and "q Quit" in footer, f"{where}: {footer!r}"


async def test_a_key_hidden_from_the_footer_still_says_why() -> None:
    a = app()
    a.alarms = sample_alarm_book()
    shown = record_notifications(a)
    async with a.run_test(size=(80, 24)) as pilot:
        screen = a.screen
        assert isinstance(screen, PlantScreen)
        feed = screen.query_one(AlertFeed)
        # unacknowledged, not shelved: u hidden
        await select_alarm(pilot, feed, lambda row: row.alarm_id == "a-2")
        await settle(pilot, lambda: "s Shelve" in footer_line(a), "the alarm keys")
        footer = footer_line(a)
        assert "u Unshelve" not in footer and "e Edit" not in footer and "a Ack" in footer
        await pilot.press("u")
        await settle(pilot, lambda: "Alarm a-2 is not shelved." in shown, "why not u")
        # shelved: s hidden, u shown
        await select_alarm(pilot, feed, lambda row: row.alarm_id == "a-4")
        await settle(pilot, lambda: "u Unshelve" in footer_line(a), "u on a shelved alarm")
        assert "s Shelve" not in footer_line(a)
        await pilot.press("s")
        await settle(pilot, lambda: any("a-4 is already shelved" in m for m in shown), "why not s")
        # The ticket keys act on the tickets pane: from the alarm list they say where.
        await pilot.press("e")
        await settle(pilot, lambda: any("tickets pane" in m for m in shown), "why not e")
        await pilot.pause()
        assert isinstance(a.screen, PlantScreen)  # no edit form opened
        assert not [m for m in shown if "approved" in m or "failed" in m]
