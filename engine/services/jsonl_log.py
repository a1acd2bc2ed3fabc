"""Per-service JSONL run log: one object per line, the raw material of ``controlroom report``.

Every line has ``time`` (UTC ISO-8601), ``service``, ``event``; optional ``ids`` (the message ids
the event concerns), ``latency_ms``, and free fields. Lines for messages a service published carry
``topic`` and ``message`` (the payload as on the bus), so a run can be re-scored from its logs.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.paths import open_append
from engine.schemas import WireModel, topic_for

console = logging.getLogger("controlroom.service")


class JsonlLog:
    def __init__(self, path: Path, service: str) -> None:
        self.path = path
        self.service = service
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = os.fdopen(open_append(path), "a", encoding="utf-8", buffering=1)

    def event(
        self,
        event: str,
        *,
        ids: Mapping[str, object] | None = None,
        latency_ms: float | None = None,
        echo: bool = False,
        **fields: Any,
    ) -> None:
        """Append one line; ``echo`` also prints a short human line on the console."""
        self._write(self._line(event, ids, latency_ms, fields))
        if echo:
            shown = ids or {
                k: v for k, v in fields.items() if isinstance(v, str | int | float | bool)
            }
            brief = " ".join(f"{k}={v}" for k, v in shown.items())
            lat = f" ({latency_ms:.0f} ms)" if latency_ms is not None else ""
            console.info("%s %s %s%s", self.service, event, brief, lat)

    def message(
        self,
        event: str,
        msg: WireModel,
        *,
        ids: Mapping[str, object] | None = None,
        latency_ms: float | None = None,
        echo: bool = False,
    ) -> None:
        """Log a message this service published (or stored), payload included as on the bus.

        The payload is spliced in as the model's own JSON (the simulator logs every sample:
        re-encoding it through dicts would cost more than publishing it)."""
        line = self._line(event, ids, latency_ms, {"topic": topic_for(msg)})
        self._write(f'{line[:-2]},"message":{msg.to_json()}}}\n')
        if echo:
            brief = " ".join(f"{k}={v}" for k, v in (ids or {}).items())
            lat = f" ({latency_ms:.0f} ms)" if latency_ms is not None else ""
            console.info("%s %s %s%s", self.service, event, brief, lat)

    def _line(
        self,
        event: str,
        ids: Mapping[str, object] | None,
        latency_ms: float | None,
        fields: dict[str, Any],
    ) -> str:
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="microseconds"),
            "service": self.service,
            "event": event,
        }
        if ids:
            record["ids"] = ids
        if latency_ms is not None:
            record["latency_ms"] = round(latency_ms, 3)
        record.update(fields)
        return json.dumps(record, default=str, separators=(",", ":")) + "\n"

    def _write(self, line: str) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.write(line)

    def close(self) -> None:
        with self._lock:
            self._file.close()
