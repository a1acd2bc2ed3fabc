"""Issue 10: the factory screen reads the plant's open work orders from the review API, as
`controlroom brief --tickets URL` does. A ticket on the asset mapped to M2 becomes a repair
scenario cited in the briefing the operator sees."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from tui_screen import record_notifications, settle

from engine.schemas import DiagnosisReport
from engine.tickets.store import TicketStore
from tui.app import ControlRoomApp
from tui.screens.factory import FactoryScreen
from tui.settings import UiSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "alarms"))
from alarm_data import Clock
from review_server import InProcessReview

ROOT = Path(__file__).resolve().parents[2]


def factory_with_assets(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "scenarios/factory/toy_day.yaml").read_text())
    data["machines"][1]["asset"] = "pump01"  # M2 is the pump the plant watches
    path = tmp_path / "toy_assets.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def record_bearing_wear(db: Path) -> None:
    store = TicketStore(db)
    try:
        store.record_diagnosis(
            DiagnosisReport(
                diagnosis_id="D-1",
                alert_id="A-1",
                asset="pump01",
                ts=3600.0,
                onset_ts=3500.0,
                root_cause="bearing_wear",
                confidence=0.9,
                category="mechanical",
                severity="high",
                summary="Vibration and bearing temperature rising together: bearing wear.",
                actions=["Schedule the bearing replacement; prepare spares"],
                evidence=["vibration 3.9 mm/s"],
                matched_rules=["BW-03"],
                signals=["vibration", "bearing_temp"],
            )
        )
    finally:
        store.close_db()


async def run_day(app: ControlRoomApp, pilot: Any) -> FactoryScreen:
    await pilot.press("2")
    screen = app.screen
    assert isinstance(screen, FactoryScreen)
    screen.query_one("#planner").clear()  # type: ignore[attr-defined]
    await pilot.press(*"Normal day", "enter")
    await screen.results_shown.wait()
    return screen


async def test_the_factory_screen_plans_with_the_plants_open_work_orders(
    broker: Any, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    var.mkdir()
    record_bearing_wear(var / "controlroom.db")
    review = InProcessReview(var, broker.url, Clock()).start()
    try:
        app = ControlRoomApp(
            UiSettings(
                broker_url=broker.url,
                service_urls={"review": review.url},
                factory=str(factory_with_assets(tmp_path)),
                llm="off",
                var=var,
            )
        )
        record_notifications(app)
        async with app.run_test(size=(120, 40)) as pilot:

            def review_seen() -> bool:
                seen = app.health.services.get("review")
                return seen is not None and seen.ok

            await settle(pilot, review_seen, "the status bar to see the review API", timeout=20)
            screen = await run_day(app, pilot)
            state = screen.state
            assert state is not None and screen.tickets_note == ""
            assert [t.ticket_id for t in state.tickets] == ["T-0001"]
            assert "M2 repair (T-0001)" in state.labels
            assert "From work order T-0001 (bearing wear on pump01" in state.briefing_markdown
    finally:
        review.stop()
