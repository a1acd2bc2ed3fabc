"""The one client of the review API (tickets and alarms), used by the TUI and by
``controlroom tickets`` / ``controlroom alarms``.

Requests and answers are the models of ``engine/http_schemas.py``; every failure is an
``ApiError`` carrying the service's own one-line ``detail`` (e.g. "ticket T-0012 is closed;
cannot approve"), the HTTP status, and the exit code the CLI uses for it.

Who is calling is not something the client says: the service authenticates the connection
(``engine/auth``). ``resolve_endpoint`` (``engine/review_endpoint.py``) picks the way in, once,
from the environment the entry (the CLI, the TUI) resolved and passes to it:

1. a Unix socket named explicitly (``--api unix:/path``, ``CONTROLROOM_REVIEW_SOCKET``): the
   kernel tells the service our uid;
2. a URL (``--api URL``, ``CONTROLROOM_REVIEW_URL``, else ``http://127.0.0.1:<review port>``)
   with a bearer token when one is given (``CONTROLROOM_TOKEN_FILE``, ``CONTROLROOM_TOKEN``);
3. a loopback URL without a token: the client asks the service's ``/health`` where its socket
   is and, when that socket is on this machine and the operator's to trust, uses it; otherwise
   every call fails saying why (plain TCP without a token would be refused by the service, and
   answered only by a squatter on its port). So on the plant host nothing needs configuring,
   whichever ``var/`` the services use.

The client is async (the TUI calls it from workers); the CLI runs it with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from engine.http_answer import AnswerRefused, NotJson, json_of, send_bounded_async
from engine.http_schemas import (
    AckRequest,
    Alarm,
    AlarmKpis,
    ApproveRequest,
    AssetStatus,
    CloseRequest,
    EditRequest,
    OutOfServiceRequest,
    ShelveRequest,
    UnshelveRequest,
    Whoami,
)
from engine.review_endpoint import SOCKET_URL, Endpoint, resolve_endpoint, untrusted_socket
from engine.schemas import Ticket, error_line

__all__ = [
    "ANSWER_MAX_BYTES",
    "ApiError",
    "Endpoint",
    "ReviewClient",
    "error_detail",
    "resolve_endpoint",
]

T = TypeVar("T")
KEEPALIVE_S = 2.0
"""An idle connection is reused for at most this long: well inside the service's own idle
timeout (uvicorn's 5 s), so a request never goes out on a connection the service is closing."""
DISCOVERY_S = 3.0
"""The whole of discovery's /health exchange, however the answer trickles in."""
HEALTH_MAX_BYTES = 256 * 1024
"""The most of a /health answer discovery reads (the review service's is about 2 KB)."""
ANSWER_MAX_BYTES = 64 * 1024 * 1024
"""The most of any other answer the client reads: 1,000 tickets at their largest (20,000
characters of body each, with their history) are ~25 MB; past this the answer is refused."""
ANSWER_TIMEOUTS = 3
"""A whole call (connect, headers, body, however it trickles in) takes at most this many times
the client's timeout (which httpx applies to each read alone)."""


class ApiError(Exception):
    """A call that failed: ``status`` None when the service could not be reached."""

    def __init__(self, service: str, status: int | None, detail: str) -> None:
        super().__init__(detail)
        self.service = service
        self.status = status
        self.detail = detail

    @property
    def conflict(self) -> bool:
        """The request was valid but the ticket or alarm moved on meanwhile (another operator)."""
        return self.status in (404, 409)

    @property
    def refused(self) -> bool:
        """The service understood and said no (4xx): nothing changed."""
        return self.status is not None and 400 <= self.status < 500

    @property
    def exit_code(self) -> int:
        """The CLI's exit code: 2 refused (unknown id, not allowed, bad value), 1 otherwise."""
        return 2 if self.refused else 1


def _unreachable(exc: httpx.HTTPError, where: str) -> ApiError:
    """The review service did not answer (``status`` None)."""
    if isinstance(exc, httpx.TimeoutException):
        return ApiError("review", None, f"review service timed out ({where})")
    if isinstance(exc, AnswerRefused):
        return ApiError("review", None, f"answer from {where} refused: {exc}")
    return ApiError(
        "review",
        None,
        f"cannot reach the review service at {where} ({type(exc).__name__}); is it "
        "running? (controlroom up, or controlroom serve review; --api to point elsewhere)",
    )


M = TypeVar("M", bound=BaseModel)


def _body(model: type[M], **fields: Any) -> M:
    """A request model built here, so a bad value is refused before anything is sent, with
    the same message the service would give."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise ApiError("review", 422, error_line(exc, root="")) from None


def error_detail(response: httpx.Response) -> str:
    """The service's one-line ``detail`` (every error body is ``ErrorBody``), else the text."""
    try:
        body = json_of(response)
    except NotJson:
        return response.text.strip()[:300] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:300]


