"""Which detections a person listens to: review queues over a batch's detections.

A reviewer cannot hear every detection of a season, so a queue picks, for each label, up to
`per_label` detections in one of three ways (the choices BirdNET-Analyzer's review tab and
OpenSoundscape's validation notebooks offer):

- `top`: the most confident ones: is the model right where it is surest?
- `random`: drawn at random (seeded): how often is it right at all?
- `stratified`: one from each of `per_label` equal-sized slices of the label's detections
  sorted by confidence, lowest to highest: how does being right change with the score (where
  should the threshold be)?
- `uncertain`: those the model is least sure of, active learning's pick (the windows whose
  labels teach a model most): a confidence nearest `threshold` (where its yes turns to no), or a
  window whose top two labels are nearly as probable (`margin`, where the table lists both);
  the smaller of the two distances counts.

Each way spreads its picks across recordings: a recording gives a label's second pick only
once every recording with that label has given one (its best for `top`, a random one
otherwise), so one loud recording cannot fill a label's queue. `unknown` (the model abstained)
is never queued: there is no label to accept. The queue is grouped by label (alphabetical), each
label's picks from the most to the least confident, which is how reviewers work through
one sound at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from audiocnn.inference.detections import Detection

QueueKind = Literal["top", "random", "stratified", "uncertain"]
QUEUE_KINDS: tuple[QueueKind, ...] = ("top", "random", "stratified", "uncertain")
#: The most detections one queue holds: an afternoon's listening, far more than a page shows at once.
MAX_QUEUE = 2_000


@dataclass(frozen=True)
class Candidate:
    """One detection that may be reviewed, and which recording of the batch it is in."""

    recording: int
    detection: Detection
    margin: float | None = None  # its window's top probability minus the second's, where known


def review_queue(candidates: Sequence[Candidate], kind: QueueKind, per_label: int, seed: int = 0,
                 threshold: float = 0.5) -> list[Candidate]:
    """Up to `per_label` candidates of each label, picked the `kind` way (see the module docstring;
    `threshold` is the `uncertain` queue's); at most `MAX_QUEUE` in all, shared among the labels (fewer
    each, not fewer labels). The same candidates, kind and seed give the same queue.

    Example:
        >>> from audiocnn.inference.detections import Detection
        >>> found = [Candidate(r, Detection(s, s + 5.0, "dog", c, 1)) for r, s, c in
        ...          [(0, 0.0, 0.9), (0, 5.0, 0.8), (1, 0.0, 0.6), (1, 5.0, 0.5)]]
        >>> [(c.recording, c.detection.confidence) for c in review_queue(found, "top", 2)]
        [(0, 0.9), (1, 0.6)]
    """
    if kind not in QUEUE_KINDS:
        raise ValueError(f"queue must be one of {', '.join(QUEUE_KINDS)} (got {kind!r})")
    by_label: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        if not candidate.detection.is_unknown and candidate.detection.confidence is not None:
            by_label[candidate.detection.label].append(candidate)
    per_label = min(per_label, max(1, MAX_QUEUE // max(1, len(by_label))))  # every label gets its share
    queue: list[Candidate] = []
    for label in sorted(by_label):
        rng = np.random.default_rng([seed, *label.encode()])  # a label's picks do not depend on the others
        picked = _picked(by_label[label], kind, per_label, rng, threshold)
        queue += sorted(picked, key=lambda c: (-_confidence(c), c.recording, c.detection.start))
    return queue[:MAX_QUEUE]


def _picked(found: list[Candidate], kind: QueueKind, k: int, rng: np.random.Generator,
            threshold: float) -> list[Candidate]:
    """One label's picks."""
    if kind == "stratified":  # a slice per pick, lowest scores first; within a slice, the least heard recording
        ordered = sorted(found, key=lambda c: (_confidence(c), c.recording, c.detection.start))
        picks: list[Candidate] = []
        heard: dict[int, int] = defaultdict(int)
        for part in np.array_split(np.arange(len(ordered)), min(k, len(ordered))):
            options = [ordered[i] for i in part]
            fewest = min(heard[c.recording] for c in options)
            options = [c for c in options if heard[c.recording] == fewest]
            pick = options[int(rng.integers(len(options)))]
            heard[pick.recording] += 1
            picks.append(pick)
        return picks
    per_recording: dict[int, list[Candidate]] = defaultdict(list)
    for candidate in found:
        per_recording[candidate.recording].append(candidate)
    if kind in ("top", "uncertain"):  # each recording's best first: its surest, or its least sure
        def key(c: Candidate) -> float:
            return -_confidence(c) if kind == "top" else uncertainty(c, threshold)

        rows = [sorted(group, key=lambda c: (key(c), c.detection.start)) for group in per_recording.values()]
        rows.sort(key=lambda row: key(row[0]))
    else:
        rows = [[group[i] for i in rng.permutation(len(group))] for group in per_recording.values()]
        rows = [rows[i] for i in rng.permutation(len(rows))]
    picks = []
    for depth in range(max(len(row) for row in rows)):  # every recording's first pick, then every second one, ...
        picks += [row[depth] for row in rows if depth < len(row)]
        if len(picks) >= k:
            break
    return picks[:k]


def uncertainty(candidate: Candidate, threshold: float) -> float:
    """How far the model is from changing its mind here (0: not at all sure): the distance of the
    confidence from `threshold`, or the window's top-two margin where that is smaller."""
    distance = abs(_confidence(candidate) - threshold)
    return distance if candidate.margin is None else min(distance, candidate.margin)


def _confidence(candidate: Candidate) -> float:
    return float(candidate.detection.confidence or 0.0)
