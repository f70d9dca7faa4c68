"""The routes of reviews (`reviews`): a queue of a kept result's detections to listen to, a verdict on
each (accept, reject, relabel), saved at once, and the reviewed set exported as Raven selection
tables beside their recordings, the `annotations` dataset `audiocnn train` reads.

Those that only read or write review.json run in FastAPI's thread pool (plain `def`), off the event
loop. Those that decode or write audio (a snippet, the export) take a worker like any job, within
`--timeout`. Nothing is classified: the queue is drawn from the kept predictions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from audiocnn.inference.detections import detections
from audiocnn.inference.predictor import FilePrediction
from audiocnn.inference.review_queue import Candidate, QueueKind, review_queue
from audiocnn.serve.api_docs import refusals
from audiocnn.serve.kept_routes import ResultId
from audiocnn.serve.pool import Ticket
from audiocnn.serve.reviews import REJECTED_LABEL, NoRoomForReview, Review, ReviewItem, UnknownReview
from audiocnn.serve.routes import Authorised, State
from audiocnn.serve.state import Refused, ServerState, checked

router = APIRouter(dependencies=[Authorised])
ReviewId = Annotated[str, Path(max_length=64, description="the id the review was made with")]
ItemIndex = Annotated[int, Path(ge=0, le=100_000, description="the detection's place in the review's queue, from 0")]
REVIEW_REFUSALS = refusals(401, 404, 422, 500)


class ReviewRequest(BaseModel):
    """Which detections of a kept result to review."""

    queue: QueueKind = Field("top", description="top: the most confident of each label; random; stratified: one from "
                             "each slice of the label's confidence range; uncertain: those nearest `threshold` "
                             "(active learning). Each spreads its picks across recordings")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="uncertain: the confidence where yes turns to no")
    per_label: int = Field(5, ge=1, le=500, description="detections queued per label")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="for random and stratified: the same seed, the same queue")
    top_k: int = Field(1, ge=1, le=50, description="labels of each window that count as detections")
    min_confidence: float = Field(0.5, ge=0.0, le=1.0, description="the lowest confidence that counts as a detection")


class VerdictRequest(BaseModel):
    """A reviewer's verdict on one detection."""

    verdict: Literal["accepted", "rejected", "relabelled", "none"] = Field(
        description="accepted: the label is right; rejected: no label of the model's; relabelled: it is `label`; "
        "none: not reviewed (undo)")
    label: str | None = Field(None, min_length=1, max_length=100, description="for relabelled: what the sound is")


@router.post("/v1/results/{result_id}/review", summary="Start reviewing a kept result's detections", status_code=201,
             responses=refusals(401, 404, 422, 507))
def create(state: State, result_id: ResultId, how: Annotated[ReviewRequest, Query()]) -> dict[str, Any]:
    """A review queue of the kept result's detections (each label's consecutive windows joined), its
    recordings saved with it: the review outlives the result and the server."""
    kept = state.kept(result_id)
    found = [Candidate(number, detection) for number, outcome in enumerate(kept.outcomes)
             if isinstance(outcome, FilePrediction)
             for detection in detections(outcome, how.top_k, how.min_confidence, merge_consecutive=True)]
    queue = review_queue(found, how.queue, how.per_label, how.seed, how.threshold)
    if not queue:
        raise Refused(422, "nothing_to_review", f"no detection at confidence {how.min_confidence:g} or more to review: "
                      "lower min_confidence")
    durations = [o.offset + o.duration if isinstance(o, FilePrediction) else 0.0 for o in kept.outcomes]
    try:
        review = state.reviews.create(kept.folder.uploads, durations, queue, model=state.service.path.name,
                                      labels=state.service.bundle.labels, how=how.model_dump())
    except NoRoomForReview as err:
        raise Refused(507, "no_room", str(err)) from None
    except FileNotFoundError:  # the kept result went (its time was up) while its recordings were copied
        state.kept(result_id)  # its 404
        raise
    return review.as_json()


@router.get("/v1/reviews", summary="The saved reviews, the newest first", responses=refusals(401))
def listed(state: State) -> list[dict[str, Any]]:
    """Each review's id, when it was made, and how many of its detections are reviewed."""
    return [review.summary() for review in state.reviews.reviews()]


@router.get("/v1/reviews/{review_id}", summary="A review: its recordings, queue and verdicts",
            responses=REVIEW_REFUSALS)
