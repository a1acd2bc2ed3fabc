"""What the fake GitHub and fake Salesforce servers share: a real threading HTTP server on a free
loopback port, the record of requests, scripted faults and a create held back until released.

Each fake keeps only what its system answers (routes, bodies, status codes); the plumbing that
makes it a real server a connector can time out against is written once here.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


@dataclass
class Fault:
    method: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


class JsonHandler(BaseHTTPRequestHandler):
    """Answers JSON; a subclass routes each request in ``_route(method)``."""

    content_type = "application/json"
    extra_headers: ClassVar[dict[str, str]] = {}

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        try:
            self.send_response(status)
            if data:
                self.send_header("Content-Type", self.content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in {**self.extra_headers, **(headers or {})}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): exactly what the test provoked

    def _route(self, method: str) -> None:
        raise NotImplementedError

    def _scripted(self, fault: Fault | None) -> bool:
        """Answer with a scripted fault, if there is one (then the request is done)."""
        if fault is not None:
            self._send(fault.status, fault.body, fault.headers)
        return fault is not None

    def do_POST(self) -> None:
        self._route("POST")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_GET(self) -> None:
        self._route("GET")


class FakeServer:
    """Base of the fakes: ``fail(method, status, headers, body)`` answers the next matching
    request with that error; ``hang_next_create()`` makes the next create take effect but hold
    its answer until ``release`` is set (a create that times out after it took effect)."""

    empty_fault_body: Any = None

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.faults: list[Fault] = []
        self.release = threading.Event()
        self._hang_create = False
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _handler(self) -> type[JsonHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, status: int, headers=None, body=None) -> None:
        body = self.empty_fault_body if body is None else body
        self.faults.append(Fault(method, status, headers or {}, body))

    def hang_next_create(self) -> None:
        self.release.clear()
        self._hang_create = True

    def take_fault(self, method: str) -> Fault | None:
        """The first scripted fault for ``method``, removed from the queue."""
        with self._lock:
            fault = next((f for f in self.faults if f.method == method), None)
            if fault is not None:
                self.faults.remove(fault)
        return fault

    def hold_if_hanging(self) -> None:
        """Called by a create after it took effect: waits for ``release`` once if asked to."""
        with self._lock:
            hang, self._hang_create = self._hang_create, False
        if hang:
            self.release.wait(timeout=30)
