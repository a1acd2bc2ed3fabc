"""What the plant, alarm and fleet screens share: keys that explain themselves, and the alarm
actions (acknowledge, shelve, unshelve, out of service) over the review API.

A key whose action does not apply now says why when pressed, instead of doing nothing: "alarm
pump01-A3 is already acknowledged", "no alarm selected". The footer shows only what applies: an
alarm action that does not apply to the selected alarm is hidden (``check_action`` False), so
the footer keeps its ``? Help`` and ``q Quit`` at 80 columns; help lists every key.

Alarm actions are bound on the alarm list itself (``screen.alarm_*`` actions), so ``a`` means
acknowledge where an alarm is selected and approve where a ticket is. Each opens a short form
(note; shelve time; out-of-service reason), then calls the review API in a worker; the answer
(the alarm as the store now has it) updates the list at once, a refusal is shown as the
service worded it, and the next poll brings everything else.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events, work
from textual.screen import Screen
from textual.widget import Widget

from engine.http_schemas import MAX_SHELVE_MINUTES
from tui import format as fmt
from tui.access import control
from tui.alarms import STATE_SHORT, AlarmRow
from tui.api import ApiError
from tui.safe import clean
from tui.screens.alarm_action import SHELVE_CHOICES, AlarmActionScreen
from tui.textual_compat import first_binding

ALARM_ACTIONS = ("alarm_ack", "alarm_shelve", "alarm_unshelve", "alarm_oos")


def alarm_subject(row: AlarmRow) -> Text:
    """One line naming the alarm a form acts on."""
    out = Text(end="")
    out.append(fmt.SEVERITY_SHORT.get(row.priority, row.priority), style="bold")
    out.append(f" {STATE_SHORT.get(row.state, row.state)} ")
    out.append(clean(row.alarm_id, single_line=True), style="bold")
    out.append(f" · {clean(row.row.asset, single_line=True)}")
    d = row.row.diagnosis
    cause = d.root_cause if d is not None else ", ".join(row.row.signals)
    out.append(f" · {clean(cause, single_line=True)}", style="dim")
    return out


class ConsoleScreen(Screen[None]):
    _footer_alarm: tuple[str | None, ...] = ()
    """Why each alarm key does not apply, as the footer last showed it."""

    # ---------------------------------------------------------------- feedback

    def tell(self, message: str, **kwargs: Any) -> None:
        """A notification whose text (often from a service or a ticket) is never markup."""
        self.notify(clean(message, single_line=True), markup=False, **kwargs)

    def on_key(self, event: events.Key) -> None:
        """A key whose action does not apply now (dimmed or hidden in the footer) says why,
        instead of doing nothing (or falling through to a binding further up: ``a`` on an
        acknowledged alarm must not approve a ticket)."""
        binding = first_binding(self, event.key)
        if binding is None:
            return
        reason = self.why_not(binding.action.rsplit(".", 1)[-1])
        if reason:
            event.stop()
            event.prevent_default()
            self.tell(reason, timeout=3)

    def why_not(self, action: str) -> str | None:
        """Why ``action`` is disabled right now (the footer dims it; pressing it says this)."""
        if action in ALARM_ACTIONS:
            return self.alarm_why_not(action)
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ALARM_ACTIONS:  # hidden, not dimmed: four of them overflow 80 columns
            return self.alarm_why_not(action) is None
        return True

    def action_zoom(self) -> None:
        """The focused pane full-screen (``z`` again restores the layout)."""
        if self.maximized is not None:
            self.minimize()
            return
        node = self.focused
        while node is not None and not node.has_class("pane"):
            node = node.parent if isinstance(node.parent, Widget) else None
        if node is None:
            self.tell("Nothing to zoom here: focus a pane first (tab).", timeout=2)
            return
        self.maximize(node, container=False)

    # ---------------------------------------------------------------- alarms

    def selected_alarm(self) -> AlarmRow | None:
        """The alarm under the cursor of this screen's alarm list (None: none, or no list)."""
        return None

    def follow_selected_alarm(self) -> None:
        """The footer's alarm keys follow the selected alarm and its state (called when the
        cursor moves or the list is redrawn; recomposes the footer only on a change)."""
        why = tuple(self.alarm_why_not(action) for action in ALARM_ACTIONS)
        if why != self._footer_alarm:
            self._footer_alarm = why
            self.refresh_bindings()

    def alarm_why_not(self, action: str) -> str | None:
        row = self.selected_alarm()
        if row is None:
            return "No alarm selected."
        book = control(self).alarms
        if not book.available:
            return "The review API has not answered yet: alarm states are unknown."
        name = clean(row.alarm_id, single_line=True)
        if action == "alarm_oos":
            return None
        if row.alarm is None:
            return f"Alarm {name} is not recorded by the review service yet; try again."
        if action == "alarm_ack" and row.acknowledged:
            return f"Alarm {name} is already acknowledged."
        if action == "alarm_shelve":
            if row.alarm.out_of_service:
                return f"{row.row.asset} is out of service: its alarms are not annunciated."
            if row.alarm.shelved is not None:
                return f"Alarm {name} is already shelved (u unshelves)."
            if row.state == "normal":
                return f"Alarm {name} returned to normal and is acknowledged: nothing to shelve."
        if action == "alarm_unshelve" and (row.alarm.shelved is None):
            return f"Alarm {name} is not shelved."
        return None

    def action_alarm_ack(self) -> None:
        self.ask_note_then("ack", "Acknowledge alarm")

    def action_alarm_shelve(self) -> None:
        row = self.selected_alarm()
        if row is None:
            return
        choices = [
            (k, v) for k, v in SHELVE_CHOICES if k == "until_clear" or int(k) <= MAX_SHELVE_MINUTES
        ]
        if not row.active:  # "until clear" needs an active alarm
            choices = [(k, v) for k, v in choices if k != "until_clear"]

        def done(result: tuple[str | None, str | None] | None) -> None:
            if result is not None:
                choice, note = result
                if choice == "until_clear":
                    self.alarm_call("shelve", row.alarm_id, until_clear=True, note=note)
                else:
                    self.alarm_call("shelve", row.alarm_id, minutes=int(choice or 0), note=note)

        self.app.push_screen(
            AlarmActionScreen("Shelve alarm", alarm_subject(row), choices=choices), done
        )

    def action_alarm_unshelve(self) -> None:
        self.ask_note_then("unshelve", "Unshelve alarm")

    def ask_note_then(self, action: str, title: str) -> None:
        """An alarm action whose only input is the operator's optional note (ack, unshelve)."""
        row = self.selected_alarm()
        if row is None:
            return

        def done(result: tuple[str | None, str | None] | None) -> None:
            if result is not None:
                self.alarm_call(action, row.alarm_id, note=result[1])

        self.app.push_screen(AlarmActionScreen(title, alarm_subject(row)), done)

    def action_alarm_oos(self) -> None:
        row = self.selected_alarm()
        if row is None:
            return
        self.toggle_out_of_service(row.row.asset)

    def toggle_out_of_service(self, asset: str) -> None:
        """Take ``asset`` out of service (a reason is required) or return it to service."""
        status = control(self).alarms.asset(asset)
        going_out = not (status is not None and status.out_of_service)
        subject = Text(clean(asset, single_line=True), style="bold")
        if not going_out and status is not None:
            subject.append(f" · out of service: {clean(status.reason or '', single_line=True)}")

        def done(result: tuple[str | None, str | None] | None) -> None:
            if result is not None:
                self.asset_call(asset, going_out, result[1])

        self.app.push_screen(
            AlarmActionScreen(
                "Take out of service" if going_out else "Return to service",
                subject,
                text_label="Reason" if going_out else "Note",
                required=going_out,
            ),
            done,
        )

    @work(group="alarm-action")
    async def alarm_call(self, action: str, alarm_id: str, **kwargs: Any) -> None:
        app = control(self)
        client = app.api.review
        try:
            if action == "ack":
                alarm = await client.ack(alarm_id, kwargs.get("note"))
                message = f"{alarm_id} acknowledged"
            elif action == "shelve":
                alarm = await client.shelve(alarm_id, **kwargs)
                until = (
                    "until it clears"
                    if kwargs.get("until_clear")
                    else f"for {kwargs.get('minutes')} min"
                )
                message = f"{alarm_id} shelved {until}"
            else:
                alarm = await client.unshelve(alarm_id, kwargs.get("note"))
                message = f"{alarm_id} unshelved"
        except ApiError as exc:
            self.tell(f"{action} {alarm_id} failed: {exc.detail}", severity="error", timeout=8)
            app.poll_alarms()
            return
        app.alarms.put(alarm)
        self.tell(message, title="Alarms", timeout=4)
        self.refresh_console()

    @work(group="alarm-action")
    async def asset_call(self, asset: str, on: bool, reason: str | None) -> None:
        app = control(self)
        try:  # a pump seen in telemetry may be taken out of service before it ever alarmed
            status = await app.api.review.out_of_service(
                asset, on, reason, never_alarmed=asset in app.feed.assets()
            )
        except ApiError as exc:
            verb = "out of service" if on else "back in service"
            self.tell(f"{asset} {verb} failed: {exc.detail}", severity="error", timeout=8)
            return
        app.alarms.put_asset(status)
        app.poll_alarms()
        self.tell(
            f"{asset} out of service: {reason}" if on else f"{asset} back in service",
            title="Alarms",
            timeout=4,
        )
        self.refresh_console()

    def refresh_console(self) -> None:
        """Redraw after an action (screens override with their own redraw)."""