def read(state: State, review_id: ReviewId) -> dict[str, Any]:
    """The whole review."""
    return _review(state, review_id).as_json()


@router.put("/v1/reviews/{review_id}/items/{index}", summary="Accept, reject or relabel one detection",
            responses=REVIEW_REFUSALS)
def judge(state: State, review_id: ReviewId, index: ItemIndex, said: Annotated[VerdictRequest, Query()]
          ) -> dict[str, Any]:
    """The verdict, saved before the answer is sent (a reload or a restart keeps it)."""
    label = said.label.strip() if said.label else None
    if said.verdict == "relabelled" and not label:
        raise Refused(422, "bad_option", "label: a relabelled detection needs the label it should have")
    with _known(review_id):
        item: ReviewItem = state.reviews.judge(review_id, index, None if said.verdict == "none" else said.verdict, label)
    return {"index": index, **item.__dict__}


@router.get("/v1/reviews/{review_id}/items/{index}/audio", summary="Hear one detection", response_class=Response,
            responses={200: {"description": "a WAV of the detection and `pad` seconds either side (30 s at most)",
                             "content": {"audio/wav": {}}}, **REVIEW_REFUSALS})
async def snippet(state: State, review_id: ReviewId, index: ItemIndex,
                  pad: Annotated[float, Query(ge=0.0, le=10.0, description="seconds of context either side")] = 1.0
                  ) -> Response:
    """The detection's audio, with context either side: decoded by a worker, within --timeout (a compressed
    recording is decoded from its start)."""
    state.admit()

    def job(_: Ticket) -> bytes:
        with _known(review_id):
            return checked(lambda: state.reviews.snippet(review_id, index, pad))

    body = await state.in_worker(job, None)
    return Response(body, media_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/v1/reviews/{review_id}/export", summary="The reviewed detections as a training dataset",
            response_class=Response, responses={200: {"description": "a zip: reviewed/REC.wav beside "
                                                      "reviewed/REC.Table.1.selections.txt (Raven), for each recording "
                                                      "with a verdict", "content": {"application/zip": {}}},
                                                **REVIEW_REFUSALS, **refusals(503)})
async def export(state: State, review_id: ReviewId,
                 rejected: Annotated[Literal["background", "leave_out"], Query(
                     description=f"rejected detections as `{REJECTED_LABEL}` selections (sounds of none of the "
                     "model's labels, to learn from) or left out")] = "background") -> Response:
    """Accepted detections with their label, relabelled ones with the new label; unreviewed ones left out.
    Unzip it and train: `audiocnn train RECIPE --set data.dataset=annotations --data-root reviewed`.
    The zip is written by a worker into the server's folder (not memory), sent, then deleted."""
    review = await asyncio.to_thread(_review, state, review_id)
    if not any(item.verdict for item in review.items):
        raise Refused(422, "nothing_reviewed", "no detection of this review has a verdict yet")
    state.admit()
    folder = state.request_folder()
    target = folder.path / "review.zip"

    def job(_: Ticket) -> None:
        with _known(review_id):
            state.reviews.export(review_id, target, REJECTED_LABEL if rejected == "background" else None)
        folder.kept = True  # the response deletes it once sent

    await state.in_worker(job, folder)
    return FileResponse(target, media_type="application/zip", filename=f"review-{review_id[:8]}.zip",
                        background=BackgroundTask(folder.delete))


@router.delete("/v1/reviews/{review_id}", summary="Delete a review and its recordings", status_code=204,
               response_class=Response, responses=refusals(401, 404, 422))
def forget(state: State, review_id: ReviewId) -> Response:
    """The review and its copies of the recordings, deleted."""
    with _known(review_id):
        state.reviews.delete(review_id)
    return Response(status_code=204)


def _review(state: ServerState, review_id: str) -> Review:
    """The review, or 404."""
    with _known(review_id):
        return state.reviews.get(review_id)


@contextlib.contextmanager
def _known(review_id: str) -> Iterator[None]:
    """A review that is not there (never made, or deleted meanwhile) is a 404; an item it lacks a 422."""
    try:
        yield
    except UnknownReview:
        raise Refused(404, "no_review", f"no review {review_id[:40]!r}: never made, or deleted") from None
    except IndexError as err:
        raise Refused(422, "bad_option", str(err)) from None
