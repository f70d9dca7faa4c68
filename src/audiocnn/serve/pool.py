"""A bounded pool of worker threads whose jobs stop when their request's time is up.

Classifying is CPU work, so it runs in `concurrency` threads beside the event loop (which keeps
accepting and answering). At most `queue` more requests wait for a thread; the next one is
refused at once with a `Retry-After`, so a burst can neither grow memory without end nor leave
clients hanging.

A job gets a `Ticket` and calls `ticket.check()` often (the predictor does, once per batch of
windows and per block read). Past the request's deadline, or once the request is gone (the
client left, the server is stopping), `check` raises `Cancelled`, the job ends and its slot is
given back within a batch. Before, a request answered 504 kept its worker until the job ended,
so two `?hop=0.0001` requests starved every later one for hours.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
#: Seconds a timed-out request waits for its job to stop (a batch of windows) before it is answered.
STOP_WAIT_S = 5.0


class PoolFull(Exception):
    """Every worker is busy and the waiting line is full."""


class WorkTimeout(Exception):
    """The job ran longer than the request may wait; it has been told to stop."""


class Cancelled(Exception):
    """Raised inside a job by `Ticket.check` once the job should stop."""


class Ticket:
    """One job's deadline and stop flag, shared between the request and the thread running the job."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self._stop = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at its next check (a client went away, a deadline passed)."""
        self._stop.set()

    def check(self, *_: object) -> None:
        """Raise `Cancelled` when the job should stop (takes and ignores arguments: it is passed as a callback)."""
        if self._stop.is_set() or time.monotonic() > self.deadline:
            raise Cancelled


class WorkerPool:
    """A bounded set of worker threads and waiting places: a full pool refuses at once (503), and a
    job past its time is stopped."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self.capacity = concurrency + queue
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="audiocnn-worker")
        self._lock = threading.Lock()
        self._admitted = 0
        self._tickets: set[Ticket] = set()

    @property
    def admitted(self) -> int:
        """Jobs running or waiting."""
        return self._admitted

    def admit(self) -> None:
        """Take a slot, or raise PoolFull."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise PoolFull
            self._admitted += 1

    def release(self) -> None:
        """Give back a slot taken with `admit`."""
        with self._lock:
            self._admitted -= 1

    async def run(self, job: Callable[[Ticket], T], timeout: float) -> T:
        """`job(ticket)` in a worker (a slot must have been taken with `admit`; it is given back when the
        job ends). After `timeout` seconds the job is told to stop, and WorkTimeout is raised once it has
        (or after `STOP_WAIT_S` more), so the slot is free when the client hears 504. If the request
        itself is cancelled (the server stopping, the client gone), the job is told to stop too."""
        ticket = Ticket(timeout)
        with self._lock:
            self._tickets.add(ticket)
        future = self._executor.submit(job, ticket)
        future.add_done_callback(lambda _: self._finished(ticket))
        wrapped = asyncio.wrap_future(future)
        wrapped.add_done_callback(_retrieved)  # a stopped job's Cancelled is its expected end, not news
        try:
            done, _ = await asyncio.wait([wrapped], timeout=timeout)
        except asyncio.CancelledError:
            ticket.cancel()
            future.cancel()
            raise
        if not done:
            ticket.cancel()
            future.cancel()  # a job still waiting for a thread never starts
            await asyncio.wait([wrapped], timeout=STOP_WAIT_S)
            raise WorkTimeout
        try:
            return wrapped.result()
        except Cancelled:  # its own deadline passed a moment before ours
            raise WorkTimeout from None

    def _finished(self, ticket: Ticket) -> None:
        with self._lock:
            self._tickets.discard(ticket)
        self.release()

    def shutdown(self) -> None:
        """Stop every job at its next check and wait for the threads: seconds, not the jobs' whole length."""
        with self._lock:
            for ticket in self._tickets:
                ticket.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)


def _retrieved(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
