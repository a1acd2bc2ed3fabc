"""Whether a service's store can write, as its /health reports it (issue 12 item 7): a store
that cannot write turns the service ``degraded`` (503) with the fault and since when, and the
reason clears only once a write succeeds again. Shared by the ticket and review services, which
write the same store."""

from __future__ import annotations

import threading
import time

from engine.tickets.errors import StoreError


class WriteHealth:
    """Whether the store can write, as last seen by the diagnosis handler and the probe. The
    handler's fault clears only when its own write succeeds (a probe can succeed on a full
    disk where a larger write still fails)."""

    def __init__(self, what: str = "ticket store") -> None:
        self.what = what
        self._lock = threading.Lock()
        self.handler: tuple[StoreError, float] | None = None
        self.probe: tuple[StoreError, float] | None = None

    def problem(self) -> str | None:
        with self._lock:
            found = self.handler or self.probe
            if found is None:
                return None
            exc, since = found
            return (
                f"the {self.what} cannot write ({exc.fault}) for {time.time() - since:.0f} s: {exc}"
            )[:500]

    def failed(self, kind: str, exc: StoreError) -> bool:
        """Record a failure; True when it is a new fault (worth a log line)."""
        with self._lock:
            old: tuple[StoreError, float] | None = getattr(self, kind)
            setattr(self, kind, (exc, old[1] if old else time.time()))
            return old is None or old[0].fault != exc.fault

    def ok(self, kind: str) -> bool:
        """Record a success; True when it ends a fault."""
        with self._lock:
            old = getattr(self, kind)
            setattr(self, kind, None)
            return old is not None
