"""Classify recordings in this process or in N worker processes, with the same results.

Each worker is a separate process (started fresh, `spawn`: a forked copy of a process that
has started OpenMP threads can hang) that loads the bundle once and classifies whole files;
the CPU threads are divided between workers, so two workers on 2 cores run one thread each.
A model's outputs do not depend on how its work is split into threads, so the results are
the same as one worker's (a test checks it). Outcomes come back in input order, so writers
see files in the order a single worker would have written them; at most a few files per
worker are in flight, so a collection of a million files does not queue a million results.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from audiocnn import audio
from audiocnn.errors import AudiocnnError, item_failure
from audiocnn.inference.inputs import InputFile
from audiocnn.inference.options import DEFAULT, PredictOptions
from audiocnn.inference.overview import SpectrogramCollector
from audiocnn.inference.predictor import FilePrediction, Predictor

#: Files queued per worker beyond the one it is classifying (keeps workers busy, memory bounded).
QUEUED_PER_WORKER = 2


@dataclass
class Outcome:
    """One recording's prediction (and its overview when asked for), or why it failed."""

    item: InputFile
    prediction: FilePrediction | None = None
    overview: SpectrogramCollector | None = None
    error: str | None = None
    windows: int = 0  # windows classified (for a progress bar that counts them)


@dataclass(frozen=True)
class PredictorSpec:
    """How a worker builds its own `Predictor`: the bundle folder and the predictor's options."""

    model: Path
    options: PredictOptions = DEFAULT

    def build(self) -> Predictor:
        """The worker's Predictor (the backbone is built only if its runtime needs it: torch, or an ONNX
        graph not yet checked)."""
        from audiocnn import bundle

        return Predictor(bundle.load(self.model, backbone=self.options.runtime == "torch"), self.options)


def classify(predictor: Predictor, item: InputFile, overview: bool,
             on_window: Callable[[], None] | None = None) -> Outcome:
    """One recording classified; whatever goes wrong with it (a bad file, or any library's exception
    on a file no one foresaw) is returned as the outcome's one-line error, so the batch goes on."""
    try:
        collector = (SpectrogramCollector(predictor.rate, predictor.options.seconds_of(audio.info(item.path).duration))
                     if overview else None)
        result = predictor.predict(item.path, on_window=on_window, on_block=collector)
    except Exception as err:  # noqa: BLE001 - one file's failure, whatever it is, is that file's alone
        return Outcome(item, error=item_failure(item.path, err))
    return Outcome(item, result, collector, windows=len(result.starts))


def outcomes(predictor: Predictor, items: list[InputFile], *, overview: bool = False,
             workers: int = 1, spec: PredictorSpec | None = None,
             on_window: Callable[[], None] | None = None) -> Iterator[Outcome]:
    """Outcomes of `items` in order: classified here (`workers` 1) or by `workers` processes, each
    building its predictor from `spec` (`on_window` is then not called: count `Outcome.windows`)."""
    built_here = predictor.model is not None
    if spec is None or workers <= 1 or (len(items) <= 1 and built_here):
        for item in items:
            yield classify(predictor, item, overview, on_window)
        return
    workers = min(workers, len(items))
    threads = max(1, _cores() // workers)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start_worker,
                             initargs=(spec, threads)) as pool:
        pending: deque[Future[Outcome]] = deque()
        queue = iter(items)
        try:
            for item in queue:
                pending.append(pool.submit(_classify_in_worker, item, overview))
                if len(pending) >= workers * (1 + QUEUED_PER_WORKER):
                    yield _result(pending.popleft())
            while pending:
                yield _result(pending.popleft())
        finally:
            for future in pending:
                future.cancel()


def _result(future: Future[Outcome]) -> Outcome:
    """A worker's outcome; a worker that could not start, or died, is one clear error for the run."""
    try:
        return future.result()
    except BrokenProcessPool as err:
        raise AudiocnnError(f"a worker process died ({err}); the files finished so far are written. Out of "
                            "memory? Each worker holds its own model: try fewer --workers") from None


def _cores() -> int:
    """CPU cores this process may use (a job scheduler's limit, not the machine's size)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_worker_predictor: Predictor | None = None
_worker_error: AudiocnnError | None = None


def _start_worker(spec: PredictorSpec, threads: int) -> None:
    """Build this worker's predictor; a problem (a bundle that cannot run) is kept and raised by
    the first task, so the run stops with its message instead of a broken pool."""
    import torch

    global _worker_predictor, _worker_error  # noqa: PLW0603 - one predictor per worker process, built once
    _exit_with_parent()
    torch.set_num_threads(threads)
    try:
        _worker_predictor = spec.build()
    except Exception as err:  # noqa: BLE001 - raised by the first task: one clear error, not a broken pool
        _worker_error = err if isinstance(err, AudiocnnError) else AudiocnnError(item_failure(spec.model, err))


def _exit_with_parent(every_seconds: float = 1.0) -> None:
    """End this worker when the run that started it is gone. A parent killed with SIGKILL tells
    its workers nothing, and they would sit on a gigabyte each (and the parent's output pipes)
    until the machine restarts; a worker whose parent changed was orphaned, and exits."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _classify_in_worker(item: InputFile, overview: bool) -> Outcome:
    if _worker_error is not None:
        raise _worker_error
    assert _worker_predictor is not None, "worker started without its predictor"
    return classify(_worker_predictor, item, overview)
