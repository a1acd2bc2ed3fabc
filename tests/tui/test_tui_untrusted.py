"""Untrusted text is shown literally and triggers nothing.

A ticket titled ``[@click=app.quit]x`` (live Textual markup) and a body holding ``\\x1b[2J``
(clear screen) arrive through the same feed the bus uses; they must appear as the characters
they are, in the table, the detail pane, the alert feed and a notification, and clicking them
must not run the action.
"""

from __future__ import annotations

from tui_sample import HOSTILE_BODY, HOSTILE_TITLE, alert, fixed_clock, sample_feed, ticket
from tui_screen import screen_text

from tui.app import ControlRoomApp
from tui.screens.plant import PlantScreen
from tui.widgets.ticket_detail import TicketDetail
from tui.widgets.ticket_table import TicketTable


async def test_hostile_ticket_text_is_literal_and_inert() -> None:
    feed = sample_feed()
    # An asset id cannot carry markup (schema), but signal names and titles can carry brackets.
    feed.ingest(alert("a-x", "pump02", 4000.0, "critical", ["flow"]))
    app = ControlRoomApp(feed=feed, clock=fixed_clock)
    actions: list[str] = []
    original = app.run_action

    async def spy(action, *args, **kwargs):  # type: ignore[no-untyped-def]
        actions.append(str(action))
        return await original(action, *args, **kwargs)

    app.run_action = spy  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, PlantScreen)
        table = screen.query_one("#tickets", TicketTable)
        table.focus()
        table.move_cursor(row=table.get_row_index("T-0002"))
        await pilot.pause()
        text = screen_text(app)
        assert HOSTILE_TITLE in text  # in the detail pane (and the wide table's title column)
        assert "\\x1b[2J\\x1b[31mcleared?\\x07" in text
        assert "[bold]not bold[/bold]" in text
        assert "\x1b" not in text

        # Click right on the hostile title in the detail pane: no action may run.
        detail = screen.query_one(TicketDetail)
        region = detail.content_region
        await pilot.click(TicketDetail, offset=(1, 1))
        await pilot.click(TicketDetail, offset=(3, 1))
        await pilot.pause()
        assert app.is_running
        assert not [a for a in actions if "quit" in a or "bell" in a]
        assert region.height > 0

        # A notification carrying the same text is literal too.
        screen.tell(f"approve T-0002 failed: {HOSTILE_TITLE} {HOSTILE_BODY}", severity="error")
        await pilot.pause()
        assert HOSTILE_TITLE in screen_text(app)
        assert app.is_running


async def test_markup_in_a_ticket_title_does_not_style_the_table() -> None:
    feed = sample_feed()
    feed.put_tickets([ticket("T-9", title="[reverse]boom[/reverse]", state="open")])
    app = ControlRoomApp(feed=feed, clock=fixed_clock)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert "[reverse]boom[/reverse]" in screen_text(app)
