"""Probing a running service from a test: its ``/health`` document, or None while it is not
(yet) answering, so ``wait_for(lambda: health(url))`` waits for it to come up."""

from __future__ import annotations

from typing import Any

import httpx


def health(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        r = httpx.get(url + "/health", timeout=timeout)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None
