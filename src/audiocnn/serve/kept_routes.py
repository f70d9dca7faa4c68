"""The routes of kept results (`/v1/predict?keep=true`, see `results`): one upload classified once,
then read in any format and filter, re-run with other options, explained, or deleted by its id.

Reading a result renders what was kept, so it classifies nothing and takes no worker; a re-run or
an explanation takes a worker like any job, on the kept recordings, with no upload.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from audiocnn.inference.options import Format, OutputOptions
from audiocnn.inference.predictor import FilePrediction
from audiocnn.serve.api_docs import refusals
from audiocnn.serve.pool import Ticket
from audiocnn.serve.results import UnknownResult
from audiocnn.serve.routes import PREDICTED, Authorised, State, explained, predict_response, results_response
from audiocnn.serve.service import ExplainRequest, PredictAnswer, PredictRequest
from audiocnn.serve.state import Refused, checked
from audiocnn.serve.timelines import MIN_ZOOM_S, zoomed_timeline

router = APIRouter(prefix="/v1/results", dependencies=[Authorised])
ResultId = Annotated[str, Path(max_length=64, description="the id /v1/predict?keep=true answered")]
#: What a kept result's calls may answer besides 200.
KEPT_REFUSALS = refusals(401, 404, 422, 500, 503, 504)


class ResultRequest(OutputOptions):
    """How a kept result is written: `predict`'s output options, JSON by default."""

    format: Format = Field("json", description=OutputOptions.model_fields["format"].description)


class KeptExplainRequest(ExplainRequest):
    """A kept recording's explanation: /v1/explain's options, and which recording."""

    file: int = Field(0, ge=0, le=10_000, description="which recording of the result, from 0 in the order sent")


@router.get("/{result_id}", summary="A kept result, in any format and filter, without classifying again",
            response_model=None, responses={200: PREDICTED[200], **KEPT_REFUSALS})
async def read(state: State, result_id: ResultId, output: Annotated[ResultRequest, Query()]) -> Response:
    """The kept predictions written again: another format, labels per window or minimum confidence."""
    kept = state.kept(result_id)
    body, media_type = checked(lambda: state.service.render(kept.outcomes, output, kept.can_abstain, kept.pictures))
    if output.format == "json":
        body["result"] = kept.id
    return results_response(body, media_type, sum(isinstance(o, dict) for o in kept.outcomes), kept.id)


@router.post("/{result_id}/predict", summary="Classify the kept recordings again, with other options",
             response_model=None, responses={**PREDICTED, **KEPT_REFUSALS})
async def rerun(request: Request, state: State, result_id: ResultId,
                options: Annotated[PredictRequest, Query()]) -> Response:
    """The kept recordings classified with these options (windows, hop, threshold, noise reduction,
    part); the kept result becomes this one."""
    kept = state.kept(result_id)
    checked(lambda: state.service.check_request(options))
    state.admit()

    def job(ticket: Ticket) -> PredictAnswer:
        answer = checked(lambda: state.service.predict(kept.folder.uploads, options, ticket))
        if answer.ok:
            kept.outcomes, kept.can_abstain, kept.pictures = answer.outcomes, answer.can_abstain, answer.pictures
        return answer

    return predict_response(await state.in_worker(job, kept.folder, request), state.metrics, kept.id)


@router.post("/{result_id}/explain", summary="Explain one window of a kept recording", response_model=None,
             responses={200: {"description": "the explanation picture (PNG) or its arrays (NPZ)",
                              "content": {"image/png": {}, "application/octet-stream": {}}}, **KEPT_REFUSALS})
async def explain(state: State, result_id: ResultId, how: Annotated[KeptExplainRequest, Query()]) -> Response:
    """The explanation of one window of one kept recording, as /v1/explain gives it."""
    kept = state.kept(result_id)
    if how.file >= len(kept.folder.uploads):
        raise Refused(422, "bad_option", f"file: the result holds {len(kept.folder.uploads)} recording(s), "
                      f"numbered from 0 (got {how.file})")
    state.admit()
    return await explained(state, kept.folder, kept.folder.uploads[how.file],
                           ExplainRequest(**how.model_dump(exclude={"file"})))


class TimelineRequest(BaseModel):
    """Which stretch of which kept recording to draw, and how wide."""

    file: int = Field(0, ge=0, le=10_000, description="which recording of the result, from 0 in the order sent")
    start: float = Field(0.0, ge=0.0, le=7 * 86400.0, description="seconds: where the stretch begins")
    end: float = Field(ge=0.0, le=7 * 86400.0, description="seconds: where it ends (at least 1 s after start; "
                       "cut at the recording's end)")
    width: int = Field(960, ge=320, le=2400, description="the picture's width in pixels")


@router.get("/{result_id}/timeline", summary="A stretch of a kept recording's timeline, drawn in detail",
            responses=KEPT_REFUSALS)
async def timeline(state: State, result_id: ResultId, how: Annotated[TimelineRequest, Query()]) -> dict[str, Any]:
    """The labels over the spectrogram of `start`-`end` s of one kept recording (the page's zoom): that
    stretch decoded again, nothing classified again. The picture (PNG, base64) and where its time axis lies."""
    kept = state.kept(result_id)
    outcome = kept.outcomes[how.file] if how.file < len(kept.outcomes) else None
    if not isinstance(outcome, FilePrediction):
        raise Refused(422, "bad_option", f"file: the result holds no classified recording {how.file} "
                      f"({len(kept.outcomes)} sent, numbered from 0)")
    if how.end - how.start < MIN_ZOOM_S:
        raise Refused(422, "bad_option", f"end: at least {MIN_ZOOM_S:g} s after start (got {how.start:g}-{how.end:g})")
    state.admit()
    upload, rate = kept.folder.uploads[how.file], state.service.bundle.sample_rate
    # the kept folder is lent to the job: its end does not delete it (the store does, later)
    return await state.in_worker(lambda ticket: checked(lambda: zoomed_timeline(
        outcome, str(upload.path), rate, how.start, how.end, how.width, ticket), upload.name), kept.folder)


@router.delete("/{result_id}", summary="Delete a kept result and its recordings", status_code=204,
               response_class=Response, responses=refusals(401, 404, 422))
async def forget(state: State, result_id: ResultId) -> Response:
    """The kept result and its recordings deleted now (else they go after --keep-minutes unused)."""
    try:
        state.results.forget(result_id)
    except UnknownResult:
        state.kept(result_id)  # its 404
    return Response(status_code=204)
