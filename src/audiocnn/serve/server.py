"""Run the app with uvicorn: one process, the model loaded once, bound to 127.0.0.1 unless told.

uvicorn gives no time limit to a request's headers and accepts connections until the process
runs out of file descriptors: 1030 half-sent requests once made `/healthz` unreachable at
`ulimit -n 1024`. `GuardedH11` adds both bounds: headers must arrive within `--header-timeout`
seconds, and past `--max-connections` open connections (at most a third of the descriptors the
process may open) the oldest connection still waiting for its
headers is closed to make room, so a new request, `/healthz` included, is always answered.
A connection closed while its client may still be sending (a 408 or 413 to an upload cut off) is
closed lingering, as nginx does: the answer and a FIN go first, what still arrives is read and
dropped for up to `LINGER_S` seconds, then the socket closes. Closed at once, the unread bytes made
the kernel send a reset, which can destroy the answer before the client reads it.
On SIGTERM or Ctrl-C, requests get `--grace` seconds (3 by default); then their jobs are stopped
and the upload folder removed.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import replace

from audiocnn.serve.app import create_app
from audiocnn.serve.settings import ServeSettings

#: Seconds uvicorn waits for a client's next request on a kept-alive connection.
KEEP_ALIVE_S = 5
#: Largest request line plus headers, bytes (h11's own default, stated).
MAX_HEADER_BYTES = 16 * 1024
#: File descriptors kept for the process itself (model, libraries, logs) before connections get theirs.
RESERVED_FDS = 64
#: Seconds a closed connection keeps reading (and dropping) what its client still sends.
LINGER_S = 2.0
#: Names that reach this machine's loopback interface.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def run(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
        extra_hosts: tuple[str, ...] = ()) -> None:
    """Serve until stopped: the model is loaded first, then uvicorn listens, with the header deadline
    and the connection bound."""
    import uvicorn

    settings = replace(settings, allowed_hosts=allowed_hosts(host, extra_hosts),
                       max_connections=min(settings.max_connections, descriptor_room()))
    app = create_app(settings)  # the model loads before the port opens: a broken bundle never half-starts
    if not _loopback(host) and settings.api_key is None:
        print(f"audiocnn: warning: serving on {host} without --api-key: anyone who reaches this port can use it",
              file=sys.stderr)
    print(f"audiocnn: serving {app.state.model_name} on http://{_url_host(host)}:{port}/ (API documents at /docs)",
          file=sys.stderr)
    # backlog: the kernel's queue of connections not yet accepted, and how many asyncio accepts at once,
    # before any of them can make room: so connections never outrun the file descriptors (see descriptor_room)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=KEEP_ALIVE_S,
                timeout_graceful_shutdown=settings.grace_s, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                backlog=settings.max_connections,
                http=guarded_protocol(settings.header_timeout_s, settings.max_connections),
                server_header=False, proxy_headers=False)


def allowed_hosts(host: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The Host names a server bound to `host` answers: for a loopback bind this machine's names, the
    bound address and `extra`; for another bind `extra` and those names if any is given, else any (())."""
    if not _loopback(host) and not extra:
        return ()
    return (*LOOPBACK_NAMES, _url_host(host), *extra)


def descriptor_room() -> int:
    """Connections the process's file-descriptor limit leaves room for: a third of what is left after
    `RESERVED_FDS`, for the connections kept, those being closed to make room, and a burst of new ones
    (asyncio accepts up to `backlog` at once), each of which may hold an upload file too."""
    try:
        import resource
    except ImportError:  # Windows
        return 65_535
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 65_535 if soft == resource.RLIM_INFINITY else max(1, (soft - RESERVED_FDS) // 3)


def guarded_protocol(header_timeout: float, max_connections: int) -> type:
    """uvicorn's h11 protocol with a deadline for request headers and a bound on open connections."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11(H11Protocol):
        def connection_made(self, transport) -> None:  # noqa: ANN001
            super().connection_made(Lingering(transport, self.loop))
            self.opened = self.loop.time()
            self.header_timer = None
            self._arm()
            if len(self.connections) > max_connections:
                guarded = [c for c in self.connections if isinstance(c, GuardedH11) and c is not self]
                lingering = [c for c in guarded if c.transport.lingering]
                waiting = [c for c in guarded if c.waiting() and not c.transport.is_closing()]
                if lingering or waiting:  # a closed connection's linger goes first, then the oldest idle one
                    min(lingering or waiting, key=lambda c: c.opened).transport.close_now()
                else:
                    self.transport.close_now()

        def shutdown(self) -> None:
            self.transport.linger_s = 0.0  # the server is stopping: its --grace bounds the wait, not a linger
            super().shutdown()

        def data_received(self, data: bytes) -> None:
            if self.transport.lingering:
                return  # the rest of a request already answered: read to keep the kernel from resetting
            if self.header_timer is None and self.waiting():
                self._arm()  # the first bytes of a next request on a kept-alive connection
            super().data_received(data)
            if not self.waiting():
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def waiting(self) -> bool:
            """No request in progress: waiting for the (next) request's headers."""
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self.header_timer = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def _expire(self) -> None:
            self.header_timer = None
            if self.waiting() and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11


class Lingering:
    """An asyncio transport whose `close` lingers: the answer written and a FIN sent at once, the
    socket closed `linger_s` seconds later (or when the client closes first). Everything else is
    the transport's own."""

    def __init__(self, transport, loop, linger_s: float = LINGER_S) -> None:  # noqa: ANN001
        self._transport = transport
        self._loop = loop
        self.linger_s = linger_s
        self.lingering = False

    def __getattr__(self, name: str):  # noqa: ANN204 - the wrapped transport's own attributes
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        """True from the moment `close` was called: nothing more is to be written."""
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        """Send what is buffered and a FIN now; close the socket `linger_s` seconds later."""
        if self.lingering or self._transport.is_closing():
            return
        if self.linger_s <= 0 or not self._transport.can_write_eof():
            self._transport.close()
            return
        self.lingering = True
        self._transport.write_eof()  # after what is buffered: the client reads the whole answer, then EOF
        self._transport.resume_reading()  # drain what the client still sends, or the kernel answers it with RST
        self._loop.call_later(self.linger_s, self._transport.close)

    def close_now(self) -> None:
        """Close without lingering (to make room for a new connection)."""
        self._transport.close()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
