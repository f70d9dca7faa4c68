"""Results kept on the server under an id: one upload classified once, then downloaded in every
format, filtered, re-run with other options or explained, without sending it again.

A `/v1/predict?keep=true` request leaves its uploads and their predictions here; the answer
names the result's id. The store is bounded three ways, each a server option: how many results
(`--keep-results`), how many bytes of uploads they hold together (`--keep-mb`) and for how long
after their last use (`--keep-minutes`). Past a bound the least recently used results go first;
a result larger than the whole byte bound is not kept (the answer says so). Ids are random
(128 bits), so a result is reachable only by whoever was given its id (and, on a server with an
API key, only with the key). Everything kept lies in the server's upload folder, so it goes
when the server stops, or, after a kill, when the next server starts.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audiocnn.inference.predictor import FilePrediction
from audiocnn.serve.uploads import UploadFolder


class UnknownResult(LookupError):
    """No kept result has this id: never made, or gone past the store's bounds."""


@dataclass
class KeptResult:
    """One request's uploads and what the model said of each: its predictions, or its failure
    (`{"path", "error", "kind"}`), in upload order."""

    id: str
    folder: UploadFolder
    outcomes: list[FilePrediction | dict[str, str]]
    can_abstain: bool  # the predictor answered `unknown` below a threshold (tables mark it)
    size: int = 0  # bytes of uploads held
    used: float = field(default=0.0)
    pictures: list[dict[str, Any]] = field(default_factory=list)  # each classified file's timeline, if drawn


class ResultStore:
    """Kept results, least recently used first out, within a count, a byte and an idle-time bound."""

    def __init__(self, max_results: int, max_bytes: int, idle_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_results, self.max_bytes, self.idle_seconds, self.clock = max_results, max_bytes, idle_seconds, clock
        self._kept: OrderedDict[str, KeptResult] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, folder: UploadFolder, outcomes: list[FilePrediction | dict[str, str]],
             can_abstain: bool, pictures: list[dict[str, Any]] | None = None) -> KeptResult | None:
        """Keep a request's uploads and predictions (the folder is the store's from now on); None when
        they alone are larger than the byte bound (the folder is then deleted as any request's is)."""
        size = sum(upload.path.stat().st_size for upload in folder.uploads if upload.path.is_file())
        if size > self.max_bytes or self.max_results == 0:
            return None
        folder.kept = True
        result = KeptResult(secrets.token_urlsafe(16), folder, outcomes, can_abstain, size, self.clock(),
                            pictures or [])
        with self._lock:
            self._kept[result.id] = result
            gone = self._over_bounds()
        for old in gone:
            old.folder.delete()
        return result

    def get(self, result_id: str) -> KeptResult:
        """The kept result `result_id`, now the most recently used; UnknownResult when there is none."""
        with self._lock:
            gone = self._over_bounds()
            result = self._kept.get(result_id)
            if result is not None:
                result.used = self.clock()
                self._kept.move_to_end(result_id)
        for old in gone:
            old.folder.delete()
        if result is None:
            raise UnknownResult(result_id)
        return result

    def forget(self, result_id: str) -> None:
        """Delete a kept result and its uploads; UnknownResult when there is none."""
        with self._lock:
            result = self._kept.pop(result_id, None)
        if result is None:
            raise UnknownResult(result_id)
        result.folder.delete()

    def close(self) -> None:
        """Delete every kept result (the server is stopping)."""
        with self._lock:
            kept, self._kept = list(self._kept.values()), OrderedDict()
        for result in kept:
            result.folder.delete()

    def __len__(self) -> int:
        return len(self._kept)

    def _over_bounds(self) -> list[KeptResult]:
        """Take out (under the lock) what is idle too long, then the oldest past the count and byte bounds."""
        now = self.clock()
        gone = [r for r in self._kept.values() if now - r.used > self.idle_seconds]
        for result in gone:
            del self._kept[result.id]
        while self._kept and (len(self._kept) > self.max_results
                              or sum(r.size for r in self._kept.values()) > self.max_bytes):
            gone.append(self._kept.popitem(last=False)[1])
        return gone
