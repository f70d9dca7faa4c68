"""From window probabilities to detections: a label, where it was heard, and how sure the model is.

Every listed label of a window (its top-k above `--min-confidence`, `unknown` first where the
model abstains) is one detection, as Raven, Audacity and Kaleidoscope show them. Windows
overlap (the hop is half a window by default), so one call heard over ten seconds is several
detections in a row; `merge_consecutive` joins the windows of a label that follow each other
into one detection from the first window's start to the last one's end, with the highest
probability among them (BirdNET-Analyzer's `--merge_consecutive` does the same for species).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from audiocnn.inference.predictor import UNKNOWN, FilePrediction


@dataclass(frozen=True)
class Detection:
    """One label heard from `start` to `end` seconds (times in the recording)."""

    start: float
    end: float
    label: str
    confidence: float | None  # None for `unknown`, which has no probability of its own
    rank: int  # 1 = the window's first label (for a merged detection: its best rank)
    windows: int = 1  # windows joined into it

    @property
    def is_unknown(self) -> bool:
        """The model abstained here (`unknown`, no confidence): no detection to review or cut."""
        return self.label == UNKNOWN and self.confidence is None


def window_labels(prediction: FilePrediction, top_k: int, min_confidence: float = 0.0
                  ) -> Iterator[tuple[int, float, float, list[tuple[str, float | None]]]]:
    """(window index, start, end, listed labels) of each window that lists any label."""
    for index, (start, end, row) in enumerate(zip(prediction.starts, prediction.ends, prediction.probabilities)):
        top = prediction.top(row, top_k, min_confidence)
        if top:
            yield index, float(start), float(end), top


def detections(prediction: FilePrediction, top_k: int, min_confidence: float = 0.0, *,
               merge_consecutive: bool = False) -> list[Detection]:
    """The detections of one recording, ordered by start time, then rank."""
    found = [(index, Detection(start, end, label, prob, rank))
             for index, start, end, top in window_labels(prediction, top_k, min_confidence)
             for rank, (label, prob) in enumerate(top, 1)]
    return _merged(found) if merge_consecutive else [detection for _, detection in found]


def _merged(found: list[tuple[int, Detection]]) -> list[Detection]:
    """Join each label's detections in windows that follow one another (index i, then i + 1)."""
    open_runs: dict[str, tuple[Detection, int]] = {}  # label -> (detection so far, its last window)
    done: list[Detection] = []
    for window, detection in found:
        run = open_runs.get(detection.label)
        if run is not None and run[1] == window - 1:
            joined = run[0]
            confidence = (None if joined.confidence is None or detection.confidence is None
                          else max(joined.confidence, detection.confidence))
            open_runs[detection.label] = (Detection(joined.start, detection.end, joined.label, confidence,
                                                    min(joined.rank, detection.rank), joined.windows + 1), window)
            continue
        if run is not None:
            done.append(run[0])
        open_runs[detection.label] = (detection, window)
    done += [detection for detection, _ in open_runs.values()]
    return sorted(done, key=lambda d: (d.start, d.rank, d.label))
