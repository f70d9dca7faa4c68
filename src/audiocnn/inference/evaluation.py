"""`audiocnn evaluate`: detections of earlier results scored against annotated recordings.

The predictions are result tables of any format that names its recordings (`table_detections`);
the annotations are a folder as the `annotations` dataset reads it (each recording beside its Raven
or Audacity table, `datasets.annotated.find_selections`). A prediction's recording is matched to an
annotated one by its path, else by its file name when only one annotated recording has that name.

The classes scored are the annotated ones: a detection of a class nobody annotated is left out (the
annotator was not listening for it), and an annotated class the model does not have scores 0 recall.
At `threshold`, each class's windows at or above it, merged where they overlap or touch, are its
estimated events; `inference.scoring` counts them event-based (onsets within `collar` seconds: by
default half the tables' window, as the windows start a hop apart and the hop is half a window) and
segment-based (`segment`-second segments), and scores the segments over all thresholds (average
precision, AUROC, the precision-recall curve). Over thresholds a `scores` table is exact; a table that
lists each window's top labels only gives the unlisted ones probability 0.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from audiocnn import audio
from audiocnn.datasets.annotated import find_selections
from audiocnn.errors import ConfigError, item_failure
from audiocnn.inference.scoring import (
    Counts,
    active_segments,
    auroc,
    average_precision,
    event_counts,
    pr_curve,
    segment_counts,
    segment_scores,
)
from audiocnn.inference.table_detections import read_detections, recording_path

Window = tuple[float, float, float]  # start, end, probability


@dataclass(frozen=True)
class EvaluationOptions:
    """What counts as a detection, and how close it must be."""

    threshold: float = 0.5
    collar: float | None = None  # None: half the tables' window, the hop predict uses (window ends are hop-quantised)
    segment: float = 1.0
    offsets: bool = False
    top_k: int = 1000  # scores tables: every class's probability is read


@dataclass
class Evaluation:
    """The figures per class and overall, the precision-recall curves, and what could not be used."""

    options: EvaluationOptions
    recordings: int = 0
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    overall: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # class: (precision, recall)
    problems: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """The JSON report."""
        return {"options": self.options.__dict__, "recordings": self.recordings, "overall": self.overall,
                "classes": self.classes, "problems": self.problems}


def evaluate(tables: list[Path], annotations: Path, options: EvaluationOptions) -> Evaluation:
    """Score the detections of `tables` against the annotated recordings under `annotations`."""
    result = Evaluation(options)
    selections, problems = find_selections(annotations)
    result.problems += problems
    if not selections:
        raise ConfigError(f"{annotations}: no annotations found (a recording with its Raven or Audacity table "
                          "beside it)")
    reference: dict[Path, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for selection in selections:
        reference[selection.recording.resolve()][selection.label].append((selection.begin_s, selection.end_s))
    classes = sorted({s.label for s in selections})
    windows = _predicted_windows(tables, list(reference), options.top_k, result.problems)
    lengths = {recording: _length(recording, reference[recording], result.problems) for recording in reference}
    if options.collar is None:  # the estimated onsets fall on the windows' starts, a hop (half a window) apart
        spans = [end - start for by_class in windows.values() for found in by_class.values() for start, end, _ in found]
        options = replace(options, collar=round(float(np.median(spans)) / 2, 3) if spans else 1.0)
        result.options = options
    event_totals, segment_totals = Counts(), Counts()
    truth: dict[str, list[np.ndarray]] = defaultdict(list)
    scored: dict[str, list[np.ndarray]] = defaultdict(list)
    per_class = {label: (Counts(), Counts()) for label in classes}
    for recording, annotated in reference.items():
        if recording not in windows:
            result.problems.append(f"{recording}: annotated, but no prediction table names it: every event missed")
        for label in classes:
            found = windows.get(recording, {}).get(label, [])
            estimated = _events([(s, e) for s, e, p in found if p >= options.threshold])
            events = event_counts(annotated.get(label, []), estimated, options.collar, options.offsets)
            active = active_segments(annotated.get(label, []), lengths[recording], options.segment)
            segments = segment_counts(active, active_segments(estimated, lengths[recording], options.segment))
            per_class[label][0].add(events)
            per_class[label][1].add(segments)
            truth[label].append(active)
            scored[label].append(segment_scores(found, lengths[recording], options.segment))
    result.recordings = len(reference)
    for label, (events, segments) in per_class.items():
        event_totals.add(events)
        segment_totals.add(segments)
        t, s = np.concatenate(truth[label]), np.concatenate(scored[label])
        precision, recall, _ = pr_curve(t, s)
        result.curves[label] = (precision, recall)
        result.classes[label] = {"event": events.rates(), "segment": segments.rates(),
                                 "average_precision": average_precision(t, s), "auroc": auroc(t, s),
                                 "annotated_events": sum(len(reference[r].get(label, [])) for r in reference)}
    result.overall = {"event": event_totals.rates(), "segment": segment_totals.rates(),
                      "event_macro_f1": _mean([c["event"]["f1"] for c in result.classes.values()]),
                      "segment_macro_f1": _mean([c["segment"]["f1"] for c in result.classes.values()]),
                      "mean_average_precision": _mean([c["average_precision"] for c in result.classes.values()]),
                      "mean_auroc": _mean([c["auroc"] for c in result.classes.values()])}
    return result


def _predicted_windows(tables: list[Path], annotated: list[Path], top_k: int, problems: list[str]
                       ) -> dict[Path, dict[str, list[Window]]]:
    """Per annotated recording and class, the (start, end, probability) of every window the tables list."""
    by_name: dict[str, list[Path]] = defaultdict(list)
    for recording in annotated:
        by_name[recording.name].append(recording)
    found: dict[Path, dict[str, list[Window]]] = defaultdict(lambda: defaultdict(list))
    unmatched: set[str] = set()
    for table, entry in read_detections(tables, top_k, problems):
        recording = _matched(entry.recording, table, annotated, by_name)
        if recording is None:
            unmatched.add(entry.recording)
            continue
        d = entry.detection
        found[recording][d.label].append((d.start, d.end, float(d.confidence or 0.0)))
    if unmatched:
        problems.append(f"{len(unmatched)} predicted recording(s) have no annotations and are left out "
                        f"(first: {sorted(unmatched)[0]})")
    return found


def _matched(written: str, table: Path, annotated: list[Path], by_name: dict[str, list[Path]]) -> Path | None:
    """The annotated recording a table's row names: by its path, else by a file name only one has."""
    path = recording_path(written, table)
    if path in annotated:
        return path
    same_name = by_name.get(path.name, [])
    return same_name[0] if len(same_name) == 1 else None


def _events(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Windows that overlap or touch, merged into one event each."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1e-9:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _length(recording: Path, annotated: dict[str, list[tuple[float, float]]], problems: list[str]) -> float:
    """The recording's length from its header; else the last annotation's end (with a problem line)."""
    try:
        return audio.info(recording).duration
    except Exception as err:  # noqa: BLE001 - the segments still need a length
        problems.append(f"{item_failure(recording, err)}; its length is taken from its annotations")
        return max(end for events in annotated.values() for _, end in events)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None
