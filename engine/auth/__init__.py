"""Operator authentication for the review API: who pressed approve, acknowledge or shelve.

The audit trail names whoever the authentication says, never what a request body claims (a
``who`` field in a body is refused). Two ways in, both checked by the service, not the client:

- **The Unix socket** ``var/review.sock`` (mode 0660 by default): the kernel tells the service the
  connecting process's uid (``SO_PEERCRED``), and the operator is that uid's login name. This fits
  the way the control room is offered over SSH, one account per colleague: nothing to hand out,
  nothing to steal, and nobody can claim another account's name. The CLI and the TUI on the
  plant host find the socket themselves.
- **Bearer tokens** for TUIs on other machines (``controlroom operators add NAME``): 32 random
  bytes, handed out once; the service keeps only their SHA-256 in ``var/operators.json`` (mode
  0600) and compares in constant time. Names are restricted to ``[a-z][a-z0-9._-]{0,31}`` so no
  control, bidi or zero-width character can ever reach an audit line.

Plain TCP without a token is refused (401) for everything but ``/health``.
"""
