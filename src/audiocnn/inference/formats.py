"""Write predictions in the formats people and their audio tools read.

- `table`: for the terminal; `csv`: one row per window with its top-k labels, and one
  clip-level row per file (the mean of its window probabilities); `json`: the same as one
  document (written at the end, so a killed run leaves none);
- `raven`: a Raven Pro selection table (Cornell's bioacoustics viewer): one selection per
  detection with the standard columns below, plus our `Begin Path`, `Label`, `Confidence`
  and `Rank`; times are seconds within the file named in `Begin Path`;
- `audacity`: a label track (`start<TAB>end<TAB>label confidence`), which Audacity imports
  over the recording (File > Import > Labels); one recording per file, so use `--out-dir`
  for several;
- `kaleidoscope`: the CSV that Wildlife Acoustics' Kaleidoscope reads and writes (`INDIR`,
  `FOLDER`, `IN FILE`, `CHANNEL`, `OFFSET`, `DURATION`, `AUTO ID*`, an empty `MANUAL ID` for
  the reviewer, then `CONFIDENCE` and `RANK`): one row per detection;
- `scores`: one row per window and one column per class holding every probability
  (`file,start_time,end_time,<class>...`, as OpenSoundscape's score tables), for users who
  set their own thresholds.

`raven`, `audacity` and `kaleidoscope` list detections (`inference.detections`), so
`--merge-consecutive` applies to them. Rows are written as files finish, so a long batch
that is interrupted keeps what it has done (except JSON).

File names and labels are text from outside (a recording's name, a downloaded bundle's
labels), so every format keeps them from breaking the file or acting on the reader:
- CSV is quoted as the csv module does by default, so a comma, quote or line break stays in
  its cell. A cell starting with `=`, `+`, `-`, `@`, a tab, a carriage return or `'` gets one
  `'` in front: spreadsheets then show it as text instead of running it as a formula. To get
  the exact text back, drop the first character of a cell that starts with `'`.
- Raven tables and Audacity labels have no quoting, so a tab, line break or backslash in a
  name is written as `\t`, `\n`, `\r` or `\\`, and the other characters some readers end a
  line at (`\f`, NEL, U+2028, ...; see `audiocnn.tabletext`) as `\x0c`, `\x85`, `\u2028`; cells
  get the same `'` as in CSV (they are opened in spreadsheets too). `inference.tables` reads
  every format back.
- The terminal table shows control characters escaped (`\x1b`), so a name cannot move the
  cursor, retitle the window or hide text.
- JSON holds every name exactly.

A window or file whose top calibrated probability is below the model's `unknown_below` (see
`Bundle.unknown_below`) is labelled `unknown` first, with no probability (empty in CSV and Raven,
`null` in JSON), and its best guesses after it; a model that can abstain gets one more label column.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

from audiocnn.inference.detections import Detection, detections, window_labels
from audiocnn.inference.label_filter import restricted, shown_labels
from audiocnn.inference.options import OutputOptions
from audiocnn.inference.predictor import FilePrediction
from audiocnn.tabletext import RAVEN_COLUMNS, printable, raven_cells, raven_text, spreadsheet_text

#: The result file's name ending for each format, after the recording's name (`--out-dir`).
SUFFIXES = {"table": ".audiocnn.txt", "csv": ".audiocnn.csv", "json": ".audiocnn.json",
            "raven": ".audiocnn.selections.txt", "audacity": ".audiocnn.labels.txt",
            "kaleidoscope": ".audiocnn.kaleidoscope.csv", "scores": ".audiocnn.scores.csv"}
KALEIDOSCOPE_COLUMNS = ["INDIR", "FOLDER", "IN FILE", "CHANNEL", "OFFSET", "DURATION", "AUTO ID*", "MANUAL ID",
                        "CONFIDENCE", "RANK"]
SCORE_INDEX = ["file", "start_time", "end_time"]


class PredictionWriter:
    """Writes each file's prediction to `stream` as soon as it is added.

    Args:
        stream: where the text goes.
        output: the format and which labels each window lists (`OutputOptions`, checked already).
        high_freq_hz: a Raven selection's top frequency (half the model's sample rate).
        can_abstain: the model answers `unknown` below a threshold: one more label column.
        labels: the model's classes (the `scores` format's header names them all before the first file).
    """

    def __init__(self, stream: TextIO, output: OutputOptions, *, high_freq_hz: float = 8000.0,
                 can_abstain: bool = False, labels: list[str] | None = None) -> None:
        fmt, top_k = output.format, output.top_k
        if fmt == "scores" and not labels:
            raise ValueError("the scores format needs the model's labels for its header")
        # `--labels-include/--labels-exclude`: every file is written with those labels only (label_filter)
        self._shown = shown_labels(labels, output.labels_include, output.labels_exclude) if labels else None
        self._renormalise = output.renormalise
        if self._shown is not None:
            labels = [labels[i] for i in self._shown]
        self.stream, self.fmt, self.top_k, self.min_confidence = stream, fmt, top_k, output.min_confidence
        self.high_freq_hz, self.merge_consecutive = high_freq_hz, output.merge_consecutive
        self._documents: list[dict[str, Any]] = []
        self._failures: list[dict[str, str]] = []
        self._selection = 0
        # CSV: the csv module's defaults (quoted where needed, CRLF rows, as RFC 4180 has them);
        # Raven and Audacity: tabs, no quoting (neither reads any), so their text cells are escaped instead.
        self._csv = (csv.writer(stream, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None, lineterminator="\n")
                     if fmt in ("raven", "audacity") else csv.writer(stream))
        # A model that can answer `unknown` lists it first, then its k guesses: one more label.
        self.columns = top_k + int(can_abstain)
        if fmt == "csv":
            columns = ["path", "window", "start_s", "end_s"]
            for rank in range(1, self.columns + 1):
                columns += [f"label_{rank}", f"probability_{rank}"]
            self._csv.writerow(columns)
        elif fmt == "raven":
            self._csv.writerow(RAVEN_COLUMNS)
        elif fmt == "kaleidoscope":
            self._csv.writerow(KALEIDOSCOPE_COLUMNS)
        elif fmt == "scores":
            self._csv.writerow([*SCORE_INDEX, *map(spreadsheet_text, labels or [])])

    def add(self, prediction: FilePrediction, root: Path | None = None) -> None:
        """Write `prediction`; `root`: the folder its file was found in (Kaleidoscope's INDIR;
        default: the file's own folder)."""
        getattr(self, f"_add_{self.fmt}")(restricted(prediction, self._shown, self._renormalise), root)
        self.stream.flush()

    def add_failure(self, path: Path, message: str) -> None:
        """Bad files are reported on stderr by the caller; JSON also lists them for programs."""
        self._failures.append({"path": str(path), "error": message})

    def close(self) -> None:
        """Finish the stream: JSON is written whole here (its `files` and `failed` lists); the others
        were written file by file as they were added."""
        if self.fmt == "json":
            json.dump({"files": self._documents, "failed": self._failures}, self.stream, indent=2)
            self.stream.write("\n")
        self.stream.flush()

    # ------------------------------------------------------------------ formats

    def _detections(self, prediction: FilePrediction) -> list[Detection]:
        return detections(prediction, self.top_k, self.min_confidence, merge_consecutive=self.merge_consecutive)

    def _add_table(self, p: FilePrediction, _root: Path | None) -> None:
        def labels(top: list[tuple[str, float | None]]) -> str:
            return "  ".join(printable(label) if prob is None else f"{printable(label)} {prob:.2f}"
                             for label, prob in top) or "-"

        write = self.stream.write
        write(f"{printable(p.path)}  ({p.duration:.1f} s, {len(p.starts)} window{'s' if len(p.starts) != 1 else ''})\n")
        write(f"  {'whole file':>17}  {labels(p.top(p.summary, self.top_k))}\n")
        for _, start, end, top in window_labels(p, self.top_k, self.min_confidence):
            write(f"  {start:8.1f}–{end:<8.1f}  {labels(top)}\n")
        write("\n")

    def _add_csv(self, p: FilePrediction, _root: Path | None) -> None:
        def cells(top: list[tuple[str, float | None]]) -> list[Any]:
            flat: list[Any] = []
            for label, prob in top:
                flat += [spreadsheet_text(label), "" if prob is None else f"{prob:.4f}"]
            return flat + [""] * (2 * self.columns - len(flat))

        path = spreadsheet_text(p.path)
        self._csv.writerow([path, "clip", f"{p.offset:.3f}", f"{p.offset + p.duration:.3f}",
                            *cells(p.top(p.summary, self.top_k))])
        for index, start, end, top in window_labels(p, self.top_k, self.min_confidence):
            self._csv.writerow([path, index, f"{start:.3f}", f"{end:.3f}", *cells(top)])

    def _add_json(self, p: FilePrediction, _root: Path | None) -> None:
        def labelled(top: list[tuple[str, float | None]]) -> list[dict[str, Any]]:
            return [{"label": label, "probability": None if prob is None else round(prob, 6)} for label, prob in top]

        found = [d for d in detections(p, self.top_k, self.min_confidence, merge_consecutive=True) if not d.is_unknown]
        self._documents.append({
            "path": str(p.path), "offset_s": round(p.offset, 6), "duration_s": round(p.duration, 6),
            "summary": labelled(p.top(p.summary, self.top_k)),
            "detected": detected(found),
            "detections": [{"label": d.label, "start_s": round(d.start, 6), "end_s": round(d.end, 6),
                            "confidence": round(d.confidence, 6), "rank": d.rank, "windows": d.windows} for d in found],
            "windows": [{"index": i, "start_s": round(s, 6), "end_s": round(e, 6), "top": labelled(top)}
                        for i, s, e, top in window_labels(p, self.top_k, self.min_confidence)],
        })

    def _add_raven(self, p: FilePrediction, _root: Path | None) -> None:
        for d in self._detections(p):
            self._selection += 1
            self._csv.writerow(raven_cells(self._selection, d.start, d.end, p.path, d.label, d.confidence, d.rank,
                                           self.high_freq_hz))

    def _add_audacity(self, p: FilePrediction, _root: Path | None) -> None:
        for d in self._detections(p):
            text = d.label if d.confidence is None else f"{d.label} {d.confidence:.4f}"
            self._csv.writerow([f"{d.start:.6f}", f"{d.end:.6f}", raven_text(text)])

    def _add_kaleidoscope(self, p: FilePrediction, root: Path | None) -> None:
        root = p.path.parent if root is None else root
        folder = p.path.parent.relative_to(root) if p.path.parent.is_relative_to(root) else p.path.parent
        where = [spreadsheet_text(root), spreadsheet_text("" if folder == Path() else folder.as_posix()),
                 spreadsheet_text(p.path.name), 0]
        for d in self._detections(p):
            self._csv.writerow([*where, f"{d.start:.3f}", f"{d.end - d.start:.3f}", spreadsheet_text(d.label), "",
                                _probability(d.confidence), d.rank])

    def _add_scores(self, p: FilePrediction, _root: Path | None) -> None:
        path = spreadsheet_text(p.path)
        for start, end, row in zip(p.starts, p.ends, p.probabilities):
            self._csv.writerow([path, f"{start:.3f}", f"{end:.3f}", *(f"{v:.6f}" for v in row)])


def detected(found: list[Detection]) -> list[dict[str, Any]]:
    """What a recording holds, label by label: how many detections, how many seconds they cover (overlaps
    counted once) and the best confidence; most detections first. (A mean over windows says `unknown`
    of a file with seventy thunderclaps in it; this says `thunderstorm: 70`.)"""
    by_label: dict[str, list[Detection]] = {}
    for d in found:
        by_label.setdefault(d.label, []).append(d)
    rows = []
    for label, runs in by_label.items():
        covered, reach = 0.0, float("-inf")
        for d in sorted(runs, key=lambda d: d.start):
            covered += max(0.0, d.end - max(d.start, reach))
            reach = max(reach, d.end)
        rows.append({"label": label, "detections": len(runs), "seconds": round(covered, 3),
                     "best": round(max(d.confidence or 0.0 for d in runs), 6)})
    return sorted(rows, key=lambda row: (-row["detections"], -row["best"], row["label"]))


def _probability(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
