"""The TUI's HTTP side against a slow service and at exit.

- A worker that races the app's exit (a status poll between its /health calls and its scenario
  call) gets the ApiError every screen already handles, not httpx's RuntimeError, which failed
  the worker and with it the app's exit (CI: ``Cannot send a request, as the client has been
  closed``).
- A service slower than the poll period is still heard from: each periodic poll used to cancel
  the one still running, so the status bar never left "services —"."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tui_screen import settle

from tui.api import ApiError, ControlRoomApi
from tui.app import STATUS_POLL_S, ControlRoomApp
from tui.settings import UiSettings


class Health(BaseHTTPRequestHandler):
    delay_s = 0.0

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(self.delay_s)  # the stimulus: a service slower than the TUI's poll period
        data = json.dumps({"status": "ok"}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the TUI gave up on it (a timeout, or its exit)


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def server_url() -> Iterator[str]:
    yield from serve(Health)


@pytest.fixture
def slow_url() -> Iterator[str]:
    class Slow(Health):
        delay_s = STATUS_POLL_S * 1.3  # under the /health timeout (1.5 s), over the period

    yield from serve(Slow)


async def test_calls_after_close_are_api_errors(server_url: str) -> None:
    api = ControlRoomApi({"simulator": server_url, "review": server_url})
    assert await api.health("simulator") == {"status": "ok"}
    await api.aclose()
    with pytest.raises(ApiError, match="closed"):
        await api.health("simulator")
    with pytest.raises(ApiError, match="closed"):
        await api.review.request("GET", "/health")
    # the review client did not open a new connection behind the closed one
    assert api.review._http is None


async def test_a_service_slower_than_the_poll_period_is_still_heard_from(slow_url: str) -> None:
    app = ControlRoomApp(settings=UiSettings(service_urls={"simulator": slow_url}))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, lambda: "simulator" in app.health.services, "a status poll finished")
