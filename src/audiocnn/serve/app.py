"""The FastAPI application: routes, errors as one-line JSON, limits, the API key, metrics.

Every refusal is a 4xx with `{"error": "<the one line the CLI prints>", "file": <name or null>}`;
a multi-file request in which some files are bad answers 200 with the good files' results and
the bad ones under `failed`, as `audiocnn predict --format json` does. Nothing of the server
(paths, tracebacks) is ever in an answer.
"""

from __future__ import annotations

import hmac
import logging
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from audiocnn import __version__
from audiocnn.errors import AudiocnnError
from audiocnn.inference.formats import FORMATS
from audiocnn.serve.metrics import ServerMetrics
from audiocnn.serve.pool import PoolFull, WorkerPool, WorkTimeout
from audiocnn.serve.service import ModelService, PredictOptions, error_kind
from audiocnn.serve.settings import ServeSettings
from audiocnn.serve.uploads import BodyLimit, UploadFolder, UploadTooLarge

log = logging.getLogger("audiocnn.serve")
#: Seconds a client refused with 503 is told to wait.
RETRY_AFTER_S = 2


class Refused(Exception):
    """A request answered with a 4xx/5xx status and a one-line JSON error."""

    def __init__(self, status: int, kind: str, message: str, file: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.file, self.headers = status, kind, message, file, headers


def create_app(settings: ServeSettings | None = None, *, service: ModelService | None = None) -> FastAPI:
    """The app for `settings` (the model is loaded here, once, unless a loaded `service` is given)."""
    settings = settings or ServeSettings()
    service = service or ModelService(settings)
    pool = WorkerPool(settings.concurrency, settings.queue)
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # noqa: ANN202
        yield
        pool.shutdown()

    app = FastAPI(title="audiocnn", version=__version__, lifespan=lifespan,
                  description=f"Classify and explain recordings with the model `{service.path.name}`. "
                  "The same results as the `audiocnn predict` and `audiocnn explain` commands.")
    app.state.model_name = service.path.name
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)

    def refusal(status: int, kind: str, message: str, file: str | None = None,
                headers: dict[str, str] | None = None) -> JSONResponse:
        metrics.errors.labels(kind).inc()
        return JSONResponse({"error": message, "file": file}, status_code=status, headers=headers)

    @app.exception_handler(Refused)
    async def _refused(_: Request, err: Refused) -> JSONResponse:
        return refusal(err.status, err.kind, err.message, err.file, err.headers)

    @app.exception_handler(UploadTooLarge)
    async def _too_large(_: Request, err: UploadTooLarge) -> JSONResponse:
        return refusal(413, "too_large", str(err), headers={"Connection": "close"})

    @app.exception_handler(RequestValidationError)
    async def _bad_option(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return refusal(422, "bad_option", f"{where}: {first.get('msg', 'not valid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return refusal(err.status_code, "http", str(err.detail), headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(_: Request, err: Exception) -> JSONResponse:
        log.exception("internal error")
        return refusal(500, "internal", f"internal error ({type(err).__name__}); the server's log has the details")

    @app.middleware("http")
    async def _measure(request: Request, call_next):  # noqa: ANN202
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "other")
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    def authorised(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise Refused(401, "unauthorised", "this server needs its API key: send it as X-API-Key "
                          "(or Authorization: Bearer KEY)", headers={"WWW-Authenticate": "Bearer"})

    async def received(request: Request, folder: UploadFolder, name: str | None) -> None:
        """The request's audio into `folder`: every file part of a multipart form, else the raw body."""
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            async with request.form(max_files=settings.max_files, max_fields=100) as form:
                parts = [value for _, value in form.multi_items() if not isinstance(value, str)]
                for part in parts:
                    await folder.add_part(part)
        else:
            upload = await folder.add_stream(name, request.stream())
            if upload.path.stat().st_size == 0:
                folder.uploads.clear()
        if not folder.uploads:  # an empty file part is a bad file (below); no part or no body is a bad request
            raise Refused(422, "bad_audio", "the request holds no audio: send files as multipart/form-data "
                          "(field `file`) or the recording itself as the body", file=name)

    async def uploaded(request: Request, name: str | None, one_file: bool = False) -> UploadFolder:
        """A worker slot taken and the request's audio in a new folder; on any failure both are given back."""
        admitted()
        folder = UploadFolder()
        try:
            await received(request, folder, name)
            if one_file and len(folder.uploads) != 1:
                raise Refused(422, "bad_option", f"explain takes one file (got {len(folder.uploads)})")
        except BaseException:
            pool.release()
            folder.close()
            raise
        return folder

    async def in_worker(job, folder: UploadFolder):  # noqa: ANN001, ANN202
        """`job` on the pool (a slot taken already); the folder is deleted when the job ends."""
        def owned():  # noqa: ANN202
            try:
                return job()
            finally:
                folder.close()

        metrics.busy.set(pool.admitted)
        try:
            return await pool.run(owned, settings.timeout_s)
        except WorkTimeout:
            raise Refused(504, "timeout", f"the request took longer than {settings.timeout_s:g} s "
                          "(--timeout); try a shorter recording") from None

    def admitted() -> None:
        try:
            pool.admit()
        except PoolFull:
            raise Refused(503, "busy", f"all {settings.concurrency} workers are busy and {settings.queue} requests "
                          "wait already; try again shortly", headers={"Retry-After": str(RETRY_AFTER_S)}) from None

    @app.post("/v1/predict", summary="Classify recordings", response_model=None)
    async def predict(
        request: Request,
        window: Annotated[float | None, Query(gt=0, le=600, description="window length in s (default: the model's)")] = None,
        hop: Annotated[float | None, Query(gt=0, le=600, description="s between window starts (default: half a window)")] = None,
        top_k: Annotated[int, Query(ge=1, le=1000, description="labels per window")] = 3,
        min_confidence: Annotated[float, Query(ge=0, le=1, description="drop labels below this probability")] = 0.0,
        unknown_below: Annotated[float | None, Query(ge=0, le=1, description="`unknown` below this top probability "
                                                     "(default: the model's threshold; 0: off)")] = None,
        denoise: Annotated[bool, Query(description="spectral-gating noise reduction first")] = False,
        denoise_strength: Annotated[float | None, Query(ge=0, le=1, description="share of the background removed "
                                                        "(default 0.5; implies denoise)")] = None,
        format: Annotated[str, Query(pattern=f"^({'|'.join(FORMATS)})$", description=", ".join(FORMATS) + " (audacity: "
                                     "one recording per request)")] = "json",
        merge_consecutive: Annotated[bool, Query(description="raven, audacity, kaleidoscope: join a label's "
                                                 "detections in consecutive windows")] = False,
        timeline: Annotated[bool, Query(description="json: add each file's timeline picture (PNG, base64)")] = False,
        name: Annotated[str | None, Query(max_length=255, description="a raw body's file name, for the results")] = None,
    ) -> Response:
        from audiocnn.inference.denoise import DEFAULT_STRENGTH

        authorised(request)
        strength = denoise_strength if denoise_strength is not None else DEFAULT_STRENGTH if denoise else 0.0
        options = PredictOptions(window, hop, top_k, min_confidence, unknown_below, strength, format, timeline,
                                 merge_consecutive)
        _checked(options.check)
        folder = await uploaded(request, name)
        answer = await in_worker(lambda: _checked(lambda: service.predict(folder.uploads, options)), folder)
        metrics.audio_seconds.inc(answer.audio_seconds)
        metrics.files.labels("classified").inc(answer.ok)
        for failure in answer.failed:
            metrics.files.labels("refused").inc()
            metrics.errors.labels(failure["kind"]).inc()
        if answer.ok == 0:  # nothing to show: the first file's problem is the answer
            first = answer.failed[0]
            return JSONResponse({"error": first["error"], "file": first["path"], "failed": answer.failed},
                                status_code=422)
        headers = {"X-Audiocnn-Failed": str(len(answer.failed))}
        if format == "json":
            return JSONResponse(answer.body, headers=headers)
        return Response(answer.body, media_type=answer.media_type, headers=headers)

    @app.post("/v1/explain", summary="Explain one window of a recording", response_model=None)
    async def explain(
        request: Request,
        method: Annotated[str, Query(pattern="^(ig|gradcam|both)$", description="ig, gradcam or both")] = "both",
        target: Annotated[str | None, Query(max_length=200, description="explain this label (default: the top one)")] = None,
        start: Annotated[float | None, Query(ge=0, description="the window starting here, s (default: the most "
                                                  "confident one)")] = None,
        steps: Annotated[int, Query(ge=2, le=256, description="integrated-gradients steps")] = 32,
        baseline: Annotated[str, Query(pattern="^(mean|silence)$", description="IG reference: mean or silence")] = "mean",
        output: Annotated[str, Query(pattern="^(png|npz)$", description="png (the picture) or npz (the arrays)")] = "png",
        name: Annotated[str | None, Query(max_length=255, description="a raw body's file name")] = None,
    ) -> Response:
        authorised(request)
        folder = await uploaded(request, name, one_file=True)
        upload = folder.uploads[0]

        def job():  # noqa: ANN202
            return _checked(lambda: service.explain(upload, method=method, target=target, start=start, steps=steps,
                                                    baseline=baseline, output=output), upload.name)

        body, media_type, headers = await in_worker(job, folder)
        return Response(body, media_type=media_type, headers=headers)

    @app.get("/v1/model", summary="The model: labels, window, recipe, metrics, model card")
    async def model(request: Request) -> dict[str, Any]:
        authorised(request)
        return service.describe()

    @app.get("/healthz", summary="Alive and the model loaded")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": service.path.name, "jobs": pool.admitted}

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus(request: Request) -> Response:
        authorised(request)
        metrics.busy.set(pool.admitted)
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    page = resources.files("audiocnn.serve") / "page"

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse((page / "index.html").read_text(encoding="utf-8"))

    app.mount("/page", StaticFiles(directory=str(page)), name="page")
    return app


def _checked(call, file: str | None = None):  # noqa: ANN001, ANN202
    """`call()`, its AudiocnnErrors turned into 422 refusals naming the file."""
    try:
        return call()
    except AudiocnnError as err:
        raise Refused(422, error_kind(err), str(err), file) from None
