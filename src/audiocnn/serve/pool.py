"""A bounded pool of worker threads: a request is admitted at once or answered 503.

Classifying is CPU work, so it runs in `concurrency` threads beside the event loop (which keeps
accepting and answering). At most `queue` more requests wait for a thread; the next one is
refused at once with a `Retry-After`, so a burst can neither grow memory without end nor leave
clients hanging. A slot is given back when its job ends, even when the request itself was
answered 504 before that: the pool never runs more jobs than it has threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class PoolFull(Exception):
    """Every worker is busy and the waiting line is full."""


class WorkTimeout(Exception):
    """The job ran longer than the request may wait; it finishes in the background."""


class WorkerPool:
    def __init__(self, concurrency: int, queue: int) -> None:
        self.capacity = concurrency + queue
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="audiocnn-worker")
        self._lock = threading.Lock()
        self._admitted = 0

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
        with self._lock:
            self._admitted -= 1

    async def run(self, job: Callable[[], T], timeout: float) -> T:
        """Run `job` in a worker (a slot must have been taken with `admit`; it is given back when the
        job ends). Raises WorkTimeout after `timeout` seconds."""
        future = self._executor.submit(job)
        future.add_done_callback(lambda _: self.release())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            raise WorkTimeout from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
