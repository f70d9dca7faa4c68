"""Write predictions as a terminal table, CSV, JSON or a Raven Pro selection table.

Every format has one row (or object) per window with its start and end in seconds and the
top-k labels with probabilities, and one clip-level summary per file (the mean of its window
probabilities). `--min-confidence` drops labels below it; a window left with none is not
written (the summary always is). Rows are written as files finish, so a long batch that is
interrupted keeps what it has done — except JSON, which is one document written at the end.

Raven Pro (Cornell's bioacoustics tool) reads a tab-separated "selection table": one row per
selection with the standard columns below, plus our `Begin Path`, `Label`, `Confidence` and
`Rank`; times are seconds within the file named in `Begin Path`, and each listed label of a
window is its own selection so Raven can browse them by label.

File names and labels are text from outside (a recording's name, a downloaded bundle's
labels), so every format keeps them from breaking the file or acting on the reader:
- CSV is quoted as the csv module does by default, so a comma, quote or line break stays in
  its cell. A cell starting with `=`, `+`, `-`, `@`, a tab, a carriage return or `'` gets one
  `'` in front: spreadsheets then show it as text instead of running it as a formula. To get
  the exact text back, drop the first character of a cell that starts with `'`.
- Raven tables have no quoting, so a tab, line break or backslash in a name is written as
  `\t`, `\n`, `\r` or `\\`; cells get the same `'` as in CSV (they are opened in spreadsheets too).
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

from audiocnn.inference.predictor import FilePrediction

FORMATS = ("table", "csv", "json", "raven")
#: First characters that make a spreadsheet read a cell as a formula (and `'`, so the rule inverts).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
_RAVEN_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def spreadsheet_text(text: object) -> str:
    """`text` as a spreadsheet shows it and never runs it: `'` in front of a formula start."""
    text = str(text)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def raven_text(text: object) -> str:
    """`text` for a Raven cell: no tab or line break can split it, and no formula runs."""
    return spreadsheet_text(str(text).translate(_RAVEN_ESCAPES))


def printable(text: object) -> str:
    """`text` for a terminal: control characters shown as escapes (`\x1b`), everything else as it is."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
RAVEN_COLUMNS = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                 "High Freq (Hz)", "Begin Path", "Label", "Confidence", "Rank"]


class PredictionWriter:
    """Writes each file's prediction to `stream` in `fmt` as soon as it is added."""

    def __init__(self, stream: TextIO, fmt: str, *, top_k: int = 3, min_confidence: float = 0.0,
                 high_freq_hz: float = 8000.0, can_abstain: bool = False) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
        self.stream, self.fmt, self.top_k, self.min_confidence = stream, fmt, top_k, min_confidence
        self.high_freq_hz = high_freq_hz
        self._documents: list[dict[str, Any]] = []
        self._failures: list[dict[str, str]] = []
        self._selection = 0
        # CSV: the csv module's defaults (quoted where needed, CRLF rows, as RFC 4180 has them);
        # Raven: tabs, no quoting (Raven reads none), so its text cells are escaped instead.
        self._csv = (csv.writer(stream, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None, lineterminator="\n")
                     if fmt == "raven" else csv.writer(stream))
        # A model that can answer `unknown` lists it first, then its k guesses: one more label.
        self.columns = top_k + int(can_abstain)
        if fmt == "csv":
            columns = ["path", "window", "start_s", "end_s"]
            for rank in range(1, self.columns + 1):
                columns += [f"label_{rank}", f"probability_{rank}"]
            self._csv.writerow(columns)
        elif fmt == "raven":
            self._csv.writerow(RAVEN_COLUMNS)

    def add(self, prediction: FilePrediction) -> None:
        getattr(self, f"_add_{self.fmt}")(prediction)
        self.stream.flush()

    def add_failure(self, path: Path, message: str) -> None:
        """Bad files are reported on stderr by the caller; JSON also lists them for programs."""
        self._failures.append({"path": str(path), "error": message})

    def close(self) -> None:
        if self.fmt == "json":
            json.dump({"files": self._documents, "failed": self._failures}, self.stream, indent=2)
            self.stream.write("\n")
        self.stream.flush()

    # ------------------------------------------------------------------ formats

    def _windows(self, prediction: FilePrediction):
        for index, (start, end, row) in enumerate(zip(prediction.starts, prediction.ends, prediction.probabilities)):
            top = prediction.top(row, self.top_k, self.min_confidence)
            if top:
                yield index, float(start), float(end), top

    def _add_table(self, p: FilePrediction) -> None:
        def labels(top: list[tuple[str, float | None]]) -> str:
            return "  ".join(printable(label) if prob is None else f"{printable(label)} {prob:.2f}"
                             for label, prob in top) or "-"

        write = self.stream.write
        write(f"{printable(p.path)}  ({p.duration:.1f} s, {len(p.starts)} window{'s' if len(p.starts) != 1 else ''})\n")
        write(f"  {'whole file':>17}  {labels(p.top(p.summary, self.top_k))}\n")
        for _, start, end, top in self._windows(p):
            write(f"  {start:8.1f}–{end:<8.1f}  {labels(top)}\n")
        write("\n")

    def _add_csv(self, p: FilePrediction) -> None:
        def cells(top: list[tuple[str, float | None]]) -> list[Any]:
            flat: list[Any] = []
            for label, prob in top:
                flat += [spreadsheet_text(label), "" if prob is None else f"{prob:.4f}"]
            return flat + [""] * (2 * self.columns - len(flat))

        path = spreadsheet_text(p.path)
        self._csv.writerow([path, "clip", "0.000", f"{p.duration:.3f}", *cells(p.top(p.summary, self.top_k))])
        for index, start, end, top in self._windows(p):
            self._csv.writerow([path, index, f"{start:.3f}", f"{end:.3f}", *cells(top)])

    def _add_json(self, p: FilePrediction) -> None:
        def labelled(top: list[tuple[str, float | None]]) -> list[dict[str, Any]]:
            return [{"label": label, "probability": None if prob is None else round(prob, 6)} for label, prob in top]

        self._documents.append({
            "path": str(p.path), "duration_s": round(p.duration, 6),
            "summary": labelled(p.top(p.summary, self.top_k)),
            "windows": [{"index": i, "start_s": round(s, 6), "end_s": round(e, 6), "top": labelled(top)}
                        for i, s, e, top in self._windows(p)],
        })

    def _add_raven(self, p: FilePrediction) -> None:
        for _, start, end, top in self._windows(p):
            for rank, (label, prob) in enumerate(top, 1):
                self._selection += 1
                self._csv.writerow([self._selection, "Spectrogram 1", 1, f"{start:.3f}", f"{end:.3f}", "0.0",
                                    f"{self.high_freq_hz:.1f}", raven_text(p.path), raven_text(label),
                                    "" if prob is None else f"{prob:.4f}", rank])
