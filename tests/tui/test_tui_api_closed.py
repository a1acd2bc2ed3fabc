"""The TUI's HTTP clients after the app has closed them: a worker that races the app's exit (a
status poll between its /health calls and its scenario call) must get the ApiError every screen
already handles, not httpx's RuntimeError, which fails the worker and with it the app's exit
(seen in CI: ``Cannot send a request, as the client has been closed``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tui.api import ApiError, ControlRoomApi


class Health(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        data = json.dumps({"status": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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
