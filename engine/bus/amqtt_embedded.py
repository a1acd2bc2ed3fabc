"""amqtt as the embedded broker when Mosquitto is not installed (imported only then: amqtt is
slow to import).

Two ways to run it:

- with credentials (what ``controlroom up``/``demo`` start): ``AclAuthPlugin`` accepts only the
  identities of ``engine.bus.acl`` with their passwords, and ``AclTopicPlugin`` enforces the ACL
  on every publish, subscribe and delivery;
- without (test fixtures only): ``LoopbackAuthPlugin`` accepts every client.

Either way every accepted client is a named (non-anonymous) session: amqtt neither queues QoS 1
messages for an anonymous client while it is offline nor keeps its session, which would break
"a restarted agent receives what was published while it was down".
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from engine.bus.acl import may_publish, may_subscribe

log = logging.getLogger("controlroom.bus")


class LoopbackAuthPlugin(BaseAuthPlugin):
    """Accept every client as a persistent-capable (non-anonymous) session."""

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Session) -> bool:
        session.is_anonymous = False
        return True


class AclAuthPlugin(BaseAuthPlugin):
    """Accept only known identities with their password (constant-time comparison)."""

    @dataclass
    class Config:
        users: dict[str, str] = field(default_factory=dict)

    async def authenticate(self, *, session: Session) -> bool:
        users: dict[str, str] = self.context.config.users
        expected = users.get(session.username or "")
        given = session.password or ""
        ok = expected is not None and hmac.compare_digest(expected.encode(), given.encode())
        if ok:
            session.is_anonymous = False
        else:
            log.warning("amqtt: refused client %r (bad credentials)", session.client_id)
        return ok


class AclTopicPlugin(BaseTopicPlugin):
    """``engine.bus.acl.ACL`` on publish, subscribe and delivery."""

    @dataclass
    class Config:
        pass

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Any = None
    ) -> bool:
        user = session.username if session is not None else None
        if topic is None:
            return False
        if action == Action.PUBLISH:
            allowed = may_publish(user, topic)
        else:  # SUBSCRIBE (a filter) or RECEIVE (a concrete topic)
            allowed = may_subscribe(user, topic)
        if not allowed and action != Action.RECEIVE:
            log.warning("amqtt: %s may not %s %r", user, str(action).lower(), topic[:100])
        return allowed


def broker_config(host: str, port: int, users: dict[str, str] | None) -> dict[str, Any]:
    plugins: dict[str, Any] = (
        {
            f"{__name__}.AclAuthPlugin": {"users": users},
            f"{__name__}.AclTopicPlugin": {},
        }
        if users is not None
        else {f"{__name__}.LoopbackAuthPlugin": {}}
    )
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "timeout_disconnect_delay": 0,
        "plugins": plugins,
    }


def run_amqtt(
    host: str,
    port: int,
    ready: threading.Event,
    result: dict[str, Any],
    users: dict[str, str] | None = None,
) -> None:
    """Thread body: run a broker until ``result["stop"]`` (an asyncio.Event) is set.

    Reports ``port`` (the bound one, so port 0 works), ``loop``, ``stop`` and ``broker`` through
    ``result``, or ``error``; sets ``ready`` either way."""
    # amqtt logs every connection at INFO; keep our terminal for our own lines.
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    loop = asyncio.new_event_loop()

    async def main() -> None:
        stop = asyncio.Event()
        try:
            broker = Broker(broker_config(host, port, users), loop=loop)
            await broker.start()
            server = broker._servers["default"].instance
            bound = server.sockets[0].getsockname()[1]
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
            ready.set()
            return
        result.update(port=bound, loop=loop, stop=stop, broker=broker)
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


async def session_connected(broker: Broker, client_id: str) -> bool:
    """Whether amqtt still counts ``client_id`` as connected. It delivers a QoS 1 message to a
    session it counts as connected straight to the socket and keeps no copy, so a message
    published while a client is disconnecting is lost; one published after this turns False
    is queued for the session (Mosquitto keeps the in-flight copy either way)."""
    session, _ = broker._sessions.get(client_id, (None, None))
    return session is not None and session.transitions.state == "connected"
