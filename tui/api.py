"""The TUI's HTTP side: the review API (8105), the simulator API (8101) and every /health.

Every review action goes through here, never straight to the store: the review service owns the
state machine, the audit trail and the feedback it publishes. Calls are async (httpx) and run in
Textual workers, so a slow or dead service never freezes the screen; failures come back as
``ApiError`` with a one-line message fit for a notification (the service's own ``detail`` when it
gave one, e.g. "ticket T-12 is closed; cannot approve").
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from engine.schemas import Ticket

SERVICES = ("simulator", "monitor", "diagnosis", "ticket", "review")


class ApiError(Exception):
    def __init__(self, service: str, status: int | None, detail: str) -> None:
        super().__init__(detail)
        self.service = service
        self.status = status
        self.detail = detail

    @property
    def conflict(self) -> bool:
        """The request was valid but the ticket moved on meanwhile (another operator)."""
        return self.status in (404, 409)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI validation errors
        parts = []
        for err in detail[:3]:
            if isinstance(err, dict):
                loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
            else:
                parts.append(str(err))
        return "; ".join(parts)
    return str(detail)[:300]


class ControlRoomApi:
    """HTTP client for the five services, given their base URLs (service name -> URL)."""

    def __init__(
        self,
        urls: dict[str, str],
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.urls = dict(urls)
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        base = self.urls.get(service)
        if base is None:
            raise ApiError(service, None, f"no {service} service configured")
        url = base.rstrip("/") + path
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(service, None, f"{service} service timed out ({url})") from None
        except httpx.HTTPError as exc:
            raise ApiError(
                service, None, f"{service} service unreachable at {base} ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            raise ApiError(service, response.status_code, _detail(response))
        try:
            return response.json()
        except ValueError:
            raise ApiError(service, response.status_code, f"{service}: reply is not JSON") from None

    # ---------------------------------------------------------------- review

    @staticmethod
    def _ticket(data: Any) -> Ticket:
        try:
            return Ticket.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in first.get("loc", ()))
            raise ApiError("review", None, f"invalid ticket from review API: {loc}") from None

    async def tickets(self) -> list[Ticket]:
        data = await self._call("review", "GET", "/tickets", params={"limit": 1000})
        if isinstance(data, dict):
            data = data.get("tickets", [])
        return [self._ticket(item) for item in data]

    async def ticket(self, ticket_id: str) -> Ticket:
        return self._ticket(await self._call("review", "GET", f"/tickets/{ticket_id}"))

    async def approve(self, ticket_id: str, who: str, note: str | None = None) -> Ticket:
        body: dict[str, Any] = {"ticket_id": ticket_id, "who": who}
        if note:
            body["note"] = note
        return self._ticket(await self._call("review", "POST", "/review/approve", json=body))

    async def edit(self, ticket_id: str, who: str, changes: dict[str, Any]) -> Ticket:
        body = {"ticket_id": ticket_id, "who": who, **changes}
        return self._ticket(await self._call("review", "POST", "/review/edit", json=body))

    async def close(self, ticket_id: str, reason: str, who: str, note: str | None = None) -> Ticket:
        body: dict[str, Any] = {"ticket_id": ticket_id, "reason": reason, "who": who}
        if note:
            body["note"] = note
        return self._ticket(await self._call("review", "POST", "/review/close", json=body))

    # ---------------------------------------------------------------- simulator

    async def scenario_status(self) -> dict[str, Any]:
        return await self._call("simulator", "GET", "/scenario/status")

    async def scenario_load(self, name: str) -> dict[str, Any]:
        return await self._call("simulator", "POST", "/scenario/load", json={"name": name})

    async def scenario_start(self, speed: float | None = None) -> dict[str, Any]:
        body = {} if speed is None else {"speed": speed}
        return await self._call("simulator", "POST", "/scenario/start", json=body)

    async def scenario_list(self) -> list[str]:
        data = await self._call("simulator", "GET", "/scenarios")
        names = data.get("scenarios", []) if isinstance(data, dict) else data
        return [str(n) for n in names]

    async def scenario_stop(self) -> dict[str, Any]:
        return await self._call("simulator", "POST", "/scenario/stop", json={})

    # ---------------------------------------------------------------- health

    async def health(self, service: str, timeout: float = 1.5) -> dict[str, Any]:
        """The service's /health body. A 503 still carries a body ("degraded": up, but not
        connected to the broker), so it is returned, not raised."""
        base = self.urls.get(service)
        if base is None:
            raise ApiError(service, None, f"no {service} service configured")
        try:
            response = await self._client.get(base.rstrip("/") + "/health", timeout=timeout)
        except httpx.HTTPError as exc:
            raise ApiError(service, None, f"{service}: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            raise ApiError(service, response.status_code, "reply is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(service, response.status_code, "reply is not an object")
        return body
