"""One tick of a ``FleetSimulator`` as arrays, its Telemetry messages built only when asked for.

Why: a 1,000-pump replay spent ~5 µs a sample building Telemetry objects (a signals dict and a
model per pump per tick) that the agents then took apart again, value by value. The agents'
batch paths (``Monitor.feed_batch``, ``DiagnosisAgent.feed_batch``) read a ``FleetTick``'s
value array directly; the messages are built on first access (iteration, indexing), exactly as
the simulator used to build them, so a replay that writes its telemetry out, a test, or an
agent's fallback path sees the same objects.

A tick's ``assets`` and ``scenarios`` tuples are the same objects from one tick to the next
while the set of pumps publishing does not change: the agents key what they cached about the
fleet (which pump sits in which row) on their identity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np
import numpy.typing as npt

from engine.plant.signals import SIGNAL_ORDER
from engine.pydantic_compat import trusted
from engine.schemas import Telemetry, Truth

F64 = npt.NDArray[np.float64]


@dataclass(slots=True, eq=False)
class FleetTick(Sequence[Telemetry]):
    """The Telemetry of every pump publishing at one tick (``values``: one row per message, in
    ``SIGNAL_ORDER``; never written to by a reader). ``truths`` gives each message's truth,
    asked once when the messages are built (the simulator's truths of the tick, kept as they
    were then)."""

    seq: int
    ts: float
    values: F64
    assets: tuple[str, ...]
    scenarios: tuple[str, ...]
    _prefixes: Sequence[str]
    _truths: Callable[[], Sequence[Truth]]
    _msgs: list[Telemetry] | None = field(default=None, init=False)

    def stamp(self, r: int) -> tuple[int, float, str]:
        """(seq, ts, msg_id) of message ``r``, without building it."""
        return self.seq, self.ts, self._prefixes[r] + str(self.seq)

    def messages(self) -> list[Telemetry]:
        """The tick's Telemetry, built once (the fields the simulator has always published)."""
        if self._msgs is None:
            seq, t, tail = self.seq, self.ts, str(self.seq)
            msgs = []
            for prefix, asset, name, truth, row in zip(
                self._prefixes,
                self.assets,
                self.scenarios,
                self._truths(),
                self.values.tolist(),
                strict=True,
            ):
                fields = {
                    "msg_id": prefix + tail,
                    "asset": asset,
                    "seq": seq,
                    "ts": t,
                    "signals": dict(zip(SIGNAL_ORDER, row, strict=True)),
                    "scenario": name,
                    "truth": truth,
                    "wall_time": None,
                }
                msgs.append(trusted(Telemetry, fields))
            self._msgs = msgs
        return self._msgs

    def __len__(self) -> int:
        return len(self.assets)

    @overload
    def __getitem__(self, i: int) -> Telemetry: ...
    @overload
    def __getitem__(self, i: slice) -> list[Telemetry]: ...
    def __getitem__(self, i: int | slice) -> Telemetry | list[Telemetry]:
        return self.messages()[i]

    def __iter__(self) -> Iterator[Telemetry]:
        return iter(self.messages())

    def __bool__(self) -> bool:
        return bool(self.assets)
