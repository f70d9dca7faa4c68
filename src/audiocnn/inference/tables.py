"""Read result tables back, and join the tables of several runs into one (`audiocnn merge`).

Each reader undoes what `formats` did to keep text from breaking a file or acting on a
spreadsheet: the `'` in front of a formula start is dropped, Raven's and Audacity's escapes
(`\\t`, `\\n`, `\\\\`, `\\u2028`, ...) become the characters again. So a file name with commas,
quotes, tabs, line breaks of any kind, non-ASCII letters or a leading `=` reads back as it was.
Files are read as `audiocnn.tabletext` says: regular files of at most 64 MiB, UTF-8 (or UTF-16
with its mark, or Windows-1252 with a warning), lines ended at `\\n`, `\\r\\n` or `\\r` only.

`merge` joins the tables of shards (`predict --shard K/N`) or the per-recording tables of
`--out-dir` into one. Rows keep their order within a recording, recordings are put in path
order (the order one run over a folder writes them), and Raven's selections are numbered
again from 1, so two shards merged are the same table as one run over the whole folder.
Tables may have been edited or damaged since they were written, so every cell copied is
neutralised again as `formats` writes it (a no-op on our own cells), and a row with more or
fewer cells than its header is refused.

A merged table that silently lacks a shard is a lost result, so `merge` reads every table
first and writes nothing if any one cannot be joined: each bad table is one line (an
unexpected exception too, as `errors.item_failure` words it), and the caller exits non-zero.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiocnn import atomic
from audiocnn.errors import ConfigError, item_failure
from audiocnn.inference.formats import KALEIDOSCOPE_COLUMNS, SCORE_INDEX, SUFFIXES
from audiocnn.tabletext import (
    RAVEN_COLUMNS,
    audacity_lines,
    lines,
    raven_text,
    raven_value,
    read_text,
    spreadsheet_text,
    spreadsheet_value,
    walk,
)

#: Formats `merge` joins, and the column naming each row's recording.
MERGEABLE = {"csv": "path", "scores": "file", "raven": "Begin Path", "kaleidoscope": None, "json": None}
#: The name endings `merge` looks for in folders: those of the formats it joins.
MERGEABLE_SUFFIXES = tuple(SUFFIXES[fmt] for fmt in MERGEABLE)


@dataclass
class ResultTable:
    """One result table as `merge` joins it: cells neutralised, every row as long as the header."""

    path: Path
    fmt: str
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)  # json
    failed: list[dict[str, Any]] = field(default_factory=list)  # json


@dataclass
class Merged:
    """What `merge` did: the format and rows (files for JSON) written, or why nothing was."""

    fmt: str | None
    rows: int
    failures: list[str]  # one line per table that could not be joined; any at all: nothing written


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV result table (csv, kaleidoscope, scores), text as it was before writing; a
    column named twice (a class called `file`) gives its first cell."""
    (_, header), *rows = _csv_rows(Path(path), read_text(Path(path)))
    header = [spreadsheet_value(cell) for cell in header]
    found = []
    for _, row in rows:
        cells: dict[str, str] = {}
        for name, cell in zip(header, row):  # a class named `file` in a score table: the first column wins
            cells.setdefault(name, spreadsheet_value(cell))
        found.append(cells)
    return found


def read_raven(path: Path) -> list[dict[str, str]]:
    """Rows of a Raven selection table (tab-separated, no quoting)."""
    found = [line.split("\t") for line in lines(read_text(Path(path))) if line]
    header = found[0] if found else []
    return [dict(zip(header, map(raven_value, row))) for row in found[1:]]


def read_audacity(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, label text) of an Audacity label track; frequency lines (`\\t...`) are skipped."""
    labels = []
    for number, fields in audacity_lines(lines(read_text(Path(path)))):
        try:
            start, end, text = fields
            labels.append((float(start), float(end), text))
        except ValueError:
            raise ConfigError(f"{path}:{number}: not start<TAB>end<TAB>label") from None
    return labels


def table_format(path: Path, text: str | None = None) -> str:
    """Which result format a file holds, from its first line (or its name for JSON)."""
    if path.suffix == ".json":
        return "json"
    first = lines(read_text(path, head=1 << 16) if text is None else text[: 1 << 16])[:1]
    first_line = first[0] if first else ""
    if first_line == "\t".join(RAVEN_COLUMNS):
        return "raven"
    header = next(csv.reader([first_line]), []) if first_line else []
    if header == KALEIDOSCOPE_COLUMNS:
        return "kaleidoscope"
    if header[: len(SCORE_INDEX)] == SCORE_INDEX:
        return "scores"
    if header[:4] == ["path", "window", "start_s", "end_s"]:
        return "csv"
    raise ConfigError(f"{path}: not an audiocnn result table (csv, scores, raven, kaleidoscope or json)")


def read_result_table(path: Path) -> ResultTable:
    """One table to merge, checked: a `ConfigError` naming the file (and line) if it cannot be joined."""
    path = Path(path)
    text = read_text(path)
    if not text.strip():
        raise ConfigError(f"{path}: empty table")
    fmt = table_format(path, text)
    if fmt == "json":
        return _json_table(path, text)
    raven = fmt == "raven"
    numbered = [(n, line.split("\t")) for n, line in enumerate(lines(text), start=1) if line] if raven \
        else _csv_rows(path, text)

    def neutral(cell: str) -> str:
        """The cell as `formats` writes its text: the same cell for ours, a harmless one for any other."""
        return raven_text(raven_value(cell)) if raven else spreadsheet_text(spreadsheet_value(cell))

    (_, header), body = numbered[0], numbered[1:]
    for number, row in body:
        if len(row) != len(header):
            raise ConfigError(f"{path}:{number}: {len(row)} cells where the header has {len(header)}: the table "
                              "is cut or damaged")
    return ResultTable(path, fmt, [neutral(cell) for cell in header],
                       [[neutral(cell) for cell in row] for _, row in body])


def _csv_rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """(line, cells) of each CSV row that is not blank; the line is where the row ends (a quoted
    cell may span lines). `ConfigError` if there is none, or the text is not CSV."""
    rows, reader = [], csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, row) for row in reader if row]
    except csv.Error as err:
        raise ConfigError(f"{path}:{reader.line_num}: not CSV ({err})") from None
    if not rows:
        raise ConfigError(f"{path}: empty table")
    return rows


def _json_table(path: Path, text: str) -> ResultTable:
    """An audiocnn JSON result, its shape checked (`{"files": [{"path": ...}, ...], "failed": [...]}`)."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as err:  # RecursionError: nested thousands of levels deep
        detail = err if isinstance(err, ValueError) else "nested too deeply"
        raise ConfigError(f"{path}: not an audiocnn JSON result ({' '.join(str(detail).split())[:200]})") from None
    files = document.get("files") if isinstance(document, dict) else None
    failed = document.get("failed", []) if isinstance(document, dict) else None
    if not (isinstance(files, list) and isinstance(failed, list)
            and all(isinstance(entry, dict) and isinstance(entry.get("path"), str) for entry in files)
            and all(isinstance(entry, dict) for entry in failed)):
        raise ConfigError(f"{path}: not an audiocnn JSON result (expected \"files\": a list of objects with a "
                          "\"path\", and \"failed\": a list of objects)")
    return ResultTable(path, "json", files=files, failed=failed)


