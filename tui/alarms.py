"""The alarm states the review API keeps (acknowledged, shelved, out of service), as the TUI last
fetched them. The bus tells the TUI that an episode is active or cleared at once; whether an
operator acknowledged or shelved it is the store's, fetched over HTTP, never taken from the bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tui.fleet import AlarmFlags


@dataclass
class AlarmStates:
    """Replaced wholesale on each fetch; ``version`` tells screens to redraw."""

    version: int = 0
    _flags: dict[str, AlarmFlags] = field(default_factory=dict)
    _oos: dict[str, str] = field(default_factory=dict)
    available: bool = False
    """False until the review API has answered ``GET /alarms`` once."""

    def replace(self, flags: Mapping[str, AlarmFlags], out_of_service: Mapping[str, str]) -> None:
        if dict(flags) == self._flags and dict(out_of_service) == self._oos and self.available:
            return
        self._flags = dict(flags)
        self._oos = dict(out_of_service)
        self.available = True
        self.version += 1

    def flags(self) -> dict[str, AlarmFlags]:
        return self._flags

    def out_of_service(self) -> dict[str, str]:
        return self._oos
