"""Uploads into temporary files: streamed, bounded, named by the server, always deleted.

Nothing a client sends is used as a path here: a file is stored as `NNNN<suffix>` in a fresh
private folder, where the suffix is kept only when it is a plain extension (decoders look at
it), and the client's name is only text shown back in the results. A request body larger than
`--max-upload-mb` is cut off while it streams (`BodyLimit`), not after it has filled the disk.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiocnn.errors import AudiocnnError

_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}$")
#: Read and written this many bytes at a time.
CHUNK = 1 << 20


class UploadTooLarge(AudiocnnError):
    """A request body beyond the server's --max-upload-mb."""


@dataclass
class Upload:
    name: str  # the client's file name, as text for the results
    path: Path  # where it lies on this server, inside the request's own folder


def display_name(name: str | None, index: int) -> str:
    """The last part of the client's file name (browsers send only that; others may send more), or `upload-N`."""
    base = re.split(r"[\\/]", name or "")[-1].strip()
    return base[:255] or f"upload-{index + 1}"


class UploadFolder:
    """A private temporary folder for one request's files; `close` deletes it with everything in it."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="audiocnn-serve-"))
        self.uploads: list[Upload] = []

    def _next(self, name: str | None) -> Upload:
        shown = display_name(name, len(self.uploads))
        match = _EXTENSION.search(shown)
        upload = Upload(shown, self.path / f"{len(self.uploads):04d}{match.group(0).lower() if match else ''}")
        self.uploads.append(upload)
        return upload

    async def add_part(self, part: UploadFile) -> Upload:
        """A multipart file part (already spooled by Starlette) copied into the folder."""
        upload = self._next(part.filename)
        with upload.path.open("wb") as out:
            while chunk := await part.read(CHUNK):
                out.write(chunk)
        return upload

    async def add_stream(self, name: str | None, chunks) -> Upload:  # noqa: ANN001 - an async iterator of bytes
        """A raw request body streamed into the folder."""
        upload = self._next(name)
        with upload.path.open("wb") as out:
            async for chunk in chunks:
                out.write(chunk)
        return upload

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class BodyLimit:
    """ASGI middleware: a body announced (Content-Length) or streamed beyond `max_bytes` is refused with 413.

    A streamed body is counted as it arrives; past the limit, reading it raises UploadTooLarge in
    the handler that reads it, which answers 413 and deletes what was written.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = dict(scope["headers"]).get(b"content-length")
        if announced is not None and announced.isdigit() and int(announced) > self.max_bytes:
            await _refuse(send, self.message(int(announced)))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise UploadTooLarge(self.message(seen, streamed=True))
            return message

        await self.app(scope, counted, send)

    def message(self, size: int, streamed: bool = False) -> str:
        what = "more than" if streamed else ""
        return (f"the upload is {what} {size / 2**20:.1f} MiB".replace("  ", " ") +
                f", over this server's limit of {self.max_bytes / 2**20:g} MiB (--max-upload-mb)")


async def _refuse(send: Send, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
