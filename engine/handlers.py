"""The contract between a bus handler and the bus client about acknowledgement.

A QoS 1 message is acknowledged once its handler has returned: its effect is durable (stored,
or recognised as a duplicate), or it was rejected for good (an exception the client
dead-letters). A handler that could not make its effect durable *now* (the store cannot write:
disk full, locked, corrupt, server gone) and cannot wait any longer (the service is stopping)
raises :class:`NotDurable`. The client must then leave the message unacknowledged, so the
broker redelivers it to the next session; it must not dead-letter it, and must forget it in its
duplicate window so the redelivery is handled.
"""

from __future__ import annotations


class NotDurable(Exception):
    """The handler's effect is not durable: do not acknowledge, do not dead-letter; the
    message must be delivered again."""
