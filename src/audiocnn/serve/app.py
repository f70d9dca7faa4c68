"""The FastAPI application: its guards, its errors as one-line JSON, its lifespan; the routes are in `routes`.

Every refusal is a 4xx with `{"error": "<the one line the CLI prints>", "file": <name or null>}`;
a multi-file request in which some files are bad answers 200 with the good files' results and
the bad ones under `failed`, as `audiocnn predict --format json` does. A failure nobody foresaw
is a 500 with one line naming the file (`internal error (Type)`), its message and traceback in
the server's log, and the server goes on. Nothing of the server (paths, tracebacks) is ever in
an answer.

A request is guarded in this order: its Host (`guards.HostCheck`), its body's size, pace and
room (`guards.BodyLimit`), the API key, then its options; only once its upload has fully
arrived does it take a worker slot (`ServerState.uploaded`), and its job stops at
`--timeout` (`pool`). When the server stops, running jobs are stopped within seconds and the
server's upload folder is removed.
"""

from __future__ import annotations

import logging
import time
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiocnn import __version__
from audiocnn.errors import OptionError, item_failure, public_failure
from audiocnn.serve import guards, kept_routes, review_routes
from audiocnn.serve.guards import RETRY_AFTER_S, BodyLimit, HostCheck
from audiocnn.serve.metrics import ServerMetrics
from audiocnn.serve.multipart import BadForm
from audiocnn.serve.routes import router
from audiocnn.serve.service import ModelService
from audiocnn.serve.settings import ServeSettings
from audiocnn.serve.state import Refused, ServerState
from audiocnn.validation import error_line

log = logging.getLogger("audiocnn.serve")


def create_app(settings: ServeSettings | None = None, *, service: ModelService | None = None) -> FastAPI:
    """The app for `settings` (the model is loaded here, once, unless a loaded `service` is given)."""
    settings = settings or ServeSettings()
    state = ServerState(settings, service or ModelService(settings))
    # /docs: Swagger UI from files in the fastapi-offline package, not a CDN, so it works offline. No ReDoc:
    # its page fetches its maker's logo from their CDN, whatever the JavaScript's origin.
    app = FastAPIOffline(title="audiocnn", version=__version__, lifespan=state.lifespan, static_url="/docs-assets",
                         redoc_url=None,
                         description=f"Classify and explain recordings with the model `{state.service.path.name}`. "
                         "The same results as the `audiocnn predict` and `audiocnn explain` commands. Every "
                         "refusal is one JSON line: `{\"error\": \"...\", \"file\": ...}`.")
    app.state.model_name = state.service.path.name
    app.state.server = state
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes, seconds=settings.upload_timeout_s,
                       budget=state.budget)
    _install_error_handlers(app, state.metrics)
    app.add_middleware(HostCheck, allowed=settings.allowed_hosts)  # added last: the first to run
    app.include_router(router)
    app.include_router(kept_routes.router)
    app.include_router(review_routes.router)
    page = resources.files("audiocnn.serve") / "page"

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse((page / "index.html").read_text(encoding="utf-8"))

    app.mount("/page", StaticFiles(directory=str(page)), name="page")
    return app


def _install_error_handlers(app: FastAPI, metrics: ServerMetrics) -> None:
    """Every refusal as one JSON line, counted by kind; and the latency and status of every request."""
    def refusal(status: int, kind: str, message: str, file: str | None = None,
                headers: dict[str, str] | None = None) -> JSONResponse:
        metrics.errors.labels(kind).inc()
        return JSONResponse({"error": message, "file": file}, status_code=status, headers=headers)

    closing = {"Connection": "close"}  # the rest of the body is not read: the connection cannot be reused
    simple: dict[type[Exception], tuple[int, str, dict[str, str] | None]] = {
        guards.UploadTooLarge: (413, "too_large", closing), guards.UploadTooSlow: (408, "too_slow", closing),
        guards.NoRoom: (503, "busy", {**closing, "Retry-After": str(RETRY_AFTER_S)}), BadForm: (422, "bad_option", None),
        ClientDisconnect: (400, "disconnected", None)}
    for kind_of_error, (status, kind, headers) in simple.items():
        def handler(_: Request, err: Exception, status: int = status, kind: str = kind,
                    headers: dict[str, str] | None = headers) -> JSONResponse:
            return refusal(status, kind, str(err) or "the client left before its request was sent", headers=headers)
        app.add_exception_handler(kind_of_error, handler)

    @app.exception_handler(Refused)
    async def _refused(_: Request, err: Refused) -> JSONResponse:
        return refusal(err.status, err.kind, err.message, err.file, err.headers)

    @app.exception_handler(OptionError)  # a request's options, checked as their model is built
    async def _option(_: Request, err: OptionError) -> JSONResponse:
        return refusal(422, "bad_option", str(err))

    @app.exception_handler(RequestValidationError)
    async def _bad_option(_: Request, err: RequestValidationError) -> JSONResponse:
        first = dict(err.errors()[0])
        first["loc"] = tuple(first.get("loc", ()))[1:] or ("request",)  # ("query", "top_k") names `top_k`
        return refusal(422, "bad_option", error_line(first))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return refusal(err.status_code, "http", str(err.detail), headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception) -> JSONResponse:
        log.error("%s", item_failure(request.url.path, err))
        return refusal(500, "internal", public_failure(request.url.path, err))

    app.add_middleware(Measured, metrics=metrics)


class Measured:
    """ASGI middleware: each request's status and latency by route (plain ASGI, not BaseHTTPMiddleware,
    whose extra task kept a request cancelled at shutdown from answering)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
