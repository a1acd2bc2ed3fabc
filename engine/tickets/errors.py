"""What the ticket store can refuse or fail with, as types a caller can act on.

Two families:

- :class:`TicketError` refusals (unknown ticket, a move the state forbids, a bad request): the
  caller asked for something wrong; retrying the same request gives the same answer.
- :class:`StoreError` faults (locked past the busy timeout, disk full, corrupt file, server
  gone): the request was fine but the database could not do it *now*. Nothing was changed (the
  transaction rolled back), so the same request can be retried once the fault is gone. Each
  carries a :class:`Fault` kind, so ``/health`` and the HTTP API can say which, without any
  caller importing ``sqlite3`` or ``psycopg``.
"""

from __future__ import annotations

from enum import StrEnum


class TicketError(Exception):
    """Base of the store's refusals; the message is fit for an operator."""


class TicketNotFound(TicketError, LookupError):
    pass


class IllegalTransition(TicketError):
    """The ticket's state does not allow the action (e.g. approving a closed ticket)."""


class InvalidRequest(TicketError, ValueError):
    """The request itself is wrong (unknown close reason, nothing to edit, bad severity)."""


class Fault(StrEnum):
    BUSY = "busy"
    """Another writer held the database past the busy/lock timeout."""
    FULL = "full"
    """The file system (or the server's disk) is full."""
    IO = "io"
    """The operating system reported an I/O error."""
    CORRUPT = "corrupt"
    """Pages or files are damaged: an operator has to restore or move the store aside."""
    READ_ONLY = "read_only"
    """The file, directory or server refuses writes."""
    UNAVAILABLE = "unavailable"
    """The store cannot be opened or reached (path, permissions, server down)."""


class StoreError(TicketError):
    """The database could not carry out a request; nothing was changed, retry later."""

    def __init__(self, fault: Fault, message: str) -> None:
        super().__init__(message)
        self.fault = fault


class StoreUnavailable(StoreError, ValueError):
    """The store cannot be opened or used at all (path, permissions, file system, server)."""

    def __init__(self, message: str, fault: Fault = Fault.UNAVAILABLE) -> None:
        super().__init__(fault, message)
