"""The API's routes: /v1/predict, /v1/explain, /v1/model, /healthz and /metrics, over a `ServerState`.

Options are checked (the library's own checks and messages) before the upload is read; the upload
is read before a worker slot is taken; the job runs with a ticket that stops it at `--timeout`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from audiocnn.errors import AudiocnnError
from audiocnn.explain.attributions import STEPS_RANGE
from audiocnn.serve.metrics import ServerMetrics
from audiocnn.serve.pool import Cancelled, Ticket
from audiocnn.serve.service import MEDIA_TYPES, PredictAnswer, PredictRequest, failure_line
from audiocnn.serve.state import Refused, ServerState, checked


def api_router(state: ServerState) -> APIRouter:
    """The routes of one server."""
    router = APIRouter()
    for add in (_add_predict, _add_explain, _add_status):
        add(router, state)
    return router


def _add_predict(router: APIRouter, state: ServerState) -> None:
    service = state.service

    @router.post("/v1/predict", summary="Classify recordings", response_model=None)
    async def predict(request: Request, options: Annotated[PredictRequest, Query()]) -> Response:
        state.authorised(request)
        checked(lambda: service.check_windows(options))
        folder = await state.uploaded(request, options.name)
        answer = await state.in_worker(lambda ticket: checked(lambda: service.predict(folder.uploads, options, ticket)),
                                       folder)
        return _predict_response(answer, state.metrics)


def _predict_response(answer: PredictAnswer, metrics: ServerMetrics) -> Response:
    """The answer to /v1/predict, counted in the metrics: the results (failed files listed beside
    them), or, when no file succeeded, the first file's problem as the error."""
    metrics.audio_seconds.inc(answer.audio_seconds)
    metrics.files.labels("classified").inc(answer.ok)
    for failure in answer.failed:
        metrics.files.labels("refused").inc()
        metrics.errors.labels(failure["kind"]).inc()
    if answer.ok == 0:  # nothing to show: the first file's problem is the answer
        first = answer.failed[0]
        return JSONResponse({"error": first["error"], "file": first["path"], "failed": answer.failed},
                            status_code=500 if first["kind"] == "internal" else 422)
    headers = {"X-Audiocnn-Failed": str(len(answer.failed))}
    if answer.media_type == MEDIA_TYPES["json"]:
        return JSONResponse(answer.body, headers=headers)
    return Response(answer.body, media_type=answer.media_type, headers=headers)


def _add_explain(router: APIRouter, state: ServerState) -> None:
    service = state.service

    @router.post("/v1/explain", summary="Explain one window of a recording", response_model=None)
    async def explain(
        request: Request,
        method: Annotated[Literal["ig", "gradcam", "both"], Query(description="ig, gradcam or both")] = "both",
        target: Annotated[str | None, Query(max_length=200, description="explain this label (default: the top one)")] = None,
        start: Annotated[float | None, Query(description="the window starting here, s (default: the most "
                                             "confident one)")] = None,
        steps: Annotated[int, Query(description="integrated-gradients steps, " + "-".join(map(str, STEPS_RANGE)))] = 32,
        baseline: Annotated[Literal["mean", "silence"], Query(description="IG reference: mean or silence")] = "mean",
        output: Annotated[Literal["png", "npz"], Query(description="png (the picture) or npz (the arrays)")] = "png",
        name: Annotated[str | None, Query(max_length=255, description="a raw body's file name")] = None,
    ) -> Response:
        state.authorised(request)
        folder = await state.uploaded(request, name, one_file=True)
        upload = folder.uploads[0]

        def job(ticket: Ticket):  # noqa: ANN202
            try:
                return service.explain(upload, ticket, method=method, target=target, start=start, steps=steps,
                                       baseline=baseline, output=output)
            except (AudiocnnError, Cancelled):
                raise
            except Exception as err:  # noqa: BLE001 - a surprise is this upload's one line, the server goes on
                raise Refused(500, "internal", failure_line(err, upload), upload.name) from None

        body, media_type, headers = await state.in_worker(lambda ticket: checked(lambda: job(ticket), upload.name),
                                                          folder)
        return Response(body, media_type=media_type, headers=headers)


def _add_status(router: APIRouter, state: ServerState) -> None:
    service, metrics = state.service, state.metrics

    @router.get("/v1/model", summary="The model: labels, window, recipe, metrics, model card")
    async def model(request: Request) -> dict[str, Any]:
        state.authorised(request)
        return service.describe()

    @router.get("/healthz", summary="Alive and the model loaded")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": service.path.name, "jobs": state.pool.admitted}

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus(request: Request) -> Response:
        state.authorised(request)
        metrics.busy.set(state.pool.admitted)
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")
