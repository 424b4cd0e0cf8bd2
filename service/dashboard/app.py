"""The dashboard's Starlette application: pages, the JSON API, server-sent events, metrics and health.

:func:`create_app` opens the store once (as the read commands do: a missing SQLite file is refused, not
created) and reads through a read-only handle (:mod:`service.dashboard.readonly`); it writes only with
``allow_control``, through the CLI's own functions (:mod:`service.dashboard.control`). Every store read
runs in a worker thread, never on the event loop.

Pages render the frontend's templates (``templates/*.html``) with ``{"page", "id", "control", "title"}``;
the data comes from the API. Errors are JSON ``{"error": ...}`` for the API (400 bad input naming the
field, 403 control refused, 404 unknown id, 409 the state does not allow it, 503 the store is
unreachable), the 404 page for pages.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import BadInput
from service.dashboard import queries
from service.dashboard.control import Control, parse_body
from service.dashboard.events import (
    Cursor,
    ListTopic,
    PandaTopic,
    StreamCounter,
    StreamState,
    StudyTopic,
    event_stream,
)
from service.dashboard.metrics import CONTENT_TYPE, render_metrics
from service.dashboard.readonly import read_only
from service.dashboard.responses import (
    JSON,
    Conflict,
    NotFound,
    bad_input,
    error,
    query_choice,
    query_int,
    query_text,
)
from service.dashboard.security import SecurityHeaders, request_token, resolve_token, token_matches
from service.errors import CaviarError, describe
from service.store import Store, StoreError, StudyState, open_store
from service.store.states import StudyKind

__all__ = ["create_app", "Dashboard", "TEMPLATES", "STATIC"]

log = logging.getLogger("caviar.dashboard")

#: The frontend's templates and static files (package data of ``service``).
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
#: Largest request body a state change may send.
MAX_BODY = 64 * 1024
_ORDERS = ("asc", "desc")


@dataclass
class Dashboard:
    """What the routes share (``app.state.dashboard``).

    Attributes:
        reader: the read-only store handle every read goes through.
        writer: the writing handle, only with ``allow_control`` (else None).
        token: the control token (None without control); ``token_generated`` when it was made at start.
    """

    reader: Store
    writer: Store | None
    allow_control: bool
    token: str | None
    token_generated: bool
    broker_url: str | None
    stale_after: float
    poll_seconds: float
    ping_seconds: float
    max_stream_seconds: float
    control: Control | None
    streams: StreamCounter

    def close(self) -> None:
        self.reader.dispose()
        if self.writer is not None:
            self.writer.dispose()


class CatchAll:
    """Innermost safety net: an unexpected error becomes a 500 ``{"error"}`` (logged with its traceback)
    that still passes through :class:`SecurityHeaders`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            log.exception("dashboard request %s failed", scope.get("path"))
            if started:
                raise
            await error(500, f"internal error: {describe(exc)}")(scope, receive, send)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/events", "/metrics", "/healthz"))


