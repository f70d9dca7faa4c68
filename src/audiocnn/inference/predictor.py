"""Classify recordings of any length: cut them into windows, batch the windows, score them.

A recording is read in blocks (`audio.stream`) and windows are cut from a small rolling
buffer (`windows`), so memory stays flat for a 10-hour file. A file's summary is the mean of
its window probabilities. A `Predictor` keeps no per-file state: one instance may classify
several files at once from several threads (as a server answering requests would), with the
same results as one at a time.

The work is bounded by the options, whoever gives them: a window is a tenth to 4 times the
model's trained window, a hop at least a tenth of the window (so a second of audio is in at
most 10 windows), a batch holds no more audio than a batch of trained windows, and
`predict(max_seconds=...)` counts the samples really decoded, whatever the header claims.
A `window=600` on a 5 s model once took a server past 6 GiB, and `hop=0.0001` held a worker
for hours.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audiocnn import audio
from audiocnn.bundle import Bundle, with_backbone
from audiocnn.bundle_files import model_files
from audiocnn.errors import AudioError, BundleError, OptionError
from audiocnn.features.windows import window_count, windows
from audiocnn.inference.bandpass import Bandpass, checked_band
from audiocnn.inference.options import DEFAULT, PredictOptions
from audiocnn.inference.runtimes import (
    OnnxBackbone,
    checked_graph,
    files_marker,
    for_inference,
    release_freed_memory,
)
from audiocnn.models.classifier import AudioClassifier
from audiocnn.models.ensemble import EnsembleClassifier

#: Seconds read from disk at a time: large enough to be efficient, small enough to stay flat.
BLOCK_SECONDS = 60.0
#: Blocks between heap trims: trimming every block cost 15% of the time (pages are faulted in
#: again), every 10 blocks about 1%, and RSS still stays flat.
TRIM_EVERY_BLOCKS = 10

#: The window may be this fraction to this multiple of the model's trained window: shorter
#: windows give the model too little to hear, longer ones cost memory in proportion.
WINDOW_RANGE = (0.1, 4.0)
#: The hop is at least this fraction of the window: each sample is in at most 10 windows.
MIN_HOP_FRACTION = 0.1

BlockObserver = Callable[[np.ndarray], None]
#: The label of a window or file whose evidence is too weak for any class (see `Bundle.unknown_below`).
UNKNOWN = "unknown"


@dataclass
class FilePrediction:
    """Window-level class probabilities for one recording, and its clip-level summary."""

    path: Path
    duration: float  # seconds classified (the part from `offset` on, or the whole recording)
    labels: list[str]
    starts: np.ndarray  # (windows,) seconds
    ends: np.ndarray  # (windows,) seconds, capped at the recording's end
    probabilities: np.ndarray  # (windows, classes), calibrated (the bundle's temperature applied)
    logits: np.ndarray | None = None  # (windows, classes), before softmax: for open-set scores
    unknown_below: float = 0.0  # a row whose top probability is below this is answered `unknown`
    offset: float = 0.0  # where in the recording the classified part starts (`--offset`); times include it

    @property
    def summary(self) -> np.ndarray:
        """Clip-level class probabilities: the mean over windows."""
        return self.probabilities.mean(axis=0)

    @property
    def most_confident_start(self) -> float:
        """Start (s) of the window whose top probability is highest: the one to explain by default."""
        return float(self.starts[int(self.probabilities.max(axis=1).argmax())])

    def top(self, probabilities: np.ndarray, k: int, min_confidence: float = 0.0) -> list[tuple[str, float | None]]:
        """The `k` most probable labels of one probability row, dropping those below `min_confidence`;
        when the top probability is below `unknown_below`, `(UNKNOWN, None)` comes first (the
        guesses still follow it). A row with no label left is empty."""
        order = np.argsort(-probabilities, kind="stable")[:k]
        guesses: list[tuple[str, float | None]] = [(self.labels[i], float(probabilities[i])) for i in order
                                                   if probabilities[i] >= min_confidence]
        if guesses and float(probabilities.max()) < self.unknown_below:
            return [(UNKNOWN, None), *guesses]
        return guesses

    def abstains(self, probabilities: np.ndarray) -> bool:
        """Whether this probability row is answered `unknown` (its top is below `unknown_below`)."""
        return float(probabilities.max()) < self.unknown_below


class TooLong(AudioError):
    """A recording with more audio than `predict(max_seconds=...)` allows (counted as it is decoded)."""


def checked_windows(trained_seconds: float, window_seconds: float | None, hop_seconds: float | None
                    ) -> tuple[float, float]:
    """(window, hop) in seconds: the model's window and half of it by default; out of range an OptionError.

    The bounds make the work of a recording its length times a bounded cost per second, which a
    server's duration limit and timeout can then bound (see the module notes).
    """
    window = trained_seconds if window_seconds is None else float(window_seconds)
    low, high = (trained_seconds * bound for bound in WINDOW_RANGE)
    if not low <= window <= high:  # NaN fails too
        raise OptionError("window", f"must be between {low:g} s and {high:g} s, a tenth to {WINDOW_RANGE[1]:g} "
                          f"times the model's {trained_seconds:g} s window (got {window:g})")
    hop = window / 2 if hop_seconds is None else float(hop_seconds)
    if not MIN_HOP_FRACTION * window <= hop < float("inf"):
        raise OptionError("hop", f"must be at least {MIN_HOP_FRACTION * window:g} s, a tenth of the {window:g} s "
                          f"window, and finite (got {hop:g})")
    return window, hop


class Predictor:
    """A bundle's model applied window by window to whole recordings.

    Args:
        bundle: the trained model (`audiocnn.bundle.load`).
        options: the windows (default the model's clip length, half of it apart), noise reduction,
            the `unknown` threshold (default the bundle's), the runtime and the batch size
            (fewer windows a batch for windows longer than the trained clip); see `PredictOptions`.
            Those that say how results are written (format, top_k, ...) are for the writers.
        block_seconds: audio decoded at a time; memory stays flat however long the file.
        build: False plans windows without building a runtime (`predict` then refuses).

    Raises:
        OptionError: a window or hop out of range for this model.
        BundleError: the int8 runtime asked of a bundle whose 8-bit graph cannot run.

    Example:
        >>> from pathlib import Path
        >>> import audiocnn
        >>> from audiocnn import bundle
        >>> from audiocnn.bundled import default_model
        >>> predictor = Predictor(bundle.load(default_model()), PredictOptions(hop=2.5))
        >>> predictor.rate, predictor.window, predictor.hop
        (16000, 80000, 40000)
        >>> predictor.windows_for(12.0)  # 0-5, 2.5-7.5, 5-10, 7.5-12 s
        4
    """

    def __init__(self, bundle: Bundle, options: PredictOptions = DEFAULT, *, block_seconds: float = BLOCK_SECONDS,
                 build: bool = True) -> None:
        """`build=False`: windows, rate and calibration only, no runtime (a run whose files are
        classified by worker processes plans and writes with it; `predict` then refuses)."""
        window_seconds, hop_seconds = checked_windows(bundle.clip_seconds, options.window, options.hop)
        self.options = options
        # the bundle's calibration: logits / temperature, and `unknown` below its threshold
        self.temperature = bundle.temperature
        self.unknown_below = bundle.unknown_below if options.unknown_below is None else options.unknown_below
        self.bundle = bundle
        self.rate = bundle.sample_rate
        self.band = (options.fmin, options.fmax) if options.fmin or options.fmax else None  # Hz; None = all
        if self.band:
            checked_band(*self.band, self.rate)  # before the runtime is built: a refusal should be quick
        self.window = max(1, round(window_seconds * self.rate))
        self.model = self._runtime(bundle, options.runtime, window_seconds) if build else None
        self.hop = max(1, round(hop_seconds * self.rate))
        # longer windows, smaller batches: a batch never holds more audio than `batch_size` trained windows
        batch_size = options.batch_size
        self.batch_size = max(1, min(batch_size, int(batch_size * bundle.clip_seconds / window_seconds)))
        self.denoise = options.strength  # share of the background removed before windowing; 0 = off
        self.block_seconds = block_seconds
        # Blocks read over all files (a batch of short files trims too); next() on a count is atomic.
        self._blocks_read = itertools.count(1)

    def _runtime(self, bundle: Bundle, runtime: str, window_seconds: float) -> torch.nn.Module:
        """The bundle's model with the fastest backbone `runtime` allows, checked against its weights
        (an ensemble's: each member's)."""
        if bundle.members:
            return EnsembleClassifier([self._runtime(m, runtime, window_seconds) for m in bundle.members],
                                      [m.temperature for m in bundle.members], bundle.model.frontend).eval()
        trained = bundle.model.eval()
        example = trained.images(0.1 * torch.randn(2, self.window, generator=torch.Generator().manual_seed(0)))
        if runtime == "int8":  # the bundle's own 8-bit graph (`audiocnn quantize`), checked against its weights
            backbone: torch.nn.Module = _int8_backbone(bundle, example, window_seconds)
        else:  # a graph checked for these very files needs no backbone built; else build it, export, check
            marker = files_marker(model_files(bundle.path), example) if runtime != "torch" else None
            checked = checked_graph(marker) if marker is not None else None
            backbone = checked or for_inference(with_backbone(bundle).model.backbone, example, runtime=runtime,
                                                also_mark=marker)
        return AudioClassifier(trained.frontend, backbone, trained.mean.flatten().tolist(),
                               trained.std.flatten().tolist()).eval()

    def windows_for(self, seconds: float) -> int:
        """Windows a recording of `seconds` gives (progress bars size themselves from file headers)."""
        return window_count(round(seconds * self.rate), self.window, self.hop)

    def predict(self, path: str | Path, *, on_window: Callable[[], None] | None = None,
                on_block: BlockObserver | None = None, max_seconds: float | None = None) -> FilePrediction:
        """Class probabilities for every window of one recording (the part the options' `offset` and
        `duration` say; window times stay times in the recording).

        Args:
            path: an audio file in any format, rate and channel count `audiocnn.audio` reads.
            on_window: called once per window scored; it may raise to stop the work (a deadline).
            on_block: called with each decoded block of samples (at the model's rate); may raise too.
            max_seconds: more decoded audio than this raises `TooLong` as soon as it is read (within
                one block of the limit), however short the file's header says it is.

        Returns:
            A `FilePrediction`: window start/end times, calibrated probabilities (windows, classes),
            logits, and the file's `summary` (mean over windows).

        Raises:
            AudioError: the file is missing, unreadable or holds no samples (`TooLong` is one).

        Example:
            >>> from pathlib import Path
            >>> import audiocnn
            >>> from audiocnn import bundle
            >>> from audiocnn.bundled import default_model
            >>> examples = Path(audiocnn.__file__).parents[2] / "examples"
            >>> predictor = Predictor(bundle.load(default_model()))
            >>> result = predictor.predict(examples / "dog-bark.wav")
            >>> result.probabilities.shape  # one window (the recording is shorter than 5 s), 50 classes
            (1, 50)
            >>> [(label, round(p, 2)) for label, p in result.top(result.summary, 2)]
            [('dog', 0.8), ('coughing', 0.04)]
        """
        path = Path(path)
        offset, duration = self.options.offset, self.options.duration
        seen = [0]  # samples read so far: this call's own, so calls from several threads never mix
        limit = None if max_seconds is None else round(max_seconds * self.rate)
        blocks = self._blocks(path, on_block, seen, offset, duration, limit)
        starts: list[int] = []
        batches: list[np.ndarray] = []  # logits
        pending: list[np.ndarray] = []
        for start, samples in windows(blocks, self.window, self.hop):
            starts.append(start)
            pending.append(samples)
            if len(pending) == self.batch_size:
                batches.append(self._score(pending, on_window))
                pending = []
        if pending:
            batches.append(self._score(pending, on_window))
        if not starts:
            raise AudioError(f"{path}: holds no samples")
        n_samples = seen[0]
        first = np.asarray(starts, dtype=np.float64)
        logits = np.concatenate(batches)
        return FilePrediction(
            path=path, duration=n_samples / self.rate, labels=self.bundle.labels,
            starts=offset + first / self.rate, ends=offset + np.minimum(first + self.window, n_samples) / self.rate,
            probabilities=torch.from_numpy(logits / self.temperature).softmax(dim=1).numpy(), logits=logits,
            unknown_below=self.unknown_below, offset=offset,
        )

    def _blocks(self, path: Path, on_block: BlockObserver | None, seen: list[int], offset: float = 0.0,
                duration: float | None = None, limit: int | None = None) -> Iterator[np.ndarray]:
        from audiocnn.inference.denoise import reduce_noise

        band = Bandpass(self.rate, *self.band) if self.band else None  # its state is this recording's
        for block in audio.stream(path, self.rate, block_seconds=self.block_seconds, offset=offset,
                                  duration=duration):
            if next(self._blocks_read) % TRIM_EVERY_BLOCKS == 0:
                release_freed_memory()  # keeps RSS flat over hours of audio (see runtimes.release_freed_memory)
            seen[0] += len(block)
            if limit is not None and seen[0] > limit:
                raise TooLong(f"{path}: more than {limit / self.rate:g} s of audio (the limit); decoding stopped there")
            if band is not None:
                block = band(block)
            if self.denoise:
                block = reduce_noise(block, self.rate, self.denoise)
            if on_block is not None:
                on_block(block)
            yield block

    def _score(self, pending: list[np.ndarray], on_window: Callable[[], None] | None) -> np.ndarray:
        """The logits of a batch of windows."""
        if self.model is None:
            raise RuntimeError("this Predictor was made with build=False: it plans, its workers predict")
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.stack(pending))).float().numpy()
        if on_window is not None:
            for _ in pending:
                on_window()
        return logits


def _int8_backbone(bundle: Bundle, example: torch.Tensor, window_seconds: float) -> torch.nn.Module:
    """The bundle's 8-bit graph, for windows of the length it was made for; bad files are one-line errors."""
    from audiocnn.inference.quantize import read_int8

    graph, info = read_int8(bundle)
    if info.get("input_shape") != list(example.shape[1:]):  # the window is fixed when the graph is made
        raise OptionError("window", f"the 8-bit graph of {bundle.path} takes {bundle.clip_seconds:g} s windows only "
                          f"(got {window_seconds:g}); use another runtime for other windows")
    try:
        backbone = OnnxBackbone(graph)
        backbone(example)
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for a broken graph
        raise BundleError(f"{graph}: ONNX Runtime cannot run it ({type(err).__name__}: {err})") from None
    return backbone
