"""``controlroom alarms`` against the review service as a real child process (the command
``controlroom up`` runs), restarted by SIGTERM and by SIGKILL: a shelve survives, the socket
comes back, and the CLI keeps finding it without being told where it is."""

from __future__ import annotations

import json
import signal
import uuid
from typing import Any

import pytest
from alarm_data import ME, wire

from engine.cli import main as cli
from engine.services.stack import Stack
from engine.settings import process_environ


def listed(capsys: Any, api: str, *extra: str) -> list[dict[str, Any]]:
    assert cli(["alarms", "list", "--json", "--api", api, *extra]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_shelve_survives_restarts_and_the_cli_drives_the_lifecycle(
    broker: Any, bus_client: Any, wait_for: Any, var: Any, capsys: Any
) -> None:
    stack = Stack(
        environ=process_environ(),
        broker_url=broker.url,
        ports="auto",
        var=var,
        services=("review",),
        client_prefix=f"rr{uuid.uuid4().hex[:6]}",
    ).start()
    try:
        api = stack.urls["review"]  # a plain loopback URL: the CLI finds the socket itself
        pub = bus_client(broker.url, name="monitor-sim")
        wait_for(
            lambda: (
                pub.publish(wire("pump01-A7", severity="high", ts=500.0))
                or stack.health("review")["alarms"]["recorded"] > 0
            ),
            what="the alert recorded",
            interval=0.2,
        )
        [alarm] = listed(capsys, api)
        for key in ("alarm_id", "asset", "priority", "active", "acknowledged", "history"):
            assert key in alarm
        assert (alarm["alarm_id"], alarm["priority"], alarm["active"], alarm["acknowledged"]) == (
            "pump01-A7",
            "high",
            True,
            False,
        )
        assert alarm["shelved_until"] is None and alarm["history"][0]["action"] == "raised"

        assert (
            cli(
                [
                    "alarms",
                    "shelve",
                    "pump01-A7",
                    "--minutes",
                    "90",
                    "--note",
                    "valve job",
                    "--api",
                    api,
                ]
            )
            == 0
        )
        assert "pump01-A7 shelved" in capsys.readouterr().out
        until = listed(capsys, api)[0]["shelved_until"]
        assert until is not None

        for sig in (signal.SIGTERM, signal.SIGKILL):
            stack.restart_service("review", sig)
            [again] = listed(capsys, api)
            assert (again["state"], again["shelved_until"]) == ("shelved", until), sig
            assert again["history"][-1] == {
                **again["history"][-1],
                "who": ME,
                "action": "shelved",
                "note": "valve job",
            }

        assert cli(["alarms", "unshelve", "pump01-A7", "--api", api]) == 0
        assert cli(["alarms", "ack", "pump01-A7", "--note", "on it", "--api", api]) == 0
        capsys.readouterr()
        assert cli(["alarms", "ack", "pump01-A7", "--api", api]) == 2  # refused: exit 2
        assert f"already acknowledged by {ME}" in capsys.readouterr().err
        assert cli(["alarms", "shelve", "nope", "--until-clear", "--api", api]) == 2
        assert "no alarm 'nope'" in capsys.readouterr().err
        assert cli(["alarms", "show", "pump01-A7", "--api", api]) == 0
        shown = capsys.readouterr().out
        assert "unshelved" in shown and "on it" in shown and ME in shown
        assert (
            cli(["alarms", "out-of-service", "pump01", "--reason", "bearing job", "--api", api])
            == 0
        )
        assert "pump01 out of service" in capsys.readouterr().out
        assert listed(capsys, api, "--state", "out_of_service")[0]["alarm_id"] == "pump01-A7"
        assert cli(["alarms", "kpis", "--api", api]) == 0
        assert "| Alarms per 10 min per operator | 1 |" in capsys.readouterr().out
        assert cli(["operators", "whoami", "--api", api]) == 0
        assert capsys.readouterr().out.strip() == f"{ME} (via unix socket)"
    finally:
        stack.stop()
    assert cli(["alarms", "--api", api]) == 1  # the service is gone: exit 1
    assert "cannot reach the review service" in capsys.readouterr().err
