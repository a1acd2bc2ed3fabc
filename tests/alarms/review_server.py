"""The real review service in this process, on loopback (a TCP port and its Unix socket), with
an injected clock, for the API tests. The same ``ReviewService`` class and listeners
``controlroom serve review`` uses; only the process is shared with the test, so the test can
move the clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from engine.review_client import Endpoint, ReviewClient
from engine.services.review import ReviewService
from engine.services.settings import Settings


class InProcessReview:
    def __init__(self, var: Path, broker_url: str, clock: Callable[[], float], **env: str) -> None:
        environ = {
            "CONTROLROOM_BROKER": broker_url,
            "CONTROLROOM_REVIEW_PORT": "0",
            "CONTROLROOM_DB": str(var / "controlroom.db"),
            "CONTROLROOM_VAR": str(var),
            "CONTROLROOM_CLIENT_PREFIX": f"t{id(self):x}"[-12:],
            **env,
        }
        self.settings = Settings.from_env("review", environ=environ)
        self.clock = clock
        self.service: ReviewService | None = None
        self.server: Any = None
        self.thread: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> InProcessReview:
        self.service = ReviewService(self.settings, clock=self.clock)
        self.server = uvicorn.Server(self.service.server_config())
        sockets = self.service.listeners()
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": sockets}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not (self.server.started and self.service.bus.subscribed):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("review service did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=20)
        self.server = self.thread = None

    @property
    def url(self) -> str:
        assert self.service is not None
        return f"http://127.0.0.1:{self.service.port}"

    @property
    def socket(self) -> Path:
        assert self.service is not None
        return self.service.socket_path

    def client(self, **kw: Any) -> ReviewClient:
        """A client on the Unix socket (the operator is this test process's login name)."""
        return ReviewClient(Endpoint("http://review", socket=self.socket), **kw)

    def tcp_client(self, token: str | None = None) -> ReviewClient:
        return ReviewClient(Endpoint(self.url, token=token))
