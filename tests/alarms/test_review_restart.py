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
from engine.review_client import ApiError, ReviewClient, resolve_endpoint
from engine.services.stack import Stack
from engine.settings import process_environ


def review_stack(broker: Any, var: Any) -> Stack:
    """The review service alone as a child process, as ``controlroom up`` starts it, on a free
    port (started)."""
    return Stack(
        environ=process_environ(),
        broker_url=broker.url,
        ports="auto",
        var=var,
        services=("review",),
        client_prefix=f"rr{uuid.uuid4().hex[:6]}",
    ).start()


def listed(capsys: Any, api: str, *extra: str) -> list[dict[str, Any]]:
    assert cli(["alarms", "list", "--json", "--api", api, *extra]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_shelve_survives_restarts_and_the_cli_drives_the_lifecycle(
    broker: Any, bus_client: Any, wait_for: Any, var: Any, capsys: Any
) -> None:
    stack = review_stack(broker, var)
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


async def test_a_client_that_got_no_answer_finds_the_socket_when_the_service_answers(
    broker: Any, var: Any
) -> None:
    """The client finds the operators' socket through ``/health`` (a plain loopback URL, as the
    TUI and the CLI are given). While the service does not answer (stopped here; on a loaded
    machine, slow) that call fails as "not reachable" and the next one asks again: it must not
    settle on TCP without an identity, refused (401) for the client's whole life. The TUI's
    client lives as long as the TUI: one slow /health at its start left it without tickets."""
    stack = review_stack(broker, var)
    client = ReviewClient(resolve_endpoint(stack.urls["review"], environ={}), timeout=2.0)
    try:
        review = stack.procs["review"]
        review.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(ApiError) as stalled:
                await client.tickets()
            assert stalled.value.status is None, stalled.value.detail  # no answer, no verdict
        finally:
            review.send_signal(signal.SIGCONT)
        assert await client.tickets() == []
        assert (await client.whoami()).operator == ME
        assert client.endpoint.socket is not None and client.endpoint.socket.name == "review.sock"
    finally:
        await client.aclose()
        stack.stop()
