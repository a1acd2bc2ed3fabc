"""amqtt as the embedded broker when Mosquitto is not installed (imported only then: amqtt is
slow to import).

Why a custom auth plugin: amqtt marks every client of its stock anonymous-auth plugin as
"anonymous" and then neither queues QoS 1 messages for it while it is offline nor keeps its
session, which would break the "a restarted agent receives what was published while it was
down" guarantee. A loopback-only embedded broker has no one to authenticate, so every client is
accepted as a named (non-anonymous) session.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session


class LoopbackAuthPlugin(BaseAuthPlugin):
    """Accept every client as a persistent-capable (non-anonymous) session."""

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Session) -> bool:
        session.is_anonymous = False
        return True


def broker_config(host: str, port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "timeout_disconnect_delay": 0,
        "plugins": {f"{__name__}.LoopbackAuthPlugin": {}},
    }


def run_amqtt(host: str, port: int, ready: threading.Event, result: dict[str, Any]) -> None:
    """Thread body: run a broker until ``result["stop"]`` (an asyncio.Event) is set.

    Reports ``port`` (the bound one, so port 0 works), ``loop`` and ``stop`` through ``result``,
    or ``error``; sets ``ready`` either way."""
    # amqtt logs every connection at INFO; keep our terminal for our own lines.
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    loop = asyncio.new_event_loop()

    async def main() -> None:
        stop = asyncio.Event()
        try:
            broker = Broker(broker_config(host, port), loop=loop)
            await broker.start()
            server = broker._servers["default"].instance
            bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
            ready.set()
            return
        result.update(port=bound, loop=loop, stop=stop)
        ready.set()
        await stop.wait()
        try:
            await broker.shutdown()
        except Exception as exc:  # shutdown of a broken broker must still free the thread
            logging.getLogger(__name__).warning("amqtt shutdown: %s", exc)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
