"""What the routes share, and how a request is refused: the server's state (settings, model, pool,
metrics, upload folder) and its admission of a request once its upload is in.

Kept apart from `app` (which installs the guards and error handlers) and `routes` (which answer),
so each of them imports this and neither imports the other.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from fastapi import FastAPI, Request

from audiocnn.errors import AudiocnnError
from audiocnn.serve.guards import RETRY_AFTER_S, UploadBudget
from audiocnn.serve.metrics import ServerMetrics
from audiocnn.serve.multipart import read_form
from audiocnn.serve.pool import PoolFull, Ticket, WorkerPool, WorkTimeout
from audiocnn.serve.results import KeptResult, ResultStore, UnknownResult
from audiocnn.serve.reviews import ReviewStore
from audiocnn.serve.service import ModelService, error_kind
from audiocnn.serve.settings import ServeSettings
from audiocnn.serve.uploads import ServerFolder, UploadFolder

T = TypeVar("T")
#: Seconds between two looks at whether a waiting request's client is still there.
CLIENT_CHECK_S = 0.25


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
        self.results = ResultStore(settings.keep_results, int(settings.keep_mb * 1024 * 1024),
                                   settings.keep_minutes * 60)
        self.reviews = ReviewStore(settings.reviews_folder, int(settings.reviews_mb * 1024 * 1024))

    @asynccontextmanager
    async def lifespan(self, _: FastAPI):  # noqa: ANN201
        """The upload folder exists while the server runs; at the end, jobs are stopped and it is removed."""
        self.folder = ServerFolder()
        try:
            yield
        finally:
            await asyncio.to_thread(self.pool.shutdown)
            self.results.close()
            self.folder.close()

    def authorised(self, request: Request) -> None:
        """Refuse (401) a request without this server's API key, when it has one."""
        key = self.settings.api_key
        if key is None:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise Refused(401, "unauthorised", "this server needs its API key: send it as X-API-Key "
                          "(or Authorization: Bearer KEY)", headers={"WWW-Authenticate": "Bearer"})

    def request_folder(self) -> UploadFolder:
        """A new folder for one request's files, inside the server's (removed when it stops)."""
        assert self.folder is not None, "the app's lifespan has not started"
        return self.folder.request()

    async def uploaded(self, request: Request, name: str | None, one_file: bool = False) -> UploadFolder:
        """The request's audio in a new folder, then a worker slot: a slow upload never holds a worker.
        On any failure the folder is deleted."""
        folder = self.request_folder()
        try:
            await self._receive(request, folder, name)
            if one_file and len(folder.uploads) != 1:
                raise Refused(422, "bad_option", f"explain takes one file (got {len(folder.uploads)})")
            self.admit()
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

    def kept(self, result_id: str) -> KeptResult:
        """A kept result (`/v1/predict?keep=true`), or 404 naming the bounds it may have passed."""
        try:
            return self.results.get(result_id)
        except UnknownResult:
            s = self.settings
            raise Refused(404, "no_result", f"no kept result {result_id[:40]!r}: results are kept {s.keep_minutes:g} "
                          f"minutes after their last use, the last {s.keep_results} of them (--keep-minutes, "
                          "--keep-results); send the recordings again") from None

    def admit(self) -> None:
        """A worker slot for a job whose uploads are in (a request's, or a kept result's), or 503."""
        try:
            self.pool.admit()
        except PoolFull:
            raise Refused(503, "busy", f"all {self.settings.concurrency} workers are busy and {self.settings.queue} "
                          "requests wait already; try again shortly",
                          headers={"Retry-After": str(RETRY_AFTER_S)}) from None

    async def in_worker(self, job: Callable[[Ticket], T], folder: UploadFolder | None,
                        request: Request | None = None) -> T:
        """`job(ticket)` on the pool (a slot taken already); the folder is deleted when the job ends, or
        when the request ends if the job never started. When the `request`'s client leaves (a page's
        Cancel, a closed tab), its job is stopped within a batch of windows, not run to its end."""
        def owned(ticket: Ticket) -> T:
            try:
                return job(ticket)
            finally:
                if folder is not None:
                    folder.close()

        self.metrics.busy.set(self.pool.admitted)
        work = asyncio.ensure_future(self.pool.run(owned, self.settings.timeout_s))
        left = asyncio.ensure_future(_client_left(request)) if request is not None else None
        try:
            if left is not None:
                await asyncio.wait({work, left}, return_when=asyncio.FIRST_COMPLETED)
                if not work.done():
                    work.cancel()  # the pool tells the job to stop
                    await asyncio.wait({work})
                    raise Refused(400, "disconnected", "the client left before its answer; its job was stopped")
            return await work
        except WorkTimeout:
            raise Refused(504, "timeout", f"the request took longer than {self.settings.timeout_s:g} s "
                          "(--timeout) and was stopped; try a shorter recording") from None
        except asyncio.CancelledError:  # the server is stopping (its grace period is over): say so, in JSON
            raise Refused(503, "stopping", "the server is stopping; this request's job was stopped",
                          headers={"Retry-After": str(RETRY_AFTER_S), "Connection": "close"}) from None
        finally:
            if left is not None:
                left.cancel()
            if not work.done():  # this request was cancelled itself (the server stopping): so is its job
                work.cancel()
            work.add_done_callback(_retrieved)
            if folder is not None:
                folder.close()


def _retrieved(work: asyncio.Future) -> None:
    """A job's end that nobody awaits any more (its request is over) is not an error to log."""
    if not work.cancelled():
        work.exception()


async def _client_left(request: Request) -> None:
    """Returns once the request's client has gone (its connection closed)."""
    while not await request.is_disconnected():
        await asyncio.sleep(CLIENT_CHECK_S)


def checked(call: Callable[[], T], file: str | None = None) -> T:
    """`call()`, its AudiocnnErrors turned into 422 refusals naming the file."""
    try:
        return call()
    except AudiocnnError as err:
        raise Refused(422, error_kind(err), str(err), file) from None
