"""What the API's OpenAPI document says beyond what FastAPI reads off the routes' signatures.

The routes read their uploads from the raw request stream (bounded in size, pace and room as
they arrive, `guards`), not through FastAPI's form parameters, so FastAPI cannot see their
request bodies: they are declared here, so that Swagger UI's "Try it out" and generated clients
can send files. The same holds for the answers that are not 200: every refusal is one JSON line
(`ErrorAnswer`, from the app's error handlers), not FastAPI's default 422 shape, and each status
a route can answer is listed with what it means. The API key is declared as security schemes,
which Swagger UI's "Authorize" button fills in.
"""

from __future__ import annotations

from typing import Any

from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, Field

#: The key as `X-API-Key: KEY` or `Authorization: Bearer KEY` (neither required: a server may have no key).
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="the server's API key (`audiocnn serve --api-key`), when it has one")
BEARER = HTTPBearer(auto_error=False, description="the same key as `Authorization: Bearer KEY`")


class FailedFile(BaseModel):
    """One file of a request that could not be classified."""

    path: str = Field(description="the file's name as it was sent")
    error: str = Field(description="one line: what is wrong with it, as `audiocnn predict` says it")
    kind: str = Field(description="bad_audio, too_long, ... or internal")


class ErrorAnswer(BaseModel):
    """Every refusal: one line, and the file it concerns."""

    error: str = Field(description="one line: what was wrong, as the command line says it")
    file: str | None = Field(None, description="the file it concerns, by the name it was sent with")
    failed: list[FailedFile] | None = Field(None, description="/v1/predict, when no file could be classified: "
                                            "every file's problem")


_MEANINGS = {
    400: "a Host this server does not answer, or a client that left before its request was sent",
    401: "the server has an API key and the request did not send it",
    408: "the upload did not arrive within the server's --upload-timeout",
    404: "no kept result (or review) with this id: never made, deleted, or past --keep-minutes or --keep-results",
    413: "the upload is larger than the server's --max-upload-mb",
    422: "a bad option, or no file that could be read as audio (the error names the file)",
    500: "an unforeseen failure, named in one line; the server goes on",
    503: "all workers busy and the queue full, or the server stopping: try again after Retry-After seconds",
    504: "the job ran past the server's --timeout and was stopped",
    507: "the saved reviews would pass the server's --reviews-mb: delete reviews that are done",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route that may refuse with `statuses`, all of them `ErrorAnswer`s."""
    return {status: {"model": ErrorAnswer, "description": _MEANINGS[status],
                     **({"headers": _RETRY_AFTER} if status == 503 else {})} for status in statuses}


def _binary(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "binary", "description": description}


_RAW_BODY = {"application/octet-stream": {"schema": _binary("the recording itself; name it with ?name=")}}
_FORMATS = "any format `audiocnn predict` reads (WAV, FLAC, OGG, Opus, MP3, AIFF, ...)"

#: /v1/predict: one or more recordings as multipart/form-data (field `file`, repeated), or one as the body.
UPLOADS: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {"file": {
        "type": "array", "items": _binary(f"a recording in {_FORMATS}"),
        "description": "one or more recordings (the field repeated)"}}}},
    **_RAW_BODY}}}

#: /v1/explain: one recording, as multipart/form-data (field `file`) or as the body.
ONE_UPLOAD: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": _binary(f"the recording, in {_FORMATS}")}}},
    **_RAW_BODY}}}