class ReviewClient:
    """Async client of the review service: tickets, alarms, assets, KPIs."""

    service = "review"

    def __init__(
        self,
        endpoint: Endpoint | str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if isinstance(endpoint, str):  # a bare URL: no socket, no token
            endpoint = Endpoint(endpoint.rstrip("/"))
        self.endpoint = endpoint
        self.timeout = timeout
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._short: Any = None
        self._closed = False

    async def __aenter__(self) -> ReviewClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """After this every call is an ApiError: a late caller (a TUI worker racing the app's
        exit) must not open a fresh connection that nobody will close."""
        self._closed = True
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._short is not None:
            self._short.close()
            self._short = None

    # ---- connection ----------------------------------------------------------------------------

    async def _discover(self) -> None:
        """On the plant host: find the service's socket through its /health. ApiError when
        the service did not answer: nothing is decided then, the next call asks again. (Going
        on over TCP instead would be final — the client is kept — and without an identity every
        call is refused: a review service slow at a TUI's start, on a loaded machine, left that
        TUI without tickets for good.) The answer
        is anyone's who holds the port: the exchange is bounded in time (``DISCOVERY_S``, a
        trickle included) and size (``HEALTH_MAX_BYTES``), and a socket that is not the
        operator's to trust is refused, by name (``untrusted_socket``). An answer that names no
        socket here is refused too, never taken for plain TCP: the review service refuses every
        call without an identity (401), so only a squatter on the port would answer them (its
        forged tickets shown, the operator's approvals sent to it)."""
        where = self.endpoint.url
        limit_s = min(self.timeout, DISCOVERY_S)
        data = bytearray()
        try:
            async with asyncio.timeout(limit_s), httpx.AsyncClient(timeout=limit_s) as probe:
                headers = {"accept-encoding": "identity"}
                async with probe.stream("GET", where + "/health", headers=headers) as response:
                    async for chunk in response.aiter_raw():  # raw: no decompression bomb
                        data += chunk
                        if len(data) > HEALTH_MAX_BYTES:
                            raise ApiError(
                                self.service,
                                None,
                                f"{where}/health answered more than {HEALTH_MAX_BYTES} bytes: "
                                "not the review service's",
                            )
        except TimeoutError:
            raise ApiError(
                self.service, None, f"review service timed out ({where}/health)"
            ) from None
        except httpx.HTTPError as exc:
            raise _unreachable(exc, where) from None
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):
            body = None
        auth = body.get("auth") if isinstance(body, dict) else None
        path = auth.get("socket") if isinstance(auth, dict) else None
        sock = Path(path) if isinstance(path, str) and "\0" not in path else None
        try:
            here = sock is not None and stat.S_ISSOCK(sock.stat().st_mode)
        except (OSError, ValueError):
            here = False
        if sock is None or not here:
            named = "no socket" if sock is None else f"the socket {str(sock)[:200]!a}"
            raise ApiError(
                self.service,
                None,
                f"{where}/health names {named} on this host, and without one the review "
                "service cannot tell who you are: --api unix:PATH to its socket, or a token "
                "(CONTROLROOM_TOKEN_FILE)",
            )
        why = untrusted_socket(sock)
        if why is not None:
            raise ApiError(
                self.service,
                None,
                f"{where}/health names the socket {str(sock)[:200]!a}, "
                f"which {why}: not used (--api unix:PATH to trust a socket explicitly)",
            )
        self.endpoint = Endpoint(SOCKET_URL, socket=sock)

    async def _client(self) -> httpx.AsyncClient:
        if self._closed:
            raise ApiError(self.service, None, "the review client is closed")
        if self._http is not None:
            return self._http
        if self._transport is None and self.endpoint.discoverable:
            await self._discover()
            if self._closed:  # closed while it asked: open nothing
                raise ApiError(self.service, None, "the review client is closed")
            if self._http is not None:  # another call discovered meanwhile: one client only
                return self._http
        headers = {}
        transport = self._transport
        if self.endpoint.socket is not None and transport is None:
            from engine.auth.socket_path import ShortPath

            self._short = ShortPath(self.endpoint.socket)
            transport = httpx.AsyncHTTPTransport(
                uds=self._short.text, limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S)
            )
        if self.endpoint.token:
            headers["authorization"] = f"Bearer {self.endpoint.token}"
        if transport is None and self.endpoint.socket is None:
            transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S))
        self._http = httpx.AsyncClient(
            base_url=self.endpoint.url, timeout=self.timeout, transport=transport, headers=headers
        )
        return self._http

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: BaseModel | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One call; ApiError for anything but a 2xx/304 answer."""
        client = await self._client()
        where = self.endpoint.describe()
        kwargs: dict[str, Any] = {
            "params": {k: v for k, v in (params or {}).items() if v is not None},
            "content": body.model_dump_json(exclude_none=True) if body is not None else None,
            "headers": {"content-type": "application/json", **(headers or {})}
            if body is not None
            else headers,
        }
        limit_s = self.timeout * ANSWER_TIMEOUTS

        async def send() -> httpx.Response:
            request = client.build_request(method, path, **kwargs)
            return await send_bounded_async(
                client, request, max_bytes=ANSWER_MAX_BYTES, limit_s=limit_s
            )

        try:
            try:
                response = await send()
            except httpx.RemoteProtocolError:
                if method != "GET":
                    raise
                response = await send()  # a read: once more
        except httpx.HTTPError as exc:
            raise _unreachable(exc, f"{where} {path}") from None
        if response.status_code >= 400:
            raise ApiError(self.service, response.status_code, error_detail(response))
        return response

    async def _get(self, adapter: TypeAdapter[T], method: str, path: str, **kw: Any) -> T:
        response = await self.request(method, path, **kw)
        try:
            return adapter.validate_json(response.content)
        except ValidationError as exc:
            raise ApiError(
                self.service,
                response.status_code,
                f"invalid answer from the review API ({path}): {error_line(exc, root='')}",
            ) from None

    # ---- who -----------------------------------------------------------------------------------

    async def whoami(self) -> Whoami:
        return await self._get(_WHOAMI, "GET", "/whoami")

    # ---- tickets -------------------------------------------------------------------------------

    async def tickets(
        self, state: str | None = None, asset: str | None = None, limit: int = 1000
    ) -> list[Ticket]:
        params = {"state": state, "asset": asset, "limit": limit}
        return await self._get(_TICKETS, "GET", "/tickets", params=params)

    async def ticket(self, ticket_id: str) -> Ticket:
        return await self._get(_TICKET, "GET", f"/tickets/{ticket_id}")

    async def approve(self, ticket_id: str, note: str | None = None) -> Ticket:
        body = _body(ApproveRequest, ticket_id=ticket_id, note=note or None)
        return await self._get(_TICKET, "POST", "/review/approve", body=body)

    async def edit(self, ticket_id: str, **changes: Any) -> Ticket:
        body = _body(EditRequest, ticket_id=ticket_id, **changes)
        return await self._get(_TICKET, "POST", "/review/edit", body=body)

    async def close(self, ticket_id: str, reason: str, note: str | None = None) -> Ticket:
        body = _body(CloseRequest, ticket_id=ticket_id, reason=reason, note=note or None)
        return await self._get(_TICKET, "POST", "/review/close", body=body)

    # ---- alarms --------------------------------------------------------------------------------

    async def alarms(
        self,
        state: str = "open",
        asset: str | None = None,
        priority: str | None = None,
        *,
        history: bool = True,
        limit: int | None = None,
    ) -> list[Alarm]:
        params = {
            "state": state,
            "asset": asset,
            "priority": priority,
            "history": "true" if history else "false",
            "limit": limit,
        }
        return await self._get(_ALARMS, "GET", "/alarms", params=params)

    async def alarms_if_changed(
        self, etag: str | None, state: str = "open", *, history: bool = False
    ) -> tuple[str | None, list[Alarm] | None]:
        """For polling: ``(etag, alarms)``, or ``(etag, None)`` when nothing changed since
        ``etag`` (the service answers 304 without a body)."""
        params = {"state": state, "history": "true" if history else "false"}
        headers = {"if-none-match": etag} if etag else None
        response = await self.request("GET", "/alarms", params=params, headers=headers)
        new = response.headers.get("etag")
        if response.status_code == 304:
            return new or etag, None
        try:
            return new, _ALARMS.validate_json(response.content)
        except ValidationError as exc:
            raise ApiError(
                self.service, 200, f"invalid alarm list: {error_line(exc, root='')}"
            ) from None

    async def alarm(self, alarm_id: str) -> Alarm:
        return await self._get(_ALARM, "GET", f"/alarms/{alarm_id}")

    async def ack(self, alarm_id: str, note: str | None = None) -> Alarm:
        body = _body(AckRequest, alarm_id=alarm_id, note=note or None)
        return await self._get(_ALARM, "POST", "/alarms/ack", body=body)

    async def shelve(
        self,
        alarm_id: str,
        minutes: int | None = None,
        *,
        until_clear: bool = False,
        note: str | None = None,
    ) -> Alarm:
        body = _body(
            ShelveRequest,
            alarm_id=alarm_id,
            minutes=minutes,
            until_clear=until_clear,
            note=note or None,
        )
        return await self._get(_ALARM, "POST", "/alarms/shelve", body=body)

    async def unshelve(self, alarm_id: str, note: str | None = None) -> Alarm:
        body = _body(UnshelveRequest, alarm_id=alarm_id, note=note or None)
        return await self._get(_ALARM, "POST", "/alarms/unshelve", body=body)

    async def assets(self) -> list[AssetStatus]:
        return await self._get(_ASSETS, "GET", "/assets")

    async def out_of_service(
        self, asset: str, on: bool, reason: str | None = None, *, never_alarmed: bool = False
    ) -> AssetStatus:
        body = _body(
            OutOfServiceRequest,
            asset=asset,
            on=on,
            reason=reason or None,
            never_alarmed=never_alarmed,
        )
        return await self._get(_ASSET, "POST", "/assets/out_of_service", body=body)

    async def kpis(self, hours: float = 24.0, operators: int = 1) -> AlarmKpis:
        params = {"hours": hours, "operators": operators}
        return await self._get(_KPIS, "GET", "/alarms/kpis", params=params)


_WHOAMI = TypeAdapter(Whoami)
_TICKET = TypeAdapter(Ticket)
_TICKETS = TypeAdapter(list[Ticket])
_ALARM = TypeAdapter(Alarm)
_ALARMS = TypeAdapter(list[Alarm])
_ASSET = TypeAdapter(AssetStatus)
_ASSETS = TypeAdapter(list[AssetStatus])
_KPIS = TypeAdapter(AlarmKpis)