def create_app(
    db_url: str | None,
    *,
    allow_control: bool = False,
    token: str | None = None,
    broker_url: str | None = None,
    stale_after: float | None = None,
    poll_seconds: float = 1.0,
    ping_seconds: float = 15.0,
    max_stream_seconds: float = 1800.0,
    allowed_hosts: list[str] | None = None,
    runner_logs: Path | None = None,
) -> Starlette:
    """The dashboard on the store at ``db_url`` (None: ``CAVIAR_DATABASE_URL`` or the default).

    Args:
        allow_control: accept state changes (each with the token).
        token: the control token; None takes ``CAVIAR_DASHBOARD_TOKEN`` or generates one
            (``app.state.dashboard.token``, ``token_generated``).
        broker_url: the broker whose queue depth ``/api/workers`` and ``/metrics`` show (None: no queue).
        stale_after: seconds without a heartbeat after which a running trial is stale (default
            ``CAVIAR_STALE_AFTER``).
        poll_seconds, ping_seconds, max_stream_seconds: how often event streams check the store, send a
            ping comment, and how long one lasts before the client resumes it.
        allowed_hosts: Host headers accepted (guards against DNS rebinding); None accepts any.
        runner_logs: where detached panda runners log (default ``.caviar/panda``).

    Raises:
        BadInput: a SQLite file that does not exist (nothing is created), a bad URL or setting.
        StoreError: the database cannot be used.
    """
    from service.settings import Settings

    stale = float(stale_after) if stale_after is not None else Settings.from_env().stale_after
    writer = open_store(db_url, create=False)
    reader = read_only(writer)
    secret, generated = resolve_token(token) if allow_control else (None, False)
    if not allow_control:
        writer.dispose()
    dash = Dashboard(
        reader=reader, writer=writer if allow_control else None, allow_control=allow_control, token=secret,
        token_generated=generated, broker_url=broker_url or None, stale_after=stale,
        poll_seconds=poll_seconds, ping_seconds=ping_seconds, max_stream_seconds=max_stream_seconds,
        control=Control(writer, stale_after=stale, broker_url=broker_url or None,
                        logs=runner_logs or Path(".caviar") / "panda") if allow_control else None,
        streams=StreamCounter(),
    )
    templates = Jinja2Templates(directory=str(TEMPLATES))

    def page(request: Request, name: str, ident: str | None, title: str, status: int = 200) -> Response:
        context = {"page": name, "id": ident, "control": dash.allow_control, "title": title}
        return templates.TemplateResponse(request, f"{name}.html", context, status_code=status)

    def not_found_page(request: Request, message: str) -> Response:
        return page(request, "404", None, message, status=404)

    async def read(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    # --- pages -------------------------------------------------------------------------------------------

    async def studies_page(request: Request) -> Response:
        return page(request, "studies", None, "Studies")

    async def study_page(request: Request) -> Response:
        ident = request.path_params["id"]
        study = await read(queries.require_study, reader, ident)
        if study.kind == StudyKind.PANDA:
            return RedirectResponse(f"/panda/{ident}", status_code=307)
        return page(request, "study", ident, f"Study {ident}")

    async def trial_page(request: Request) -> Response:
        ident = request.path_params["id"]
        rows = await read(lambda: reader.run(lambda s: queries.trial_rows_by_id(s, [ident])))
        if not rows:
            raise NotFound(f"no trial {ident!r} in this database")
        return page(request, "trial", ident, f"Trial {ident}")

    async def panda_page(request: Request) -> Response:
        ident = request.path_params["id"]
        study = await read(queries.require_study, reader, ident)
        if study.kind != StudyKind.PANDA:
            raise NotFound(f"{ident!r} is a sweep, not a panda session")
        return page(request, "panda", ident, f"Panda session {ident}")

    async def workers_page(request: Request) -> Response:
        return page(request, "workers", None, "Workers")

    # --- the API -----------------------------------------------------------------------------------------

    async def api_studies(request: Request) -> Response:
        kind = query_choice(request, "kind", None, tuple(StudyKind))
        state = query_choice(request, "state", None, tuple(StudyState))
        q = query_text(request, "q")
        sort = query_choice(request, "sort", "created_at", queries.STUDY_SORTS) or "created_at"
        order = query_choice(request, "order", None, _ORDERS)
        rows = await read(
            queries.study_rows, reader, stale, kind=kind, state=state, q=q, sort=sort, order=order
        )
        return JSON({"studies": rows})

    async def api_study(request: Request) -> Response:
        return JSON(await read(queries.study_detail, reader, request.path_params["id"], stale))

    async def api_trials(request: Request) -> Response:
        offset = query_int(request, "offset", 0, 0, 10**9)
        limit = query_int(request, "limit", 50, 1, 1000)
        sort = query_choice(request, "sort", "objective", queries.TRIAL_SORTS) or "objective"
        order = query_choice(request, "order", None, _ORDERS)
        status = query_text(request, "status", 20)
        return JSON(await read(queries.trial_page, reader, request.path_params["id"], offset=offset,
                               limit=limit, sort=sort, order=order, status=status))

    async def api_points(request: Request) -> Response:
        limit = query_int(request, "limit", 5000, 2, 100_000)
        return JSON(await read(queries.points, reader, request.path_params["id"], limit))

    async def api_curves(request: Request) -> Response:
        which = query_choice(request, "which", "top", ("top", "running")) or "top"
        k = query_int(request, "k", 5, 1, 50)
        return JSON(await read(queries.curves, reader, request.path_params["id"], which, k))

    async def api_importance(request: Request) -> Response:
        return JSON(await read(queries.importance, reader, request.path_params["id"]))

    async def api_trial(request: Request) -> Response:
        return JSON(await read(queries.trial_detail, reader, request.path_params["id"], stale))

    async def api_panda(request: Request) -> Response:
        return JSON(await read(queries.panda_detail, reader, request.path_params["id"]))

    async def api_workers(request: Request) -> Response:
        return JSON(await read(queries.workers, reader, stale, dash.broker_url))

    # --- state changes -----------------------------------------------------------------------------------

    def action(name: str, allowed: tuple[str, ...]) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            if not dash.allow_control or dash.control is None or dash.token is None:
                return error(403, "control is off: start the dashboard with --allow-control to change "
                                  "studies")
            if not token_matches(dash.token, request_token(request)):
                return error(403, "a valid control token is required: send it as "
                                  "'Authorization: Bearer TOKEN' or 'X-Caviar-Token: TOKEN'")
            raw = b""
            async for chunk in request.stream():
                raw += chunk
                if len(raw) > MAX_BODY:
                    return error(413, f"the request body is larger than {MAX_BODY} bytes")
            body = parse_body(raw, allowed)
            fn = getattr(dash.control, name)
            return JSON(await read(fn, request.path_params["id"], body))

        return handler

    # --- events, metrics, health -------------------------------------------------------------------------

    def topic_for(study_id: str | None, session_id: str | None) -> Any:
        if study_id is not None and session_id is not None:
            raise BadInput("panda", session_id, "expected one of ?study=ID or ?panda=ID")
        ident = study_id or session_id
        if ident is None:
            return ListTopic(reader, stale)
        study = queries.require_study(reader, ident)
        if study.kind == StudyKind.PANDA:
            detail = queries.panda_detail(reader, ident)
            return PandaTopic(reader, ident, detail["trial"], lambda: queries.panda_detail(reader, ident))
        if session_id is not None:
            raise NotFound(f"{ident!r} is a sweep, not a panda session")
        return StudyTopic(reader, ident, stale)

    async def events(request: Request) -> Response:
        study_id = query_text(request, "study")
        session_id = query_text(request, "panda")
        max_seconds = query_int(request, "max_seconds", int(dash.max_stream_seconds), 1, 86_400)
        cursor = Cursor.decode(request.headers.get("last-event-id") or request.query_params.get("cursor"))
        topic = await read(topic_for, study_id, session_id)
        state = StreamState(cursor or Cursor(), fresh=cursor is None)
        stream = event_stream(
            request, topic, state, poll_seconds=dash.poll_seconds, ping_seconds=dash.ping_seconds,
            max_seconds=max_seconds, counter=dash.streams,
        )
        return StreamingResponse(stream, media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})

    async def metrics(request: Request) -> Response:
        queue = await read(queries.queue_status, reader, dash.broker_url)
        text = await read(render_metrics, reader, stale_after=stale, queue=queue, streams=dash.streams.open)
        return Response(text, media_type=CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        def ping() -> None:
            reader.run(lambda s: s.execute(select(1)).scalar_one())

        try:
            await read(ping)
        except Exception as exc:  # any failure to reach the store is what this route reports
            return JSON({"status": "error", "db": describe(exc)}, status_code=503)
        return JSON({"status": "ok", "db": "ok", "control": dash.allow_control})

    # --- errors ------------------------------------------------------------------------------------------

    async def on_not_found(request: Request, exc: Exception) -> Response:
        message = str(exc) if isinstance(exc, NotFound) else f"no page at {request.url.path}"
        if _is_api(request):
            return error(404, message)
        return not_found_page(request, message)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return await on_not_found(request, exc)
        return JSON({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    async def on_bad_input(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadInput)
        return bad_input(exc)

    async def on_conflict(request: Request, exc: Exception) -> Response:
        return error(409, str(exc))

    async def on_store(request: Request, exc: Exception) -> Response:
        return error(503, f"the study store is unavailable: {describe(exc)}")

    async def on_caviar(request: Request, exc: Exception) -> Response:
        return error(500, describe(exc))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            dash.close()

    sid = "{id}"
    routes = [
        Route("/", studies_page),
        Route(f"/studies/{sid}", study_page),
        Route(f"/trials/{sid}", trial_page),
        Route(f"/panda/{sid}", panda_page),
        Route("/workers", workers_page),
        Route("/api/studies", api_studies),
        Route(f"/api/studies/{sid}", api_study),
        Route(f"/api/studies/{sid}/trials", api_trials),
        Route(f"/api/studies/{sid}/points", api_points),
        Route(f"/api/studies/{sid}/curves", api_curves),
        Route(f"/api/studies/{sid}/importance", api_importance),
        Route(f"/api/studies/{sid}/cancel", action("cancel", ()), methods=["POST"]),
        Route(f"/api/trials/{sid}", api_trial),
        Route(f"/api/panda/{sid}", api_panda),
        Route(f"/api/panda/{sid}/set", action("set", ("values", "at_epoch")), methods=["POST"]),
        Route(f"/api/panda/{sid}/pause", action("pause", ("at_epoch",)), methods=["POST"]),
        Route(f"/api/panda/{sid}/resume", action("resume", ()), methods=["POST"]),
        Route(f"/api/panda/{sid}/stop", action("stop", ()), methods=["POST"]),
        Route(f"/api/panda/{sid}/rollback", action("rollback", ("to_epoch", "values")), methods=["POST"]),
        Route(f"/api/panda/{sid}/fork", action("fork", ("from_epoch", "values", "name")), methods=["POST"]),
        Route("/api/workers", api_workers),
        Route("/events", events),
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=str(STATIC), check_dir=False), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    middleware.append(Middleware(CatchAll))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            NotFound: on_not_found,
            HTTPException: on_http,
            BadInput: on_bad_input,
            Conflict: on_conflict,
            StoreError: on_store,
            CaviarError: on_caviar,
        },
        lifespan=lifespan,
    )
    app.state.dashboard = dash
    return app
