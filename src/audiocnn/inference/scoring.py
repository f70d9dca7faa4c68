"""Scores of detections against annotations, as the DCASE challenges define them (Mesaros, Heittola and
Virtanen, "Metrics for polyphonic sound event detection", 2016), and over thresholds.

- **Event-based**: an estimated event of a class is right when its onset is within `collar` seconds
  of an annotated event's onset (and, when `offsets` is asked, its offset within the larger of
  `collar` and half the annotated event's length); each annotated event is matched at most once, by
  the largest matching (`scipy.optimize.linear_sum_assignment`), not first come first served.
- **Segment-based**: each recording is cut into `segment`-second segments; a class is active in a
  segment when any of its events overlaps it; segments are counted, not events.
- **Over thresholds** (segment-based): a segment's score for a class is the highest probability a
  window overlapping it gave that class. Average precision is scikit-learn's definition (the sum over
  thresholds of precision times the recall gained), AUROC the probability that a segment with the
  class outscores one without (ties count half).

sed_eval, DCASE's reference implementation, was not used: its toolbox (dcase_util) imports
`pkg_resources`, which current setuptools no longer has. The tests check these figures against ones
computed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

Interval = tuple[float, float]


@dataclass
class Counts:
    """True positives, false positives and false negatives, and the rates they give."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        """Count `other`'s too (a class over recordings, or every class together)."""
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn

    def rates(self) -> dict[str, float | int | None]:
        """tp, fp, fn, precision, recall and F1 (None where undefined: nothing estimated, nothing annotated)."""
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else None
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else None
        f1 = (2 * self.tp / (2 * self.tp + self.fp + self.fn)) if self.tp + self.fp + self.fn else None
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": precision, "recall": recall, "f1": f1}


def event_counts(reference: list[Interval], estimated: list[Interval], collar: float, offsets: bool = False) -> Counts:
    """One class in one recording, event-based (see the module docstring).

    Example:
        >>> event_counts([(1.0, 2.0), (5.0, 6.0)], [(1.2, 2.5), (8.0, 9.0)], collar=0.5)
        Counts(tp=1, fp=1, fn=1)
    """
    if not reference or not estimated:
        return Counts(0, len(estimated), len(reference))
    ref, est = np.asarray(reference, float), np.asarray(estimated, float)
    fits = np.abs(ref[:, None, 0] - est[None, :, 0]) <= collar + 1e-9
    if offsets:
        tolerance = np.maximum(collar, 0.5 * (ref[:, 1] - ref[:, 0]))[:, None]
        fits &= np.abs(ref[:, None, 1] - est[None, :, 1]) <= tolerance + 1e-9
    rows, cols = linear_sum_assignment(-fits.astype(float))
    matched = int(fits[rows, cols].sum())
    return Counts(matched, len(estimated) - matched, len(reference) - matched)


def active_segments(events: list[Interval], duration: float, segment: float) -> np.ndarray:
    """Which `segment`-second segments of a recording `duration` long the events overlap (a boolean row)."""
    n = max(1, int(np.ceil(duration / segment - 1e-9)))
    active = np.zeros(n, bool)
    for start, end in events:
        first, last = int(np.floor(start / segment)), int(np.ceil(end / segment - 1e-9))
        active[max(0, first): min(n, max(last, first + 1))] = True
    return active


def segment_counts(reference: np.ndarray, estimated: np.ndarray) -> Counts:
    """Segment-based counts of one class from its active segments in the annotations and the estimate."""
    return Counts(int((reference & estimated).sum()), int((~reference & estimated).sum()),
                  int((reference & ~estimated).sum()))


def segment_scores(windows: list[tuple[float, float, float]], duration: float, segment: float) -> np.ndarray:
    """Each segment's score for one class: the highest probability of the windows (start, end, p) overlapping it."""
    n = max(1, int(np.ceil(duration / segment - 1e-9)))
    scores = np.zeros(n)
    for start, end, probability in windows:
        first, last = int(np.floor(start / segment)), int(np.ceil(end / segment - 1e-9))
        span = slice(max(0, first), min(n, max(last, first + 1)))
        scores[span] = np.maximum(scores[span], probability)
    return scores


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """Sum over distinct thresholds (highest first) of precision times the recall gained; None without positives.

    Example:
        >>> average_precision(np.array([1, 0, 1, 0], bool), np.array([0.9, 0.8, 0.7, 0.1]))
        0.8333333333333333
    """
    if not truth.any():
        return None
    precision, recall, _ = pr_curve(truth, scores)
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def pr_curve(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall when everything scoring at least each distinct threshold (highest first) is called."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, hits = scores[order], truth[order].astype(float)
    last = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]  # the end of each tie group
    tp = np.cumsum(hits)[last]
    called = last + 1
    return tp / called, tp / max(1.0, truth.sum()), sorted_scores[last]


def auroc(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """The chance that a positive outscores a negative, ties half (the Mann-Whitney U); None without both kinds.

    Example:
        >>> auroc(np.array([1, 0, 1, 0], bool), np.array([0.9, 0.8, 0.7, 0.1]))
        0.75
    """
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(scores)  # tied scores share their mean rank: a tie counts half
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
