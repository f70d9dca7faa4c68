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

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiocnn import __version__
from audiocnn.errors import AudiocnnError, item_failure, public_failure
from audiocnn.serve import guards
from audiocnn.serve.guards import RETRY_AFTER_S, BodyLimit, HostCheck, UploadBudget
from audiocnn.serve.metrics import ServerMetrics
from audiocnn.serve.multipart import BadForm, read_form
from audiocnn.serve.pool import PoolFull, Ticket, WorkerPool, WorkTimeout
from audiocnn.serve.service import ModelService, error_kind
from audiocnn.serve.settings import ServeSettings
from audiocnn.serve.uploads import ServerFolder, UploadFolder

log = logging.getLogger("audiocnn.serve")
T = TypeVar("T")


class Refused(Exception):
    """A request answered with a 4xx/5xx status and a one-line JSON error."""

    def __init__(self, status: int, kind: str, message: str, file: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.file, self.headers = status, kind, message, file, headers


class ServerState:
    """What the routes share: the settings, the model, the pool, the metrics and the upload folder."""

    def __init__(self, settings: ServeSettings, service: ModelService) -> None:
        self.settings, self.service = settings, service
        self.pool = WorkerPool(settings.concurrency, settings.queue)
        self.metrics = ServerMetrics()
        self.budget = UploadBudget(settings.upload_budget_bytes)  # bytes of uploads held at once
        self.folder: ServerFolder | None = None  # made when the server starts (lifespan)

    @asynccontextmanager
    async def lifespan(self, _: FastAPI):  # noqa: ANN201
        """The upload folder exists while the server runs; at the end, jobs are stopped and it is removed."""
        self.folder = ServerFolder()
        try:
            yield
        finally:
            await asyncio.to_thread(self.pool.shutdown)
            self.folder.close()

    def authorised(self, request: Request) -> None:
        key = self.settings.api_key
        if key is None:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise Refused(401, "unauthorised", "this server needs its API key: send it as X-API-Key "
                          "(or Authorization: Bearer KEY)", headers={"WWW-Authenticate": "Bearer"})

    async def uploaded(self, request: Request, name: str | None, one_file: bool = False) -> UploadFolder:
        """The request's audio in a new folder, then a worker slot: a slow upload never holds a worker.
        On any failure the folder is deleted."""
        assert self.folder is not None, "the app's lifespan has not started"
        folder = self.folder.request()
        try:
            await self._receive(request, folder, name)
            if one_file and len(folder.uploads) != 1:
                raise Refused(422, "bad_option", f"explain takes one file (got {len(folder.uploads)})")
            self._admit()
        except BaseException:
            folder.close()
            raise
        return folder

    async def _receive(self, request: Request, folder: UploadFolder, name: str | None) -> None:
        """Every file part of a multipart form into `folder`, else the raw body as one file."""
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            await read_form(content_type, request.stream(), folder, self.settings.max_files)
        else:
            upload = await folder.add_stream(name, request.stream())
            if upload.path.stat().st_size == 0:
                folder.uploads.clear()
        if not folder.uploads:  # an empty file part is a bad file (later); no part or no body is a bad request
            raise Refused(422, "bad_audio", "the request holds no audio: send files as multipart/form-data "
                          "(field `file`) or the recording itself as the body", file=name)

    def _admit(self) -> None:
        try:
            self.pool.admit()
        except PoolFull:
            raise Refused(503, "busy", f"all {self.settings.concurrency} workers are busy and {self.settings.queue} "
                          "requests wait already; try again shortly",
                          headers={"Retry-After": str(RETRY_AFTER_S)}) from None

    async def in_worker(self, job: Callable[[Ticket], T], folder: UploadFolder) -> T:
        """`job(ticket)` on the pool (a slot taken already); the folder is deleted when the job ends, or
        when the request ends if the job never started."""
        def owned(ticket: Ticket) -> T:
            try:
                return job(ticket)
            finally:
                folder.close()

        self.metrics.busy.set(self.pool.admitted)
        try:
            return await self.pool.run(owned, self.settings.timeout_s)
        except WorkTimeout:
            raise Refused(504, "timeout", f"the request took longer than {self.settings.timeout_s:g} s "
                          "(--timeout) and was stopped; try a shorter recording") from None
        except asyncio.CancelledError:  # the server is stopping (its grace period is over): say so, in JSON
            raise Refused(503, "stopping", "the server is stopping; this request's job was stopped",
                          headers={"Retry-After": str(RETRY_AFTER_S), "Connection": "close"}) from None
        finally:
            folder.close()


def create_app(settings: ServeSettings | None = None, *, service: ModelService | None = None) -> FastAPI:
    """The app for `settings` (the model is loaded here, once, unless a loaded `service` is given)."""
    from audiocnn.serve.routes import api_router

    settings = settings or ServeSettings()
    state = ServerState(settings, service or ModelService(settings))
    app = FastAPI(title="audiocnn", version=__version__, lifespan=state.lifespan,
                  description=f"Classify and explain recordings with the model `{state.service.path.name}`. "
                  "The same results as the `audiocnn predict` and `audiocnn explain` commands.")
    app.state.model_name = state.service.path.name
    app.state.server = state
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes, seconds=settings.upload_timeout_s,
                       budget=state.budget)
    _install_error_handlers(app, state.metrics)
    app.add_middleware(HostCheck, allowed=settings.allowed_hosts)  # added last: the first to run
    app.include_router(api_router(state))
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

    @app.exception_handler(RequestValidationError)
    async def _bad_option(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return refusal(422, "bad_option", f"{where}: {first.get('msg', 'not valid')}")

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


def checked(call: Callable[[], T], file: str | None = None) -> T:
    """`call()`, its AudiocnnErrors turned into 422 refusals naming the file."""
    try:
        return call()
    except AudiocnnError as err:
        raise Refused(422, error_kind(err), str(err), file) from None
