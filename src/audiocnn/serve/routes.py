"""The API's routes: /v1/predict, /v1/explain, /v1/model, /healthz and /metrics.

The routes are the module's `router`; what they share is the app's `ServerState`
(`app.state.server`), which they receive as a dependency, as they do the API key check and the
request's uploads. FastAPI resolves dependencies in order, so a request is refused for its key
before its options are read, and for its options before its upload is read; the upload is read
before a worker slot is taken; the job runs with a ticket that stops it at `--timeout`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from audiocnn.errors import AudiocnnError
from audiocnn.serve.api_docs import API_KEY_HEADER, BEARER, ONE_UPLOAD, UPLOADS, refusals
from audiocnn.serve.metrics import ServerMetrics
from audiocnn.serve.pool import Cancelled, Ticket
from audiocnn.serve.results import KeptResult
from audiocnn.serve.service import MEDIA_TYPES, ExplainRequest, PredictAnswer, PredictRequest, failure_line
from audiocnn.serve.state import Refused, ServerState, checked
from audiocnn.serve.uploads import Upload, UploadFolder


def server_state(request: Request) -> ServerState:
    """The state of the server answering this request (set on the app by `create_app`)."""
    return request.app.state.server


State = Annotated[ServerState, Depends(server_state)]


def authorised(request: Request, state: State, _key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
               _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None) -> None:
    """Refuse (401) a request without this server's API key, when it has one. (The two security
    parameters only declare the headers in the OpenAPI document, for Swagger UI's "Authorize";
    `ServerState.authorised` reads them.)"""
    state.authorised(request)


async def predict_uploads(request: Request, state: State, options: Annotated[PredictRequest, Query()]
                          ) -> AsyncIterator[UploadFolder]:
    """The request's recordings, once its window options suit the model; deleted when the request ends."""
    checked(lambda: state.service.check_request(options))
    folder = await state.uploaded(request, options.name)
    try:
        yield folder
    finally:
        folder.close()


async def explain_upload(request: Request, state: State,
                         name: Annotated[str | None, Query(max_length=255, description="a raw body's file name")] = None,
                         ) -> AsyncIterator[UploadFolder]:
    """The request's one recording; deleted when the request ends."""
    folder = await state.uploaded(request, name, one_file=True)
    try:
        yield folder
    finally:
        folder.close()


router = APIRouter()
Authorised = Depends(authorised)


#: What any route that takes an upload may answer besides 200.
UPLOAD_REFUSALS = refusals(400, 401, 408, 413, 422, 500, 503, 504)


#: /v1/predict's answer when it succeeds (also that of a kept result's re-run).
PREDICTED = {200: {"description": "the results, in the format asked for (JSON by default; csv, raven, audacity, "
                   "...); files that failed are listed under `failed` and counted in X-Audiocnn-Failed; with "
                   "keep=true the result's id is in X-Audiocnn-Result (and `result` in JSON)"}}


@router.post("/v1/predict", summary="Classify recordings", response_model=None, dependencies=[Authorised],
             openapi_extra=UPLOADS, responses={**PREDICTED, **UPLOAD_REFUSALS})
async def predict(request: Request, state: State, options: Annotated[PredictRequest, Query()],
                  folder: Annotated[UploadFolder, Depends(predict_uploads)]) -> Response:
    """Every recording of the request classified, in the format asked for (JSON by default)."""
    def job(ticket: Ticket) -> tuple[PredictAnswer, KeptResult | None]:
        answer = checked(lambda: state.service.predict(folder.uploads, options, ticket))
        kept = (state.results.keep(folder, answer.outcomes, answer.can_abstain, answer.pictures)
                if options.keep and answer.ok else None)
        return answer, kept

    answer, kept = await state.in_worker(job, folder, request)
    return predict_response(answer, state.metrics, kept.id if kept else None if options.keep else "")


def predict_response(answer: PredictAnswer, metrics: ServerMetrics, result_id: str | None = "") -> Response:
    """The answer to /v1/predict, counted in the metrics: the results (failed files listed beside
    them), or, when no file succeeded, the first file's problem as the error. `result_id`: the kept
    result's id, None when it was asked for and not kept (too large), "" when not asked for."""
    metrics.audio_seconds.inc(answer.audio_seconds)
    metrics.files.labels("classified").inc(answer.ok)
    for failure in answer.failed:
        metrics.files.labels("refused").inc()
        metrics.errors.labels(failure["kind"]).inc()
    if answer.ok == 0:  # nothing to show: the first file's problem is the answer
        first = answer.failed[0]
        return JSONResponse({"error": first["error"], "file": first["path"], "failed": answer.failed},
                            status_code=500 if first["kind"] == "internal" else 422)
    if result_id != "" and answer.media_type == MEDIA_TYPES["json"]:
        answer.body["result"] = result_id
    return results_response(answer.body, answer.media_type, len(answer.failed), result_id)


def results_response(body: Any, media_type: str, failed: int, result_id: str | None = "") -> Response:
    """Results in their format, the failed files counted in X-Audiocnn-Failed (and the kept id, if any)."""
    headers = {"X-Audiocnn-Failed": str(failed), **({"X-Audiocnn-Result": result_id} if result_id else {})}
    if media_type == MEDIA_TYPES["json"]:
        return JSONResponse(body, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.post("/v1/explain", summary="Explain one window of a recording", response_model=None,
             dependencies=[Authorised], openapi_extra=ONE_UPLOAD,
             responses={200: {"description": "the explanation picture (PNG) or its arrays (NPZ)",
                              "content": {"image/png": {}, "application/octet-stream": {}}}, **UPLOAD_REFUSALS})
async def explain(state: State, folder: Annotated[UploadFolder, Depends(explain_upload)],
                  how: Annotated[ExplainRequest, Query()]) -> Response:
    """The explanation picture (or arrays) of one window of the request's recording."""
    return await explained(state, folder, folder.uploads[0], how)


async def explained(state: ServerState, folder: UploadFolder, upload: Upload, how: ExplainRequest) -> Response:
    """One upload's explanation, made by a worker (a slot taken already): the picture or the arrays."""
    def job(ticket: Ticket):  # noqa: ANN202
        try:
            return state.service.explain(upload, ticket, **how.model_dump())
        except (AudiocnnError, Cancelled):
            raise
        except Exception as err:  # noqa: BLE001 - a surprise is this upload's one line, the server goes on
            raise Refused(500, "internal", failure_line(err, upload), upload.name) from None

    body, media_type, headers = await state.in_worker(lambda ticket: checked(lambda: job(ticket), upload.name), folder)
    return Response(body, media_type=media_type, headers=headers)


@router.get("/v1/model", summary="The model: labels, window, recipe, metrics, model card", dependencies=[Authorised],
            responses=refusals(401))
async def model(state: State) -> dict[str, Any]:
    """What a client needs to know about the model."""
    return state.service.describe()


@router.get("/healthz", summary="Alive and the model loaded")
async def healthz(state: State) -> dict[str, Any]:
    """Alive (no key needed: a load balancer asks)."""
    return {"status": "ok", "model": state.service.path.name, "jobs": state.pool.admitted}


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse, dependencies=[Authorised],
            responses=refusals(401))
async def prometheus(state: State) -> Response:
    """The server's counters in Prometheus's text format."""
    state.metrics.busy.set(state.pool.admitted)
    return Response(state.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")
