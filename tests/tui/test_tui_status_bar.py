"""The status bar says when the TUI itself fell behind the bus (its inbox dropped telemetry),
at 80 columns as well as wide, without pushing the dead-letter count off the line."""

from __future__ import annotations

import pytest
from tui_sample import fixed_clock, sample_feed
from tui_screen import settle

from tui.app import ControlRoomApp
from tui.status import HealthState, ServiceState
from tui.widgets.status_bar import StatusBar


def health(behind: int) -> HealthState:
    services = {n: ServiceState(ok=True) for n in ("simulator", "monitor", "diagnosis", "ticket")}
    return HealthState(bus_connected=True, services=services, own_dead_letters=3, rate=1234.0,
                       behind_dropped=behind)  # fmt: skip


@pytest.mark.parametrize(
    ("width", "behind", "shown"),
    [
        (80, 0, None),
        (80, 512, "⚠512"),
        (80, 48_000, "⚠48k"),
        (160, 48_000, "behind: 48000 dropped"),
    ],
)
async def test_dropped_telemetry_is_on_the_status_bar(
    width: int, behind: int, shown: str | None
) -> None:
    app = ControlRoomApp(feed=sample_feed(), clock=fixed_clock)
    async with app.run_test(size=(width, 24)) as pilot:
        app.health = health(behind)
        bar = app.screen.query_one(StatusBar)
        await settle(pilot, lambda: bar.health.own_dead_letters == 3, "health shown")
        line = bar.render().plain
        assert "DLQ 3" in line, line
        if shown is None:
            assert "⚠" not in line and "behind" not in line
        else:
            assert shown in line, line
