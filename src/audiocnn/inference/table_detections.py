"""Detections read back from a result table, whatever its format, so that they can be queued for review
(`audiocnn segments`) from any earlier run, without classifying again.

Every format `predict` writes that names its recordings is read: `raven` (one row per detection),
`kaleidoscope` (the same, the path split into INDIR, FOLDER and IN FILE), `csv` (one row per window,
its labels ranked), `scores` (one row per window, every class's probability) and `json` (each file's
windows, ranked). A table row is a window's label: each listed label with a probability is one
detection (`unknown`, which has none, is never queued). The window's **margin** is how far its top
label's probability is above the second's, where the table lists a second (a window torn between two
labels is one to review). `scores` lists every class, so its windows give their `top_k` labels.

The tables are `inference.tables`' `ResultTable`s: read without trusting them (bounded, every cell
unescaped), so a recording's name comes back as it was written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from audiocnn.errors import AudiocnnError, ConfigError, item_failure
from audiocnn.inference.detections import Detection
from audiocnn.inference.formats import SCORE_INDEX
from audiocnn.inference.predictor import UNKNOWN
from audiocnn.inference.tables import ResultTable, read_result_table
from audiocnn.tabletext import BEGIN_PATH, BEGIN_TIME, END_TIME


@dataclass(frozen=True)
class TableDetection:
    """One detection of a table: the recording's path as the table wrote it, and its window's margin
    (top probability minus the second's; None when the table lists one label there)."""

    recording: str
    detection: Detection
    margin: float | None = None


def read_detections(tables: list[Path], top_k: int, problems: list[str]) -> Iterator[tuple[Path, TableDetection]]:
    """(table, detection) of every table in turn; a table that cannot be read is one line in `problems`
    (whatever it raised), and the others are still read."""
    for path in tables:
        try:
            found = table_detections(read_result_table(path), top_k)
        except AudiocnnError as err:
            problems.append(str(err))
            continue
        except Exception as err:  # noqa: BLE001 - a table's surprise is that table's line
            problems.append(item_failure(path, err))
            continue
        for entry in found:
            yield path, entry


def recording_path(written: str, table: Path) -> Path:
    """The recording a table names, as an absolute path: as written (absolute, or from here), else beside
    the table (so two tables naming one recording differently name one recording)."""
    path = Path(written)
    beside = table.parent / path
    return (beside if not path.is_absolute() and not path.exists() and beside.exists() else path).resolve()


def table_detections(table: ResultTable, top_k: int = 1) -> list[TableDetection]:
    """Every detection `table` lists, in its order; `top_k`: labels per window taken from a `scores` table.
    A `ConfigError` names the table when it lacks a column its format needs or a cell is not a number."""
    try:
        windows = _WINDOW_READERS[table.fmt](table, top_k)
    except (KeyError, ValueError, IndexError, TypeError) as err:
        raise ConfigError(f"{table.path}: a {table.fmt} table audiocnn cannot read detections from "
                          f"({type(err).__name__}: {err})") from None
    found: list[TableDetection] = []
    for (recording, start, end), labels in windows:
        ranked = sorted(((p, label) for label, p in labels if p is not None and label != UNKNOWN), reverse=True)
        margin = ranked[0][0] - ranked[1][0] if len(ranked) > 1 else None
        listed = ranked[:top_k] if table.fmt == "scores" else ranked  # a scores table lists every class
        for rank, (probability, label) in enumerate(listed, 1):
            found.append(TableDetection(recording, Detection(start, end, label, probability, rank),
                                        margin if rank == 1 else None))
    return found


Window = tuple[tuple[str, float, float], list[tuple[str, float | None]]]


def _rows(table: ResultTable) -> list[dict[str, str]]:
    return [dict(zip(table.header, row)) for row in table.rows]


def _number(cell: str) -> float | None:
    return float(cell) if cell.strip() else None


def _grouped(keyed: list[tuple[tuple[str, float, float], str, float | None]]) -> list[Window]:
    """Rows of one label each, grouped into their windows (recording, start, end), in first-seen order."""
    windows: dict[tuple[str, float, float], list[tuple[str, float | None]]] = defaultdict(list)
    for key, label, probability in keyed:
        windows[key].append((label, probability))
    return list(windows.items())


def _raven(table: ResultTable, _: int) -> list[Window]:
    return _grouped([((row[BEGIN_PATH], float(row[BEGIN_TIME]), float(row[END_TIME])), row["Label"],
                      _number(row["Confidence"])) for row in _rows(table)])


def _kaleidoscope(table: ResultTable, _: int) -> list[Window]:
    def path(row: dict[str, str]) -> str:
        return str(Path(row["INDIR"], row["FOLDER"], row["IN FILE"]))

    return _grouped([((path(row), float(row["OFFSET"]), float(row["OFFSET"]) + float(row["DURATION"])),
                      row["AUTO ID*"], _number(row["CONFIDENCE"])) for row in _rows(table)])


def _csv(table: ResultTable, _: int) -> list[Window]:
    ranks = sum(1 for column in table.header if column.startswith("label_"))
    return [((row["path"], float(row["start_s"]), float(row["end_s"])),
             [(row[f"label_{k}"], _number(row[f"probability_{k}"])) for k in range(1, ranks + 1) if row[f"label_{k}"]])
            for row in _rows(table) if row["window"] != "clip"]


def _scores(table: ResultTable, top_k: int) -> list[Window]:
    """Each window's `top_k` most probable classes, and one more for the margin (dropped again by the caller)."""
    classes = table.header[len(SCORE_INDEX):]
    windows: list[Window] = []
    for row in table.rows:
        ranked = sorted(zip(map(float, row[len(SCORE_INDEX):]), classes), reverse=True)[: top_k + 1]
        windows.append(((row[0], float(row[1]), float(row[2])), [(label, p) for p, label in ranked]))
    return windows


def _json(table: ResultTable, _: int) -> list[Window]:
    return [((entry["path"], float(window["start_s"]), float(window["end_s"])),
             [(top["label"], top["probability"]) for top in window["top"]])
            for entry in table.files for window in entry.get("windows", [])]


_WINDOW_READERS = {"raven": _raven, "kaleidoscope": _kaleidoscope, "csv": _csv, "scores": _scores, "json": _json}
