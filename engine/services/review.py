"""Agent D as a service: the human review API over the shared ticket store, and the feedback
loop back to the monitor and diagnosis agents.

API (FastAPI, port 8105): ``GET /tickets`` (``state`` open|approved|closed|active, ``asset``,
``limit``), ``GET /tickets/{id}``, ``POST /review/approve``, ``POST /review/edit``,
``POST /review/close``. Every error is ``{"detail": "<one readable line>"}``: 404 unknown
ticket, 409 the ticket's state forbids the action, 422 bad input; nothing changes on an error.

Each action commits, in one transaction: the ticket change + its audit entry, the feedback
message and the ticket snapshot in this service's outbox, and — for a ``false_positive`` close —
the new tuning. Then the outbox publisher, before sending a feedback message, writes the tuning
file (``var/tuning.json``, which the monitor and diagnosis services reload when it changes) and
appends the false-positive log (``var/false_positives.jsonl``). So the file is always on disk by
the time a consumer sees the feedback, and a crash anywhere after the commit only delays these
steps to the next start.

The store is the source of truth for tuning; the file is its export. If someone edits the file
by hand, the service notices at start (the file differs from what it last wrote) and adopts it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any, ClassVar, Literal

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.agents.feedback import FalsePositiveLog, adjust_tuning, feedback_for
from engine.agents.tuning import Tuning, load_tuning, save_tuning
from engine.http_schemas import ReviewHealth
from engine.paths import var_dir
from engine.schemas import CloseReason, Feedback, PlantMessage, Severity, Ticket
from engine.services.base import Service
from engine.services.settings import Settings
from engine.services.ticket import store_path
from engine.tickets.outbox import OutboxPublisher
from engine.tickets.store import (
    IllegalTransition,
    InvalidRequest,
    TicketNotFound,
    TicketStore,
    Tx,
    normalize_id,
)

ORIGIN = "review"
TUNING_KEY = "tuning"
EXPORT_KEY = "tuning_export_sha256"
DEFAULT_WHO = "reviewer"

Who = Field(default=DEFAULT_WHO, min_length=1, max_length=128, description="reviewer's name")
Note = Field(default=None, max_length=500)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ApproveRequest(_Request):
    ticket_id: str = Field(min_length=1, max_length=128)
    who: str = Who
    note: str | None = Note


class EditRequest(_Request):
    ticket_id: str = Field(min_length=1, max_length=128)
    who: str = Who
    title: str | None = Field(default=None, min_length=1, max_length=500)
    body: str | None = Field(default=None, min_length=1, max_length=20_000)
    labels: list[str] | None = Field(default=None, max_length=50)
    severity: Severity | None = None


class CloseRequest(_Request):
    ticket_id: str = Field(min_length=1, max_length=128)
    reason: CloseReason
    who: str = Who
    note: str | None = Note


def tuning_path() -> Path:
    return var_dir() / "tuning.json"


def false_positive_log_path() -> Path:
    return var_dir() / "false_positives.jsonl"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ReviewService(Service):
    name: ClassVar[str] = "review"
    title: ClassVar[str] = "Agent D — review"
    health_model = ReviewHealth

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.store = TicketStore(store_path(self.settings.env))
        self.fp_log = FalsePositiveLog(false_positive_log_path())
        self.tuning_file = tuning_path()
        self.actions = {"approve": 0, "edit": 0, "close": 0, "refused": 0}
        self.outbox = OutboxPublisher(
            self.store, self.bus, ORIGIN, before_publish=self._before_publish, on_sent=self._sent
        )
        app = self.app
        app.add_exception_handler(RequestValidationError, self._invalid_request)
        app.add_api_route("/tickets", self.list_tickets, methods=["GET"])
        app.add_api_route("/tickets/{ticket_id}", self.get_ticket, methods=["GET"])
        app.add_api_route("/review/approve", self.approve, methods=["POST"])
        app.add_api_route("/review/edit", self.edit, methods=["POST"])
        app.add_api_route("/review/close", self.close, methods=["POST"])

    def on_start(self) -> None:
        self._reconcile_tuning_file()
        self.outbox.start()

    def on_stop(self) -> None:
        self.outbox.stop(timeout=5)

    def health_extras(self) -> dict[str, Any]:
        return {
            "store": str(self.store.path),
            "tickets": self.store.counts(),
            "actions": dict(self.actions),
            "outbox": {"in_flight": self.outbox.pending, "sent": self.outbox.sent},
            "tuning": {
                "file": str(self.tuning_file),
                "in_effect": self.store.get_setting(TUNING_KEY),
            },
            "false_positive_log": str(self.fp_log.path),
        }

    # ---------------------------------------------------------------- HTTP

    def list_tickets(
        self,
        state: Literal["open", "approved", "closed", "active"] | None = None,
        asset: str | None = Query(default=None, max_length=64),
        limit: int = Query(default=200, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        return [t.model_dump(mode="json") for t in self.store.list(state, asset, limit)]

    def get_ticket(self, ticket_id: str) -> JSONResponse:
        try:
            return JSONResponse(self.store.get(ticket_id).model_dump(mode="json"))
        except TicketNotFound as exc:
            return self._refuse(404, exc)

    def approve(self, req: ApproveRequest) -> JSONResponse:
        return self._act(
            "approve", req, lambda tx: (tx.approve(req.ticket_id, req.who, req.note), None)
        )

    def edit(self, req: EditRequest) -> JSONResponse:
        fields = req.model_dump(include={"title", "body", "labels", "severity"}, exclude_none=True)

        def run(tx: Tx) -> tuple[Ticket, dict[str, str] | None]:
            return tx.edit(req.ticket_id, req.who, **fields)

        return self._act("edit", req, run)

    def close(self, req: CloseRequest) -> JSONResponse:
        return self._act(
            "close", req, lambda tx: (tx.close(req.ticket_id, req.who, req.reason, req.note), None)
        )

    def _act(self, action: str, req: Any, run: Any) -> JSONResponse:
        try:
            with self.store.transaction() as tx:
                ticket, changes = run(tx)
                if changes == {}:  # an edit that changed nothing: nothing to announce
                    return JSONResponse(ticket.model_dump(mode="json"))
                fb = feedback_for(
                    action, ticket, req.who, note=getattr(req, "note", None), changes=changes
                )
                if action == "close" and ticket.close_reason == "false_positive":
                    fb = self._tune(tx, fb)
                tx.enqueue(ticket, ORIGIN)
                tx.enqueue(fb, ORIGIN)
        except TicketNotFound as exc:
            return self._refuse(404, exc, action, req)
        except IllegalTransition as exc:
            return self._refuse(409, exc, action, req)
        except InvalidRequest as exc:
            return self._refuse(422, exc, action, req)
        except sqlite3.OperationalError as exc:  # locked past the busy timeout, disk full
            return self._refuse(
                503, f"the ticket store is unavailable ({exc}); try again", action, req
            )
        self.actions[action] += 1
        self.log.event(
            f"review_{action}",
            ids={"ticket_id": ticket.ticket_id, "feedback_id": fb.feedback_id},
            who=req.who,
            reason=fb.reason,
            changes=fb.changes or None,
            tuning_changes=fb.tuning_changes or None,
            echo=True,
        )
        self.outbox.wake()
        return JSONResponse(ticket.model_dump(mode="json"))

    def _refuse(
        self, status: int, exc: Exception | str, action: str | None = None, req: Any = None
    ) -> JSONResponse:
        self.actions["refused"] += 1
        if action:
            self.log.event(
                "review_refused",
                ids={"ticket_id": normalize_id(req.ticket_id)},
                action=action,
                status=status,
                error=str(exc),
            )
        return JSONResponse({"detail": str(exc)}, status_code=status)

    async def _invalid_request(self, request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query"))
            problems.append(f"{loc or 'request'}: {e.get('msg', 'invalid')}")
        self.actions["refused"] += 1
        return JSONResponse({"detail": "; ".join(problems)[:1000]}, status_code=422)

    # ---------------------------------------------------------------- feedback loop

    def _tune(self, tx: Tx, fb: Feedback) -> Feedback:
        """Fold a false-positive close into the tuning (inside the close's transaction)."""
        raw = tx.get_setting(TUNING_KEY)
        current = Tuning.model_validate(raw) if raw is not None else Tuning()
        tuned, lines = adjust_tuning(current, fb)
        if lines:
            tx.put_setting(TUNING_KEY, tuned.model_dump(mode="json"))
        return fb.model_copy(update={"tuning_changes": lines})

    def _before_publish(self, message: PlantMessage) -> None:
        if isinstance(message, Feedback) and message.reason == "false_positive":
            self._export_tuning()
            self.fp_log.append(message)

    def _export_tuning(self) -> None:
        """Write the store's tuning to the file the agents watch, atomically, when it differs."""
        raw = self.store.get_setting(TUNING_KEY)
        if raw is None:
            return
        tmp = self.tuning_file.with_name(self.tuning_file.name + ".tmp")
        save_tuning(Tuning.model_validate(raw), tmp)
        data = tmp.read_bytes()
        if self.tuning_file.exists() and self.tuning_file.read_bytes() == data:
            tmp.unlink()
            return
        os.replace(tmp, self.tuning_file)
        with self.store.transaction() as tx:
            tx.put_setting(EXPORT_KEY, _sha(data))
        self.log.event("tuning_saved", file=str(self.tuning_file), tuning=raw, echo=True)

    def _reconcile_tuning_file(self) -> None:
        """At start: adopt a hand-edited tuning file, else re-export the store's tuning."""
        if self.tuning_file.exists():
            data = self.tuning_file.read_bytes()
            if _sha(data) != self.store.get_setting(EXPORT_KEY):
                try:
                    tuning = load_tuning(self.tuning_file)
                except Exception as exc:
                    self.log.event("tuning_file_invalid", error=str(exc), echo=True)
                else:
                    with self.store.transaction() as tx:
                        tx.put_setting(TUNING_KEY, tuning.model_dump(mode="json"))
                        tx.put_setting(EXPORT_KEY, _sha(data))
                    self.log.event("tuning_adopted", file=str(self.tuning_file), echo=True)
                    return
        if self.store.get_setting(TUNING_KEY) is not None:
            self._export_tuning()

    def _sent(self, message: PlantMessage) -> None:
        if isinstance(message, Feedback):
            self.log.message("feedback_published", message, ids={"ticket_id": message.ticket_id})
