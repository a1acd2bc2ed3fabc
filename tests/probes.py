"""Probing a running service from a test: its ``/health`` document, or None while it is not
(yet) answering, so ``wait_for(lambda: health(url))`` waits for it to come up.

``http`` is the one HTTP client of a test process. ``httpx.get(...)`` and ``httpx.post(...)``
build a client per call, and with it an SSL context from certifi's bundle: 30-40 ms of CPU
per call against ~1 ms for the request itself, paid at every step of a poll loop (a wait on
four services' /health, every 50 ms, kept a core busy on this alone). Keep-alive is off: each
request opens its own connection, as ``httpx.get`` did, so a service restarted on the same
port never meets a stale one."""

from __future__ import annotations

from typing import Any

import httpx

http = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=5.0)


def health(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        r = http.get(url + "/health", timeout=timeout)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None
