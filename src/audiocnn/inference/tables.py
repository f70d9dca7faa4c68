"""Read result tables back, and join the tables of several runs into one (`audiocnn merge`).

Each reader undoes what `formats` did to keep text from breaking a file or acting on a
spreadsheet: the `'` in front of a formula start is dropped, Raven's and Audacity's `\\t`,
`\\n`, `\\r` and `\\\\` become the characters again. So a file name with commas, quotes,
tabs, non-ASCII letters or a leading `=` reads back as it was.

`merge` joins the tables of shards (`predict --shard K/N`) or the per-recording tables of
`--out-dir` into one. Rows keep their order within a recording, recordings are put in path
order (the order one run over a folder writes them), and Raven's selections are numbered
again from 1, so two shards merged are the same table as one run over the whole folder.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audiocnn import atomic
from audiocnn.errors import ConfigError
from audiocnn.inference.formats import KALEIDOSCOPE_COLUMNS, RAVEN_COLUMNS, SCORE_INDEX, SUFFIXES

#: Formats `merge` joins, and the column naming each row's recording.
MERGEABLE = {"csv": "path", "scores": "file", "raven": "Begin Path", "kaleidoscope": None, "json": None}
_RAVEN_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def spreadsheet_value(cell: str) -> str:
    """A cell's text without the `'` that kept a spreadsheet from running it."""
    return cell[1:] if cell.startswith("'") else cell


def raven_value(cell: str) -> str:
    """A Raven or Audacity cell's text, its escapes undone."""
    text, out, i = spreadsheet_value(cell), [], 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in _RAVEN_UNESCAPES:
            out.append(_RAVEN_UNESCAPES[pair])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV result table (csv, kaleidoscope, scores), text as it was before writing."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [spreadsheet_value(cell) for cell in next(reader, [])]
        return [dict(zip(header, map(spreadsheet_value, row))) for row in reader]


def read_raven(path: Path) -> list[dict[str, str]]:
    """Rows of a Raven selection table (tab-separated, no quoting)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    return [dict(zip(header, map(raven_value, line.split("\t")))) for line in lines[1:] if line]


def read_audacity(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, label text) of an Audacity label track; frequency lines (`\\t...`) are skipped."""
    labels = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("\\"):
            continue
        start, end, text = line.split("\t", 2)
        labels.append((float(start), float(end), raven_value(text)))
    return labels


def table_format(path: Path) -> str:
    """Which result format a file holds, from its first line (or its name for JSON)."""
    if path.suffix == ".json":
        return "json"
    with Path(path).open(newline="", encoding="utf-8") as handle:
        first = handle.readline().rstrip("\r\n")
    if first == "\t".join(RAVEN_COLUMNS):
        return "raven"
    header = next(csv.reader([first]), [])
    if header == KALEIDOSCOPE_COLUMNS:
        return "kaleidoscope"
    if header[: len(SCORE_INDEX)] == SCORE_INDEX:
        return "scores"
    if header[:4] == ["path", "window", "start_s", "end_s"]:
        return "csv"
    raise ConfigError(f"{path}: not a result table audiocnn can merge (csv, scores, raven, kaleidoscope or json)")


def result_tables(paths: Iterable[Path]) -> list[Path]:
    """Files as given, folders searched for result tables (`--out-dir`'s `*.audiocnn.*`)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            tables = sorted(p for suffix in set(SUFFIXES.values()) for p in path.rglob(f"*{suffix}"))
            if not tables:
                raise ConfigError(f"{path}: holds no audiocnn result tables (*.audiocnn.*)")
            found += tables
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"{path}: no such file or folder")
    return found


def merge(paths: list[Path], out: Path) -> tuple[str, int]:
    """Join result tables into `out` (written atomically); returns (format, rows written)."""
    formats = {path: table_format(path) for path in paths}
    kinds = set(formats.values())
    if len(kinds) != 1:
        listed = ", ".join(f"{p.name}: {f}" for p, f in formats.items())
        raise ConfigError(f"the tables to merge hold different formats ({listed}); merge one format at a time")
    fmt = kinds.pop()
    with atomic.replaced(out) as partial:
        rows = _merge_json(paths, partial) if fmt == "json" else _merge_rows(fmt, paths, partial)
    return fmt, rows


def _merge_rows(fmt: str, paths: list[Path], target: Path) -> int:
    """Row formats: the header once, then each recording's rows in path order, as they were written."""
    raven = fmt == "raven"
    by_recording: dict[str, list[list[str]]] = {}
    header: list[str] | None = None
    for path in paths:
        raw_header, raw_rows = _raw_rows(path, raven)
        if header is None:
            header = raw_header
        elif raw_header != header:
            raise ConfigError(f"{path}: its columns differ from {paths[0]}'s (another model, or other options?)")
        key = _recording_key(fmt, header)
        for row in raw_rows:
            by_recording.setdefault(key(row), []).append(row)
    assert header is not None
    order = sorted(by_recording, key=lambda name: Path(name).parts)
    count = 0
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = (csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None, lineterminator="\n")
                  if raven else csv.writer(handle))
        writer.writerow(header)
        for name in order:
            for row in by_recording[name]:
                count += 1
                writer.writerow([str(count), *row[1:]] if raven else row)
    return count


def _raw_rows(path: Path, raven: bool) -> tuple[list[str], list[list[str]]]:
    """Header and rows with their cells as written (escapes kept: they are written back as they are)."""
    text = path.read_text(encoding="utf-8")
    if raven:
        lines = [line.split("\t") for line in text.splitlines() if line]
    else:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    if not lines:
        raise ConfigError(f"{path}: empty table")
    return lines[0], lines[1:]


def _recording_key(fmt: str, header: list[str]):  # noqa: ANN202 - a row -> recording function
    """The recording a row belongs to, as text that sorts in path order."""
    if fmt == "kaleidoscope":
        indir, folder, name = (header.index(c) for c in ("INDIR", "FOLDER", "IN FILE"))
        return lambda row: str(Path(spreadsheet_value(row[indir])) / spreadsheet_value(row[folder])
                               / spreadsheet_value(row[name]))
    column = header.index(MERGEABLE[fmt])
    value = raven_value if fmt == "raven" else spreadsheet_value
    return lambda row: value(row[column])


def _merge_json(paths: list[Path], target: Path) -> int:
    files: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for path in paths:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            files += document["files"]
            failed += document.get("failed", [])
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path}: not an audiocnn JSON result ({err})") from None
    files.sort(key=lambda entry: Path(entry["path"]).parts)
    target.write_text(json.dumps({"files": files, "failed": failed}, indent=2) + "\n", encoding="utf-8")
    return len(files)