def result_tables(paths: list[Path], leave_out: Path | None = None) -> list[Path]:
    """Files as given, folders searched (iteratively) for the result tables `merge` joins
    (`--out-dir`'s `*.audiocnn.csv`, ...); `leave_out`: a table found in a folder that is this
    file (an earlier merge's output) is not joined again."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            tables = walk(path, lambda name: name.endswith(MERGEABLE_SUFFIXES))
            if not tables:
                raise ConfigError(f"{path}: holds no audiocnn result tables that merge joins "
                                  f"(*{', *'.join(MERGEABLE_SUFFIXES)})")
            found += [table for table in tables if not _same_file(table, leave_out)]
        elif path.exists() or path.is_symlink():  # a pipe or a link loop is refused when read, by name
            found.append(path)
        else:
            raise ConfigError(f"{path}: no such file or folder")
    return found


def _same_file(path: Path, other: Path | None) -> bool:
    try:
        return other is not None and other.exists() and os.path.samefile(path, other)
    except OSError:
        return False


def merge(paths: list[Path], out: Path) -> Merged:
    """Join result tables into `out` (written atomically), or write nothing and say why (`Merged.failures`)."""
    tables: list[ResultTable] = []
    failures: list[str] = []
    for path in paths:
        try:
            tables.append(read_result_table(path))
        except Exception as err:  # any one table's surprise is one line; the others are still checked
            failures.append(item_failure(path, err))
    kinds = [table.fmt for table in tables]
    fmt = max(kinds, key=kinds.count, default=None)  # the most common; ties: the first table's
    first = next((table for table in tables if table.fmt == fmt), None)
    for table in tables:
        if table.fmt != fmt:
            failures.append(f"{table.path}: a {table.fmt} table, the others are {fmt}; merge one format at a time")
        elif first is not None and table.header != first.header:
            failures.append(f"{table.path}: its columns differ from {first.path}'s (another model, or other options?)")
    if failures or fmt is None:
        return Merged(None, 0, failures)
    with atomic.replaced(out) as partial:
        rows = _write_json(tables, partial) if fmt == "json" else _write_rows(fmt, tables, partial)
    return Merged(fmt, rows, [])


def _write_rows(fmt: str, tables: list[ResultTable], target: Path) -> int:
    """Row formats: the header once, then each recording's rows in path order, as they were written."""
    raven = fmt == "raven"
    header = tables[0].header
    key = _recording_key(fmt, header)
    by_recording: dict[str, list[list[str]]] = {}
    for table in tables:
        for row in table.rows:
            by_recording.setdefault(key(row), []).append(row)
    count = 0
    with target.open("w", newline="", encoding="utf-8") as handle:
        write: Callable[[list[str]], Any] = ((lambda cells: handle.write("\t".join(cells) + "\n")) if raven
                                             else csv.writer(handle).writerow)
        write(header)
        for name in sorted(by_recording, key=lambda name: Path(name).parts):
            for row in by_recording[name]:
                count += 1
                write([str(count), *row[1:]] if raven else row)
    return count


def _recording_key(fmt: str, header: list[str]) -> Callable[[list[str]], str]:
    """The recording a row belongs to, as text that sorts in path order."""
    if fmt == "kaleidoscope":
        indir, folder, name = (header.index(c) for c in ("INDIR", "FOLDER", "IN FILE"))
        return lambda row: str(Path(spreadsheet_value(row[indir])) / spreadsheet_value(row[folder])
                               / spreadsheet_value(row[name]))
    column = header.index(MERGEABLE[fmt])
    value = raven_value if fmt == "raven" else spreadsheet_value
    return lambda row: value(row[column])


def _write_json(tables: list[ResultTable], target: Path) -> int:
    files = sorted((entry for table in tables for entry in table.files), key=lambda entry: Path(entry["path"]).parts)
    failed = [entry for table in tables for entry in table.failed]
    target.write_text(json.dumps({"files": files, "failed": failed}, indent=2) + "\n", encoding="utf-8")
    return len(files)
