"""What a request passes before the app sees it: its Host, then its body's size, pace and room.

- **Host** (`HostCheck`): a server bound to this machine answers only the names of this machine
  (and those given with `--allow-host`). A web page elsewhere can make a browser send requests
  to a name that resolves to 127.0.0.1 (DNS rebinding); the browser then sends that name as the
  Host, and the request is refused (400, one JSON line) before anything runs.
- **Size** (`BodyLimit`): a body announced (Content-Length) or streamed beyond `--max-upload-mb`
  is refused with 413 while it streams, not after it has filled the disk.
- **Pace**: the whole body must arrive within `--upload-timeout` seconds (408). A worker slot is
  taken only once the upload is in, so slow clients never hold workers; the time bound keeps
  them from holding connections and disk.
- **Room**: all uploads held at once (arriving, waiting, being classified) stay within
  `ServeSettings.upload_budget_bytes`; past it, 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiocnn.errors import AudiocnnError

#: Seconds a client refused for lack of room is told to wait.
RETRY_AFTER_S = 2


class UploadTooLarge(AudiocnnError):
    """A request body beyond the server's --max-upload-mb."""


class UploadTooSlow(AudiocnnError):
    """A request body that did not arrive within the server's --upload-timeout."""


class NoRoom(AudiocnnError):
    """The uploads held at once would pass the server's bound."""


def host_name(header: str) -> str:
    """The name of a Host header, without its port: `[::1]:8000` -> `[::1]`, `Example.org.:80` -> `example.org`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0].rstrip(".") if header.count(":") == 1 else header.rstrip(".")


class HostCheck:
    """ASGI middleware: a request whose Host is not in `allowed` is refused with 400 (none given: all pass)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = {host_name(name) for name in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.allowed:
            given = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(given) not in self.allowed:
                shown = given.encode("ascii", "backslashreplace").decode()[:100]
                await send_json(send, 400, f"Host {shown!r} is not a name of this server (it answers "
                                f"{', '.join(sorted(self.allowed))}; add names with --allow-host)")
                return
        await self.app(scope, receive, send)


class UploadBudget:
    """Bytes of uploads held at once, across requests."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.held = max_bytes, 0
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        """Count `size` more bytes held, or raise NoRoom (503) if the budget would be exceeded."""
        with self._lock:
            if self.held + size > self.max_bytes:
                raise NoRoom(f"the server holds {self.max_bytes / 2**20:.1f} MiB of uploads already; try again shortly")
            self.held += size

    def give_back(self, size: int) -> None:
        """Bytes no longer held (the request ended)."""
        with self._lock:
            self.held -= size


class BodyLimit:
    """ASGI middleware: a body's size, arrival time and share of the budget, checked as it streams.

    Past a limit, reading the body raises UploadTooLarge, UploadTooSlow or NoRoom in the handler
    that reads it, which answers 413, 408 or 503 and deletes what was written. The budget is
    given back when the request ends (its uploads are deleted by then)."""

    def __init__(self, app: ASGIApp, max_bytes: int, seconds: float, budget: UploadBudget) -> None:
        self.app, self.max_bytes, self.seconds, self.budget = app, max_bytes, seconds, budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = dict(scope["headers"]).get(b"content-length")
        if announced is not None and announced.isdigit() and int(announced) > self.max_bytes:
            await send_json(send, 413, self.message(int(announced)))
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        seen, complete = 0, False

        async def counted() -> Message:
            nonlocal seen, complete
            if complete:  # after the body: waiting for a disconnect is not bounded here
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise UploadTooSlow(f"the request's body did not arrive within {self.seconds:g} s "
                                    f"(this server's --upload-timeout; {seen / 2**20:.1f} MiB came)") from None
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                self.budget.take(size)
                seen += size
                complete = not message.get("more_body", False)
                if seen > self.max_bytes:
                    raise UploadTooLarge(self.message(seen, streamed=True))
            return message

        try:
            await self.app(scope, counted, send)
        finally:
            self.budget.give_back(seen)

    def message(self, size: int, streamed: bool = False) -> str:
        """The refusal of a body of `size` bytes (`streamed`: counted so far, more may follow)."""
        what = "more than" if streamed else ""
        return (f"the upload is {what} {size / 2**20:.1f} MiB".replace("  ", " ") +
                f", over this server's limit of {self.max_bytes / 2**20:g} MiB (--max-upload-mb)")


async def send_json(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """A one-line JSON refusal, sent before the app has run; the connection is closed after it."""
    body = json.dumps({"error": message, "file": None}).encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *extra]})
    await send({"type": "http.response.body", "body": body})
