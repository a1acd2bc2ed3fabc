"""The TUI's HTTP side: the review API (through ``engine.review_client``, the client the CLI
uses too), the simulator API (8101) and every /health.

Every review action goes through the review service, never straight to the store: it owns the
state machines, the audit trail and the feedback it publishes, and it names the operator from the
connection (``engine/auth``), so nothing here says who is acting. Calls are async and run in
Textual workers, so a slow or dead service never freezes the screen; failures come back as
``ApiError`` (the one error class of ``engine.review_client``) with a one-line message fit for a
notification (the service's own ``detail`` when it gave one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from engine.http_answer import AnswerRefused, NotJson, json_of, send_bounded_async
from engine.http_schemas import ScenarioList, ScenarioStatus
from engine.review_client import ApiError, ReviewClient, error_detail, resolve_endpoint
from engine.schemas import Ticket, error_line
from engine.settings import SERVICE_NAMES

__all__ = ["SERVICES", "ApiError", "ControlRoomApi"]

M = TypeVar("M", bound=BaseModel)

SERVICES = SERVICE_NAMES
ANSWER_MAX_BYTES = 8 * 1024 * 1024
"""The most of a simulator or /health answer the TUI reads (they are a few KiB): whoever holds
a service's port answers, and must not bloat the screen's process."""
ANSWER_TIMEOUTS = 3
"""A whole call takes at most this many times its timeout, however the answer trickles in."""


class ControlRoomApi:
    """HTTP client for the five services, given their base URLs (service name -> URL)."""

    def __init__(
        self,
        urls: dict[str, str],
        *,
        environ: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``environ``: the environment the CLI resolved (the review API's token, socket)."""
        self.urls = dict(urls)
        self.timeout = timeout
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)
        endpoint = resolve_endpoint(self.urls.get("review"), environ=environ or {})
        self.review = ReviewClient(endpoint, timeout=timeout, transport=transport)
        """Tickets, alarms, assets and KPIs (``engine.review_client.ReviewClient``)."""

    async def aclose(self) -> None:
        """Close both clients; a call still in flight or made later gets an ApiError, so a
        worker racing the app's shutdown fails like any unreachable service would."""
        await self._client.aclose()
        await self.review.aclose()

    def _open(self, service: str) -> httpx.AsyncClient:
        if self._client.is_closed:
            raise ApiError(service, None, f"{service}: the client is closed")
        return self._client

    async def _send(
        self, service: str, method: str, url: str, timeout: float, **kwargs: Any
    ) -> httpx.Response:
        """One exchange, its answer bounded in size and its whole time (``engine.http_answer``)."""
        client = self._open(service)
        request = client.build_request(method, url, timeout=timeout, **kwargs)
        return await send_bounded_async(
            client, request, max_bytes=ANSWER_MAX_BYTES, limit_s=timeout * ANSWER_TIMEOUTS
        )

    async def _call(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        base = self.urls.get(service)
        if base is None:
            raise ApiError(service, None, f"no {service} service configured")
        url = base.rstrip("/") + path
        try:
            response = await self._send(service, method, url, self.timeout, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(service, None, f"{service} service timed out ({url})") from None
        except AnswerRefused as exc:
            raise ApiError(service, None, f"{service}: answer refused: {exc}") from None
        except httpx.HTTPError as exc:
            raise ApiError(
                service, None, f"{service} service unreachable at {base} ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            raise ApiError(service, response.status_code, error_detail(response))
        try:
            return json_of(response)
        except NotJson:
            raise ApiError(service, response.status_code, f"{service}: reply is not JSON") from None

    # ---------------------------------------------------------------- review
    # Kept for the screens' existing calls; ``who`` is ignored: the service authenticates.

    async def tickets(self) -> list[Ticket]:
        return await self.review.tickets(limit=1000)

    async def ticket(self, ticket_id: str) -> Ticket:
        return await self.review.ticket(ticket_id)

    async def approve(self, ticket_id: str, who: str = "", note: str | None = None) -> Ticket:
        return await self.review.approve(ticket_id, note)

    async def edit(self, ticket_id: str, who: str, changes: dict[str, Any]) -> Ticket:
        return await self.review.edit(ticket_id, **changes)

    async def close(
        self, ticket_id: str, reason: str, who: str = "", note: str | None = None
    ) -> Ticket:
        return await self.review.close(ticket_id, reason, note)

    # ---------------------------------------------------------------- simulator

    async def _typed(self, model: type[M], service: str, method: str, path: str, **kw: Any) -> M:
        """The reply as its contract in ``engine.http_schemas``; an unreadable one is an
        ApiError naming the path and the first field that did not fit."""
        data = await self._call(service, method, path, **kw)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ApiError(
                service, 200, f"{service}: {path}: unreadable: {error_line(exc)}"
            ) from None

    async def scenario_status(self) -> ScenarioStatus:
        return await self._typed(ScenarioStatus, "simulator", "GET", "/scenario/status")

    async def scenario_load(self, name: str) -> ScenarioStatus:
        return await self._typed(
            ScenarioStatus, "simulator", "POST", "/scenario/load", json={"name": name}
        )

    async def scenario_start(self, speed: float | None = None) -> ScenarioStatus:
        body = {} if speed is None else {"speed": speed}
        return await self._typed(ScenarioStatus, "simulator", "POST", "/scenario/start", json=body)

    async def scenario_list(self) -> list[str]:
        return (await self._typed(ScenarioList, "simulator", "GET", "/scenarios")).scenarios

    async def scenario_stop(self) -> ScenarioStatus:
        return await self._typed(ScenarioStatus, "simulator", "POST", "/scenario/stop", json={})

    # ---------------------------------------------------------------- health

    async def health(self, service: str, timeout: float = 1.5) -> dict[str, Any]:
        """The service's /health body. A 503 still carries a body ("degraded": up, but not
        connected to the broker), so it is returned, not raised."""
        base = self.urls.get(service)
        if base is None:
            raise ApiError(service, None, f"no {service} service configured")
        url = base.rstrip("/") + "/health"
        try:
            response = await self._send(service, "GET", url, timeout)
        except httpx.HTTPError as exc:
            raise ApiError(service, None, f"{service}: {type(exc).__name__}") from None
        try:
            body = json_of(response)
        except NotJson:
            raise ApiError(service, response.status_code, "reply is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(service, response.status_code, "reply is not an object")
        return body
