"""`audiocnn segments`: a review queue cut out of earlier results, as audio snippets and a table to fill in.

The detections come back from result tables of any format (`table_detections`), so a season's
results are queued without classifying again; the queue is the page's (`review_queue`: top, random,
stratified or uncertain, spread across recordings), so what a reviewer hears does not depend on the
order the recordings were classified in. Each queued detection is cut from its recording with
`pad_s` seconds either side (`snippets.SnippetWriter`, one folder per label), and `segments.csv`
lists them: where each came from, the queue's reasons (confidence, margin), and empty `verdict` and
`new_label` columns for the reviewer.

Resumable: the queue is the same for the same tables and options, a snippet already written is not
written again, and `segments.csv`, written last and atomically, says the run is done. A table that
cannot be read, or a recording it names that is not there, is one problem line, and the rest go on.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from audiocnn import atomic, audio
from audiocnn.errors import AudiocnnWarning, ConfigError, item_failure
from audiocnn.inference.inputs import InputFile
from audiocnn.inference.review_queue import Candidate, QueueKind, review_queue, uncertainty
from audiocnn.inference.snippets import SnippetWriter, label_folder, snippet_name
from audiocnn.inference.table_detections import read_detections, recording_path
from audiocnn.tabletext import spreadsheet_text

MANIFEST = "segments.csv"
COLUMNS = ["segment", "recording", "start_s", "end_s", "clip_start_s", "clip_end_s", "label", "confidence",
           "margin", "uncertainty", "queue", "verdict", "new_label"]


@dataclass(frozen=True)
class QueueOptions:
    """How the queue is drawn and cut (the command's options)."""

    kind: QueueKind = "top"
    per_label: int = 10
    seed: int = 0
    threshold: float = 0.5
    top_k: int = 1
    min_confidence: float = 0.0
    max_confidence: float = 1.0
    pad_s: float = 1.0


@dataclass
class SegmentsRun:
    """What a run did: detections read, queued, snippets written now, and each problem met."""

    read: int = 0
    queued: int = 0
    written: int = 0
    problems: list[str] = field(default_factory=list)
    manifest: Path | None = None


def cut_segments(tables: list[Path], out: Path, options: QueueOptions) -> SegmentsRun:
    """Queue the detections of `tables` and cut them into `out` (see the module docstring).

    `out` remembers the padding its snippets were cut with (`OPTIONS`): a snippet's name says where its
    detection is, not how much was cut around it, so another `pad_s` into the same folder is refused."""
    _check_padding(out, options.pad_s)
    (out / MANIFEST).unlink(missing_ok=True)  # written again last: until then, this run is not done
    run = SegmentsRun()
    recordings: dict[Path, int] = {}
    candidates: dict[tuple[int, float, float, str], Candidate] = {}  # a detection two tables list is one
    for table_path, entry in read_detections(tables, options.top_k, run.problems):
        run.read += 1
        confidence = entry.detection.confidence or 0.0
        if not options.min_confidence <= confidence <= options.max_confidence:
            continue
        number = recordings.setdefault(recording_path(entry.recording, table_path), len(recordings))
        d = entry.detection
        candidates.setdefault((number, round(d.start, 3), round(d.end, 3), d.label), Candidate(number, d, entry.margin))
    paths = list(recordings)
    lengths = _lengths(paths, run)
    readable = [c for c in candidates.values() if lengths[c.recording] is not None]  # before the queue: it is full
    queue = review_queue(readable, options.kind, options.per_label, options.seed, options.threshold)
    run.queued = len(queue)
    root = Path(os.path.commonpath([p.parent for p in paths])) if paths else Path()
    writer = SnippetWriter(out, per_label=10**9, pad_s=options.pad_s)  # the queue chose: no cap of its own
    rows = []
    for number, path in enumerate(paths):
        mine = [c for c in queue if c.recording == number]
        if not mine:
            continue
        item = InputFile(path, root)
        with warnings.catch_warnings(record=True) as failed:  # a snippet not written is this run's problem
            warnings.simplefilter("always", AudiocnnWarning)
            run.written += writer.add(item, [c.detection for c in mine])
        run.problems += [str(w.message) for w in failed if issubclass(w.category, AudiocnnWarning)]
        for c in mine:
            d = c.detection
            if not (out / label_folder(d.label) / snippet_name(item, d)).is_file():
                continue  # not written (said above): not listed as done
            rows.append([(Path(label_folder(d.label)) / snippet_name(item, d)).as_posix(), str(path), f"{d.start:.3f}",
                         f"{d.end:.3f}", f"{max(0.0, d.start - options.pad_s):.3f}",
                         f"{min(lengths[number], d.end + options.pad_s):.3f}", d.label, f"{d.confidence:.4f}",
                         "" if c.margin is None else f"{c.margin:.4f}", f"{uncertainty(c, options.threshold):.4f}",
                         options.kind, "", ""])
    rows.sort(key=lambda row: (row[6], -float(row[7]), row[1], float(row[2])))
    out.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    table = csv.writer(text)
    table.writerow(COLUMNS)
    table.writerows([[spreadsheet_text(cell) for cell in row] for row in rows])
    run.manifest = out / MANIFEST
    atomic.write_text(run.manifest, text.getvalue())
    return run


#: Where `out` keeps the padding its snippets were cut with.
OPTIONS = ".segments-padding"


def _check_padding(out: Path, pad_s: float) -> None:
    """Refuse a padding other than the one `out`'s snippets were cut with; remember it for a new folder."""
    record = out / OPTIONS
    if record.is_file():
        earlier = float(record.read_text().strip() or "nan")
        if abs(earlier - pad_s) > 1e-9:
            raise ConfigError(f"--out {out}: its snippets were cut with --pad {earlier:g}; give that, or another "
                              "folder")
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(record, f"{pad_s!r}\n")


def _lengths(paths: list[Path], run: SegmentsRun) -> list[float | None]:
    """Each recording's length from its header; None (and a problem) for one that cannot be read."""
    lengths: list[float | None] = []
    for path in paths:
        try:
            lengths.append(audio.info(path).duration)
        except Exception as err:  # noqa: BLE001 - gone, moved or damaged since it was classified
            run.problems.append(f"{item_failure(path, err)}; its detections are not queued")
            lengths.append(None)
    return lengths
