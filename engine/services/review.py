"""Agent D as a service: the operators' API over the shared store — work orders (approve, edit,
close) and alarms (acknowledge, shelve, out of service) — and the feedback loop back to the
monitor and diagnosis agents.

**Who.** Every route but ``/health`` needs an authenticated operator (``engine/auth``): a
connection on the Unix socket ``var/review.sock`` is its peer's login name (``SO_PEERCRED``),
a TCP request needs ``Authorization: Bearer <token>``. The audit trail records that name; a body
that names someone (``who``) is refused (422). Refusals are 401 and counted in ``/health``.

**API** (FastAPI, port 8105, bodies in ``engine/http_schemas.py``): ``GET /whoami``;
``GET /tickets``, ``GET /tickets/{id}``, ``POST /review/{approve,edit,close}``; ``GET /alarms``
(``state``, ``asset``, ``priority``, ``history``, ``limit``; ``ETag`` / ``If-None-Match`` so a
TUI polls for the price of a 304), ``GET /alarms/kpis``, ``GET /alarms/{id}``,
``POST /alarms/{ack,shelve,unshelve}``; ``GET /assets``, ``POST /assets/out_of_service``.
Errors are ``{"detail": "<one line>"}``: 401 no identity, 404 unknown id, 409 the state
forbids it, 413 body over the limit, 422 bad input, 503 store unavailable; nothing changes.

**Alarms.** The service records every alert publication from ``alerts/+`` (highest revision per
alert id) through the pure state machine ``engine/alarms/lifecycle.py`` into the alarm tables of
the store. A sweeper ends timed shelves when their time is up (reads do too, so an answer never
shows a shelve that has run out) and prunes old alarms. The clock is injected (tests).

**Tickets.** Each action commits, in one transaction: the ticket change + its audit entry, the
feedback message and the ticket snapshot in this service's outbox, and — for a
``false_positive`` close — the new tuning. Then the outbox publisher, before sending a feedback
message, writes the tuning file (``var/tuning.json``, which the monitor and diagnosis services
reload when it changes) and appends the false-positive log (``var/false_positives.jsonl``). So
the file is always on disk by the time a consumer sees the feedback, and a crash anywhere after
the commit only delays these steps to the next start. The store is the source of truth for
tuning; a hand-edited file is adopted at the next start.

Why one module of ~710 lines: one service: its routes (tickets, alarms, assets, whoami), their
authentication and the feedback it publishes share the store, the operator's identity and the
counters ``/health`` reports. The rules are elsewhere (``engine/tickets/lifecycle.py``,
``engine/alarms/lifecycle.py``, ``engine/agents/feedback.py``); what is left here is routing and
I/O.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

from fastapi import Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from engine.agent_files import FalsePositiveLog, load_tuning, save_tuning
from engine.agents.feedback import adjust_tuning, feedback_for
from engine.alarms import lifecycle as lc
from engine.alarms.kpis import compute, sample_of
from engine.alarms.store import AlarmStore
from engine.auth.identity import Operator, name_for_uid
from engine.auth.peer import PeerCredProtocol, bind_unix, check_uvicorn, request_peer
from engine.auth.tokens import TokenRegistry
from engine.bus.acl import OPERATORS_GROUP_ENV
from engine.bus.client import RetryLater
from engine.http_schemas import (
    ALARM_LIST_MAX,
    TICKET_LIST_MAX,
    AckRequest,
    Alarm,
    AlarmFilter,
    ApproveRequest,
    CloseRequest,
    EditRequest,
    OutOfServiceRequest,
    Priority,
    ReviewHealth,
    ShelveRequest,
    TicketStateFilter,
    UnshelveRequest,
    Whoami,
)
from engine.paths import read_small_file
from engine.schemas import (
    AlertEvent,
    Feedback,
    FeedbackAction,
    PlantMessage,
    Ticket,
    Tuning,
    utc_now,
)
from engine.services.base import Service
from engine.services.settings import Settings
from engine.services.store_health import WriteHealth
from engine.services.ticket import PROBE_EVERY_S, store_path
from engine.tickets.outbox import OutboxPublisher
from engine.tickets.store import (
    IllegalTransition,
    InvalidRequest,
    StoreError,
    TicketNotFound,
    TicketStore,
    Tx,
    normalize_id,
)

ORIGIN = "review"
TUNING_KEY = "tuning"
EXPORT_KEY = "tuning_export_sha256"
MAX_BODY_BYTES = 256 * 1024
SWEEP_S = 1.0
PRUNE_S = 600.0
NO_IDENTITY = (
    "no operator identity: on the plant host use the review socket ({socket}) — controlroom "
    "tickets/alarms and the TUI find it themselves — or send 'Authorization: Bearer <token>' "
    "(controlroom operators add NAME; CONTROLROOM_TOKEN_FILE)"
)


def review_socket_path(env: Any, var: Path) -> Path:
    """``CONTROLROOM_REVIEW_SOCKET`` or ``var/review.sock``."""
    raw = env.get("CONTROLROOM_REVIEW_SOCKET") if env else None
    return Path(raw) if raw else var / "review.sock"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _operator(request: Request) -> Operator:
    """The operator ``ReviewService.authenticate`` put on the request (it runs first, for every
    route): an endpoint takes it as a parameter of type ``Op``."""
    op = request.state.operator
    assert isinstance(op, Operator)
    return op


Op = Annotated[Operator, Depends(_operator)]


class ReviewService(Service):
    name: ClassVar[str] = "review"
    title: ClassVar[str] = "Agent D — review"
    health_model = ReviewHealth
    http_protocol: ClassVar[Any] = PeerCredProtocol
    max_body_bytes: ClassVar[int | None] = MAX_BODY_BYTES

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        policy: lc.Policy = lc.DEFAULT_POLICY,
    ) -> None:
        self.clock = clock
        self.policy = policy
        super().__init__(settings)
        self._wire()

    def _wire(self) -> None:
        check_uvicorn()
        env, var = self.settings.env, self.settings.var
        self.store = TicketStore(store_path(env, var))
        self.alarms = AlarmStore(store_path(env, var), policy=self.policy)
        self.tokens = TokenRegistry(var / "operators.json")
        self.socket_path = review_socket_path(env, var)
        self.socket_mode = int(env.get("CONTROLROOM_REVIEW_SOCKET_MODE") or "660", 8)
        self.socket_group = env.get(OPERATORS_GROUP_ENV) or None
        self._socket_inode: int | None = None
        self.fp_log = FalsePositiveLog(var / "false_positives.jsonl")
        self.tuning_file = var / "tuning.json"
        self.actions = dict.fromkeys(
            ("approve", "edit", "close", "ack", "shelve", "unshelve", "out_of_service"), 0
        )
        self.actions["refused"] = 0
        self.alerts = {"recorded": 0, "ignored": 0}
        self.auth_refused = 0
        self.outbox = OutboxPublisher(
            self.store, self.bus, ORIGIN, before_publish=self._before_publish, on_sent=self._sent
        )
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.writes = WriteHealth()
        app = self.app
        self.body_limit = self.http_limits  # Service mounts it (max_body_bytes above)
        app.add_exception_handler(RequestValidationError, self._invalid_request)
        routes: list[tuple[str, Callable[..., Any], str]] = [
            ("/whoami", self.whoami, "GET"),
            ("/tickets", self.list_tickets, "GET"),
            ("/tickets/{ticket_id}", self.get_ticket, "GET"),
            ("/review/approve", self.approve, "POST"),
            ("/review/edit", self.edit, "POST"),
            ("/review/close", self.close, "POST"),
            ("/alarms", self.list_alarms, "GET"),
            ("/alarms/kpis", self.alarm_kpis, "GET"),
            ("/alarms/{alarm_id}", self.get_alarm, "GET"),
            ("/alarms/ack", self.ack, "POST"),
            ("/alarms/shelve", self.shelve, "POST"),
            ("/alarms/unshelve", self.unshelve, "POST"),
            ("/assets", self.list_assets, "GET"),
            ("/assets/out_of_service", self.out_of_service, "POST"),
        ]
        for path, endpoint, method in routes:  # authentication first, before the body is read
            app.add_api_route(
                path, endpoint, methods=[method], dependencies=[Depends(self.authenticate)]
            )
        self.bus.subscribe("alerts/+", self.on_alert)

    def listeners(self) -> list[socket.socket]:
        """The TCP port and the operators' Unix socket."""
        host = self.settings.host or "0.0.0.0"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        tcp = socket.create_server((host, self.settings.port), family=family, backlog=128)
        self.port = tcp.getsockname()[1]  # the port bound (0 in the settings: a free one)
        try:
            unix = bind_unix(self.socket_path, self.socket_mode, self.socket_group)
        except OSError:
            tcp.close()
            raise
        self._socket_inode = os.stat(self.socket_path).st_ino
        return [tcp, unix]

    def on_start(self) -> None:
        self._reconcile_tuning_file()
        self.outbox.start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="alarm-sweeper", daemon=True)
        self._sweeper.start()

    def on_stop(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        self.outbox.stop(timeout=5)
        self.bus.wait_idle(5)
        self._remove_socket()

    def _remove_socket(self) -> None:
        """Remove our socket file (only ours: a successor may already have bound a new one)."""
        try:
            st = self.socket_path.lstat()
        except FileNotFoundError:
            return
        if stat.S_ISSOCK(st.st_mode) and st.st_ino == self._socket_inode:
            self.socket_path.unlink(missing_ok=True)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def health_extras(self) -> dict[str, Any]:
        """Reads of the store may fail (corrupt, server gone): /health still answers, with
        None where the store could not be read and the fault in ``reasons``."""

        def read(what: Callable[[], Any]) -> Any:
            try:
                return what()
            except StoreError as exc:
                self.writes.failed("probe", exc)
                return None

        return {
            "store": self.store.location,
            "tickets": read(self.store.counts),
            "actions": dict(self.actions),
            "alarms": {**self.alerts, "version": read(self.alarms.version)},
            "auth": {
                "socket": str(self.socket_path),
                "socket_mode": oct(self.socket_mode),
                "token_operators": len(self._token_names()),
                "refused": self.auth_refused,
            },
            "http": self.body_limit.snapshot(),
            "outbox": {"in_flight": self.outbox.pending, "sent": self.outbox.sent},
            "tuning": {
                "file": str(self.tuning_file),
                "in_effect": read(lambda: self.store.get_setting(TUNING_KEY)),
            },
            "false_positive_log": str(self.fp_log.path),
        }

    def problems(self) -> list[str]:
        problem = self.writes.problem()
        return [*super().problems(), *([problem] if problem else [])]

    def _store_failed(self, exc: StoreError) -> None:
        if self.writes.failed("handler", exc):
            self.log.event("store_fault", fault=str(exc.fault), error=str(exc)[:300], echo=True)

    def _store_ok(self) -> None:
        if self.writes.ok("handler"):
            self.log.event("store_recovered", echo=True)

    def _token_names(self) -> list[str]:
        try:
            return self.tokens.names()
        except ValueError:
            return []

    # ---------------------------------------------------------------- authentication

    def authenticate(self, request: Request) -> None:
        """Every route's first step: the operator on this request, from its connection or its
        token, kept on ``request.state``; 401 otherwise."""
        request.state.operator = self._identify(request)

    def _identify(self, request: Request) -> Operator:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                self._unauthorized(request, "authorization: expected 'Bearer <token>'")
            try:
                name = self.tokens.verify(token.strip())
            except ValueError as exc:
                raise HTTPException(503, f"operator tokens unreadable: {exc}") from None
            if name is None:
                self._unauthorized(request, "invalid or revoked operator token")
            return Operator(str(name), "token")
        peer = request_peer(request.state)
        if peer is not None:
            return Operator(name_for_uid(peer.uid), "unix_socket")
        self._unauthorized(request, NO_IDENTITY.format(socket=self.socket_path))
        raise AssertionError  # unreachable: _unauthorized raises

    def _unauthorized(self, request: Request, detail: str) -> None:
        self.auth_refused += 1
        client = request.client
        self.log.event(
            "auth_refused",
            path=request.url.path,
            client=f"{client.host}:{client.port}" if client else "unix",
            reason=detail[:120],
        )
        raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})

    def whoami(self, op: Op) -> Whoami:
        return Whoami(operator=op.name, via=op.via)

    # ---------------------------------------------------------------- tickets

    def list_tickets(
        self,
        state: TicketStateFilter | None = None,
        asset: str | None = Query(default=None, max_length=64),
        limit: int = Query(default=200, ge=1, le=TICKET_LIST_MAX),
    ) -> JSONResponse:
        try:
            tickets = self.store.tickets(state, asset, limit)
        except StoreError as exc:
            return self._refuse(503, f"the ticket store is unavailable ({exc}); try again")
        return JSONResponse([t.model_dump(mode="json") for t in tickets])

    def get_ticket(self, ticket_id: str) -> JSONResponse:
        try:
            return JSONResponse(self.store.get(ticket_id).model_dump(mode="json"))
        except TicketNotFound as exc:
            return self._refuse(404, exc)
        except StoreError as exc:
            return self._refuse(503, f"the ticket store is unavailable ({exc}); try again")

    def approve(self, req: ApproveRequest, op: Op) -> JSONResponse:

        def run(tx: Tx) -> tuple[Ticket, dict[str, str] | None]:
            return tx.approve(req.ticket_id, op.name, req.note), None

        return self._act("approve", req.ticket_id, req.note, op, run)

    def edit(self, req: EditRequest, op: Op) -> JSONResponse:

        def run(tx: Tx) -> tuple[Ticket, dict[str, str] | None]:
            return tx.edit(req.ticket_id, op.name, **req.changes())

        return self._act("edit", req.ticket_id, None, op, run)

    def close(self, req: CloseRequest, op: Op) -> JSONResponse:

        def run(tx: Tx) -> tuple[Ticket, dict[str, str] | None]:
            return tx.close(req.ticket_id, op.name, req.reason, req.note), None

        return self._act("close", req.ticket_id, req.note, op, run)

    def _act(
        self,
        action: FeedbackAction,
        ticket_id: str,
        note: str | None,
        op: Operator,
        run: Callable[[Tx], tuple[Ticket, dict[str, str] | None]],
    ) -> JSONResponse:
        try:
            with self.store.transaction() as tx:
                ticket, changes = run(tx)
                if changes == {}:  # an edit that changed nothing: nothing to announce
                    return JSONResponse(ticket.model_dump(mode="json"))
                fb = feedback_for(action, ticket, op.name, at=utc_now(), note=note, changes=changes)
                if action == "close" and ticket.close_reason == "false_positive":
                    fb = self._tune(tx, fb)
                tx.enqueue(ticket, ORIGIN)
                tx.enqueue(fb, ORIGIN)
        except TicketNotFound as exc:
            return self._refuse(404, exc, action, ticket_id)
        except IllegalTransition as exc:
            return self._refuse(409, exc, action, ticket_id)
        except InvalidRequest as exc:
            return self._refuse(422, exc, action, ticket_id)
        except StoreError as exc:  # locked past the busy timeout, disk full, corrupt, server gone
            self._store_failed(exc)
            return self._refuse(
                503, f"the ticket store is unavailable ({exc}); try again", action, ticket_id
            )
        self._store_ok()
        self.actions[action] += 1
        self.log.event(
            f"review_{action}",
            ids={"ticket_id": ticket.ticket_id, "feedback_id": fb.feedback_id},
            who=op.name,
            via=op.via,
            reason=fb.reason,
            changes=fb.changes or None,
            tuning_changes=fb.tuning_changes or None,
            echo=True,
        )
        self.outbox.wake()
        return JSONResponse(ticket.model_dump(mode="json"))

    def _refuse(
        self,
        status: int,
        exc: Exception | str,
        action: str | None = None,
        subject: str | None = None,
    ) -> JSONResponse:
        self.actions["refused"] += 1
        if action:
            self.log.event(
                "review_refused",
                ids={"subject": normalize_id(subject) if subject else None},
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
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            if loc == "who" and e.get("type") == "extra_forbidden":
                msg = "not accepted: the operator is the one the service authenticated"
            problems.append(f"{loc or 'request'}: {msg}")
        self.actions["refused"] += 1
        return JSONResponse({"detail": "; ".join(problems)[:1000]}, status_code=422)

    # ---------------------------------------------------------------- alarms

    def on_alert(self, message: PlantMessage) -> None:
        """Record one alert publication. While the store cannot write, the bus keeps the
        message unacknowledged and hands it back later (``RetryLater``): an alarm is never
        lost to a locked or full store, and recording it twice changes nothing."""
        assert isinstance(message, AlertEvent)
        try:
            rec = self.alarms.record_alert(message, self.now())
        except StoreError as exc:
            self._store_failed(exc)
            self.log.event("store_busy", error=str(exc), ids={"alert_id": message.alert_id})
            raise RetryLater(str(exc)) from exc
        self._store_ok()
        if rec.alarm is None:
            self.alerts["ignored"] += 1
            self.log.event("alert_ignored", ids={"alert_id": message.alert_id})
            return
        self.alerts["recorded"] += 1
        alarm = rec.alarm
        self.log.event(
            "alarm_raised" if rec.created else "alarm_updated",
            ids={"alarm_id": alarm.alarm_id},
            asset=alarm.asset,
            state=alarm.state,
            priority=alarm.priority,
            revision=alarm.revision,
            echo=rec.created,
        )

    def _expire(self) -> None:
        for alarm in self.alarms.expire_shelves(self.now()):
            self.log.event("alarm_shelve_expired", ids={"alarm_id": alarm.alarm_id}, echo=True)

    def _sweep_loop(self) -> None:
        last_prune = last_probe = 0.0
        while not self._stop.wait(SWEEP_S):
            if time.monotonic() - last_probe >= PROBE_EVERY_S:
                last_probe = time.monotonic()
                self._probe()
            try:
                self._expire()
                if time.monotonic() - last_prune > PRUNE_S:
                    last_prune = time.monotonic()
                    pruned = self.alarms.prune(self.now())
                    if pruned:
                        self.log.event("alarms_pruned", count=pruned)
            except Exception as exc:  # a locked store: report, try again at the next tick
                self.log.event("alarm_sweep_failed", error=f"{type(exc).__name__}: {exc}")

    def _probe(self) -> None:
        """Tell /health whether the store can write, also when no alert or operator writes."""
        try:
            self.store.probe()
        except StoreError as exc:
            if self.writes.failed("probe", exc):
                self.log.event("store_fault", fault=str(exc.fault), error=str(exc)[:300])
        else:
            self.writes.ok("probe")

    def list_alarms(
        self,
        request: Request,
        state: AlarmFilter = "open",
        asset: str | None = Query(default=None, max_length=64),
        priority: Priority | None = None,
        history: bool = True,
        limit: int = Query(default=1000, ge=1, le=ALARM_LIST_MAX),
    ) -> Response:
        try:
            self._expire()
            etag = f'"{self.alarms.version()}-{state}-{asset}-{priority}-{int(history)}"'
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers={"ETag": etag})
            alarms = self.alarms.find(state, asset, priority, limit, history=history)
        except StoreError as exc:
            return self._refuse(503, exc)
        body = [a.model_dump(mode="json") for a in alarms]
        return JSONResponse(body, headers={"ETag": etag})

    def get_alarm(self, alarm_id: str) -> JSONResponse:
        try:
            self._expire()
            return JSONResponse(self.alarms.get(alarm_id).model_dump(mode="json"))
        except lc.AlarmNotFound as exc:
            return self._refuse(404, exc)
        except StoreError as exc:
            return self._refuse(503, exc)

    def alarm_kpis(
        self,
        hours: float = Query(default=24.0, gt=0, le=24 * 366),
        operators: int = Query(default=1, ge=1, le=1000),
    ) -> JSONResponse:
        end = self.alarms.plant_now()
        start = max(0.0, end - hours * 3600.0)
        samples = [sample_of(a) for a in self.alarms.timeline(start)]
        kpis = compute(samples, start, end, operators=operators, policy=self.policy)
        return JSONResponse(kpis.model_dump(mode="json"))

    def ack(self, req: AckRequest, op: Op) -> JSONResponse:
        return self._noted_alarm_act("ack", req, op, self.alarms.acknowledge)

    def shelve(self, req: ShelveRequest, op: Op) -> JSONResponse:
        return self._alarm_act(
            "shelve",
            req.alarm_id,
            op,
            lambda now: self.alarms.shelve(
                req.alarm_id,
                op.name,
                now,
                minutes=req.minutes,
                until_clear=req.until_clear,
                note=req.note,
            ),
        )

    def unshelve(self, req: UnshelveRequest, op: Op) -> JSONResponse:
        return self._noted_alarm_act("unshelve", req, op, self.alarms.unshelve)

    def list_assets(self) -> JSONResponse:
        return JSONResponse([a.model_dump(mode="json") for a in self.alarms.assets()])

    def out_of_service(self, req: OutOfServiceRequest, op: Op) -> JSONResponse:
        return self._alarm_act(
            "out_of_service",
            req.asset,
            op,
            lambda now: self.alarms.set_out_of_service(
                req.asset, req.on, op.name, now, req.reason, known_only=not req.never_alarmed
            ),
        )

    def _noted_alarm_act(
        self,
        action: str,
        req: AckRequest | UnshelveRequest,
        op: Operator,
        act: Callable[[str, str, datetime, str | None], Alarm],
    ) -> JSONResponse:
        """An alarm action that takes nothing but the operator's note (ack, unshelve)."""
        return self._alarm_act(
            action, req.alarm_id, op, lambda now: act(req.alarm_id, op.name, now, req.note)
        )

    def _alarm_act(
        self, action: str, subject: str, op: Operator, run: Callable[[datetime], Any]
    ) -> JSONResponse:
        try:
            self._expire()
            result = run(self.now())
        except lc.AlarmNotFound as exc:
            return self._refuse(404, exc, action, subject)
        except lc.IllegalTransition as exc:
            return self._refuse(409, exc, action, subject)
        except lc.AlarmError as exc:
            return self._refuse(422, exc, action, subject)
        except StoreError as exc:
            self._store_failed(exc)
            return self._refuse(503, exc, action, subject)
        self._store_ok()
        self.actions[action] += 1
        self.log.event(
            f"alarm_{action}",
            ids={"subject": subject},
            who=op.name,
            via=op.via,
            state=getattr(result, "state", None),
            echo=True,
        )
        return JSONResponse(result.model_dump(mode="json"))

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
        if self._tuning_file_bytes() == data:
            tmp.unlink()
            return
        os.replace(tmp, self.tuning_file)
        with self.store.transaction() as tx:
            tx.put_setting(EXPORT_KEY, _sha(data))
        self.log.event("tuning_saved", file=str(self.tuning_file), tuning=raw, echo=True)

    def _tuning_file_bytes(self) -> bytes | None:
        """The tuning file's bytes; None when there is none, or when it is not a file we can
        read (a FIFO would hang the start, a huge file fill memory): reported, then replaced
        by the store's tuning."""
        try:
            return read_small_file(self.tuning_file)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.log.event("tuning_file_invalid", error=str(exc), echo=True)
            return None

    def _reconcile_tuning_file(self) -> None:
        """At start: adopt a hand-edited tuning file, else re-export the store's tuning."""
        data = self._tuning_file_bytes()
        if data is not None and _sha(data) != self.store.get_setting(EXPORT_KEY):
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
