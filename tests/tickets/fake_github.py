"""A real HTTP server on loopback that behaves like GitHub's issues endpoints.

It implements what the connector uses — create (POST), update (PATCH) and list (GET) issues of
one repository — with GitHub's status codes and error bodies, token checking, and a queue of
scripted faults: ``fail(method, status, headers, body)`` answers the next matching request with
that error; ``hang_next_create()`` creates the issue but holds the answer back until the test
releases it (a create that times out on the client after it took effect on the server).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from fake_http import FakeServer, JsonHandler


class FakeGitHub(FakeServer):
    empty_fault_body: ClassVar[Any] = {}

    def __init__(self, token: str, repo: str = "acme/plant") -> None:
        self.token = token
        self.repo = repo
        self.issues: dict[int, dict[str, Any]] = {}
        super().__init__()

    def count(self, method: str) -> int:
        return sum(1 for m, _, _ in self.requests if m == method)

    # ---- the handler -------------------------------------------------------------------------

    def _handler(self) -> type[JsonHandler]:
        gh = self

        class Handler(JsonHandler):
            content_type = "application/json; charset=utf-8"

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"{}")

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                payload = self._body() if method in ("POST", "PATCH") else None
                gh.requests.append((method, parts.path, dict(self.headers)))
                if self.headers.get("Authorization") != f"Bearer {gh.token}":
                    return self._send(
                        401,
                        {
                            "message": "Bad credentials",
                            "documentation_url": "https://docs.github.com/rest",
                            "status": "401",
                        },
                    )
                if self._scripted(gh.take_fault(method)):
                    return None
                base = f"/repos/{gh.repo}/issues"
                if parts.path == base and method == "POST":
                    return self._create(payload)
                if parts.path == base and method == "GET":
                    return self._list(parse_qs(parts.query))
                if parts.path.startswith(base + "/") and method == "PATCH":
                    return self._update(int(parts.path.rsplit("/", 1)[1]), payload)
                return self._send(404, {"message": "Not Found", "status": "404"})

            def _create(self, payload: dict[str, Any]) -> None:
                if not payload.get("title"):
                    return self._send(
                        422,
                        {
                            "message": "Validation Failed",
                            "errors": [{"resource": "Issue", "field": "title", "code": "missing"}],
                            "status": "422",
                        },
                    )
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                with gh._lock:
                    number = len(gh.issues) + 1
                    issue = {
                        "number": number,
                        "html_url": f"https://github.com/{gh.repo}/issues/{number}",
                        "title": payload["title"],
                        "body": payload.get("body"),
                        "labels": [{"name": n} for n in payload.get("labels", [])],
                        "state": "open",
                        "state_reason": None,
                        "created_at": now,
                        "updated_at": now,
                    }
                    gh.issues[number] = issue
                gh.hold_if_hanging()
                self._send(201, issue)

            def _update(self, number: int, payload: dict[str, Any]) -> None:
                issue = gh.issues.get(number)
                if issue is None:
                    return self._send(404, {"message": "Not Found", "status": "404"})
                for key in ("title", "body", "state", "state_reason"):
                    if key in payload:
                        issue[key] = payload[key]
                if "labels" in payload:
                    issue["labels"] = [{"name": n} for n in payload["labels"]]
                self._send(200, issue)

            def _list(self, query: dict[str, list[str]]) -> None:
                per_page = int(query.get("per_page", ["30"])[0])
                page = int(query.get("page", ["1"])[0])
                ordered = sorted(gh.issues.values(), key=lambda i: -i["number"])
                self._send(200, ordered[(page - 1) * per_page : page * per_page])

        return Handler
