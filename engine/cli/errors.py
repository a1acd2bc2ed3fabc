"""What a failed ``controlroom`` command prints, and the exit status it returns.

Exit statuses, the same for every subcommand:

- 0: done;
- 1: the input was fine but the world was not (a broker or service that does not answer, a full
  disk, a run that failed);
- 2: bad input: a file, field, name or URL given on the command line or in a file;
- 130: interrupted (Ctrl-C); 141: stdout was closed early (``controlroom … | head``), as for
  any Unix tool killed by SIGPIPE.

A handler that knows what went wrong raises ``UsageError`` or ``RuntimeFailure`` with one line
naming the file, field, topic or URL. Anything else that escapes a handler goes through
``classify``, which knows the exceptions a command meets in normal use (a path that does not
exist, a refused connection, a pydantic validation error, any ``engine`` error class). What it
does not know is a bug: one line saying so, and the traceback with ``--debug`` or
``CONTROLROOM_DEBUG=1``.

Domain modules never import this one (the CLI is the outermost layer): their own error classes
are classified by what they derive from — a ``ValueError`` or ``LookupError`` subclass defined
in ``engine`` or ``tui`` is bad input, any other class defined there is a runtime failure.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Mapping
from typing import ClassVar, NamedTuple

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + 13  # what the shell reports for a process killed by SIGPIPE
DEBUG_ENV = "CONTROLROOM_DEBUG"


class CliError(Exception):
    """A failure the user can act on: printed as one line, never as a traceback."""

    exit_code: ClassVar[int] = EXIT_FAILURE


class UsageError(CliError):
    """Bad input (exit 2): the message names the file, field, name or URL that is wrong."""

    exit_code = EXIT_USAGE


class RuntimeFailure(CliError):
    """The input was fine, the world was not (exit 1): an unreachable broker or service, an I/O
    error, a run that failed. The message says what was tried and where."""

    exit_code = EXIT_FAILURE


class Failure(NamedTuple):
    """How an exception ends the command: its exit status and its one line on stderr."""

    code: int
    message: str


# OSErrors about a path the user named: the path is the bad input.
_PATH_ERRORS = {
    errno.ENOENT: "no such file or directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "not a directory",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "file name too long",
    errno.EROFS: "read-only file system",
    errno.ELOOP: "too many levels of symbolic links",
}


def classify(exc: BaseException) -> Failure | None:
    """The exit status and message for an exception that escaped a handler; ``None`` for one
    nobody expected (a bug). Looks only at libraries already imported: an exception class can
    only have been raised if its module was loaded, so this never imports pydantic or httpx."""
    if isinstance(exc, CliError):
        return Failure(exc.exit_code, str(exc))
    if isinstance(exc, OSError):
        return _os_failure(exc)
    for check in (_httpx_failure, _pydantic_failure, _yaml_failure):
        failure = check(exc)
        if failure is not None:
            return failure
    module = type(exc).__module__.split(".")[0]
    if module in ("engine", "tui"):
        bad_input = isinstance(exc, ValueError | LookupError)
        return Failure(EXIT_USAGE if bad_input else EXIT_FAILURE, str(exc) or type(exc).__name__)
    if isinstance(exc, UnicodeDecodeError):
        return Failure(EXIT_USAGE, f"input is not UTF-8 text ({exc.reason} at byte {exc.start})")
    return None


def _os_failure(exc: OSError) -> Failure:
    if isinstance(exc, ConnectionRefusedError | TimeoutError) or exc.errno in (
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
    ):
        return Failure(EXIT_FAILURE, f"cannot connect: {exc.strerror or exc}")
    if isinstance(exc, ConnectionError):  # reset, aborted, a peer gone mid-write
        return Failure(EXIT_FAILURE, f"connection lost: {exc.strerror or exc}")
    if type(exc).__module__ == "socket":  # gaierror, herror: a host name that does not resolve
        return Failure(EXIT_USAGE, f"unknown host: {exc.strerror or exc}")
    if exc.filename is not None and exc.errno in _PATH_ERRORS:
        where = os.fsdecode(exc.filename)
        what = _PATH_ERRORS[exc.errno]
        if exc.errno == errno.ENOENT and exc.filename2 is None:
            parent = os.path.dirname(os.path.abspath(where))
            if not os.path.isdir(parent):
                what += f" (directory {parent} does not exist)"
        return Failure(EXIT_USAGE, f"{where}: {what}")
    where = f"{os.fsdecode(exc.filename)}: " if exc.filename is not None else ""
    return Failure(EXIT_FAILURE, f"{where}{exc.strerror or exc}")


def _httpx_failure(exc: BaseException) -> Failure | None:
    httpx = sys.modules.get("httpx")
    if httpx is None or not isinstance(exc, httpx.HTTPError | httpx.InvalidURL):
        return None
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return Failure(EXIT_USAGE, f"bad URL: {exc}")
    try:
        where = f" {exc.request.url}"
    except RuntimeError:  # an error raised before any request was built
        where = ""
    return Failure(EXIT_FAILURE, f"cannot reach{where}: {exc or type(exc).__name__}")


def _pydantic_failure(exc: BaseException) -> Failure | None:
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(exc, pydantic.ValidationError):
        return None
    errors = exc.errors(include_url=False)
    first = errors[0] if errors else {}
    loc = ".".join(str(p) for p in first.get("loc", ())) or "(root)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return Failure(EXIT_USAGE, f"{exc.title}: {loc}: {first.get('msg', 'invalid')}{more}")


def _yaml_failure(exc: BaseException) -> Failure | None:
    yaml = sys.modules.get("yaml")
    if yaml is None or not isinstance(exc, yaml.YAMLError):
        return None
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    return Failure(EXIT_USAGE, f"not valid YAML: {where}{problem}")


def debug_enabled(flag: bool, environ: Mapping[str, str]) -> bool:
    """``--debug``, or ``CONTROLROOM_DEBUG`` (in the command's resolved environment, so
    ``.env`` may set it too) set to anything but empty/0/false/no."""
    env = environ.get(DEBUG_ENV, "").strip().lower()
    return flag or env not in ("", "0", "false", "no", "off")


def stdout_is_broken() -> bool:
    """True when stdout's reader has gone (``| head`` read what it wanted). A broken pipe from
    elsewhere — a socket, a child's stdin — is a real failure, not this."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        return True
    except OSError as exc:
        return exc.errno == errno.EPIPE
    try:
        import select

        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & select.POLLERR for _fd, ev in poll.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not report the broken
    pipe a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
