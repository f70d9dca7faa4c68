"""Selection tables read into selections: Raven selection tables and Audacity label files.

Only reading lives here (which recording, from when to when, which label, and which line of
which file said so); turning selections into training clips is `annotated`'s job. A bad row
is a problem naming `file:line`, never an exception: one typo in a table of 2000 selections
must not hide the other 1999, and `audiocnn data info` lists every one. Files are read as
`audiocnn.tabletext` says (regular files of at most 64 MiB; UTF-8, UTF-16 with its mark, or
Windows-1252 with a warning); one that cannot be read is one problem naming it.

- **Raven** (Pro/Lite) writes tab-separated text with a header row; `Begin Time (s)` and
  `End Time (s)` are required, the label column is named by its users (`Annotation`,
  `Label`, `Species`, `Class`, `Sound Type`, ...). `Begin Path` or `Begin File` may name the
  recording; a table made over a file sequence then gives `File Offset (s)`, the begin time
  within that file. Raven lists a selection once per view (Waveform 1, Spectrogram 1): rows
  repeating a `Selection` number are those copies and are read once.
- **Audacity** label files hold `start<TAB>end<TAB>label` lines; lines starting with a
  backslash carry a label's frequency range and are skipped. `audiocnn predict --format
  audacity` writes the probability after the label (`dog 0.9166`); that number is dropped, so
  a reviewed track of our own trains as the labels it shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audiocnn.errors import AudiocnnError
from audiocnn.tabletext import BEGIN_PATH, BEGIN_TIME, END_TIME, audacity_lines, lines, read_text

#: Label columns Raven users name, in the order looked for (case does not matter).
LABEL_COLUMNS = ("Annotation", "Label", "Species", "Class", "Sound Type")
#: Columns naming a selection's recording: a full path (often the annotator's), or a file name.
RECORDING_COLUMNS = (BEGIN_PATH, "Begin File")
FILE_OFFSET = "File Offset (s)"
#: The probability `predict --format audacity` writes after a label: four decimals, 0 to 1.
_OWN_CONFIDENCE = re.compile(r" (?:0\.\d{4}|1\.0000)$")
#: What `table_kind` reads of a text file to tell a table from notes (a log may be large).
SNIFF_BYTES = 1 << 16


@dataclass(frozen=True)
class Selection:
    """One annotated stretch of a recording, with the `file:line` it was read from."""

    recording: Path
    begin_s: float
    end_s: float
    label: str
    where: str


def table_kind(path: Path, named_after_recording: bool) -> str | None:
    """'raven', 'audacity' or None (not a table: a README, notes, ...).

    A Raven table says so in its header. An Audacity label file has no header: it is one when
    it is named after a recording beside it (`rec.txt`), or when its first line reads as a label.
    """
    found = [line for line in _text(path, SNIFF_BYTES)[0] if line.strip()]
    if found and BEGIN_TIME in _fields(found[0]):
        return "raven"
    first = next((line for line in found if not line.startswith("\\")), None)
    looks_like_labels = first is not None and len(_fields(first)) >= 2 and all(
        _seconds(v) is not None for v in _fields(first)[:2])
    return "audacity" if named_after_recording or looks_like_labels else None


#: What resolves a recording a Raven row names: `find(name, table)` gives the recording, or why none.
Finder = Callable[[str, Path], "Path | str"]


def read_table(path: Path, kind: str, beside: Path | None, find: Finder,
               label_column: str | None = None) -> tuple[list[Selection], list[str]]:
    """The selections of one table, and its problems.

    `beside` is the recording the table is named after (None: none sits beside it);
    `find(name, table)` resolves a recording a Raven row names: the recording, or a sentence
    saying why there is none (not found, outside the dataset root, ...).
    """
    lines, problem = _text(path)
    if problem:
        return [], [problem]
    if kind == "raven":
        selections, problems = _raven(path, lines, beside, find, label_column)
    else:
        selections, problems = _audacity(path, lines, beside)
    if not selections and not any(p.startswith(f"{path}: ") for p in problems):
        problems.append(f"{path}: no usable selections in this table")
    return selections, problems


def _raven(path: Path, lines: list[str], beside: Path | None, find: Finder,
           label_column: str | None) -> tuple[list[Selection], list[str]]:
    first_row = next((i for i, line in enumerate(lines) if line.strip()), len(lines)) + 1
    header = _fields(lines[first_row - 1]) if first_row <= len(lines) else []
    column = {name.lower(): i for i, name in reversed(list(enumerate(header)))}
    found = ", ".join(h for h in header if h) or "none"
    wanted = [label_column] if label_column else list(LABEL_COLUMNS)
    label_name = next((name for name in wanted if name.lower() in column), None)
    if label_name is None:
        if label_column:
            return [], [f"{path}: no label column {label_column!r} (found: {found})"]
        return [], [f"{path}: no label column (looked for {', '.join(LABEL_COLUMNS)}; found: {found}); "
                    "name it with data.label_column (--label-column)"]
    if END_TIME.lower() not in column:
        return [], [f"{path}: no {END_TIME!r} column (found: {found})"]
    names_recording = [name for name in RECORDING_COLUMNS if name.lower() in column]
    if beside is None and not names_recording:
        return [], [f"{path}: which recording? No {' or '.join(RECORDING_COLUMNS)} column, and no recording "
                    f"beside the table with its name (rec.wav for rec.Table.1.selections.txt or rec.txt)"]
    selections, problems, seen = [], [], set()
    for number, line in enumerate(lines[first_row:], start=first_row + 1):
        if not line.strip():
            continue
        fields = _fields(line)

        def get(name: str, fields: list[str] = fields) -> str:
            """The row's cell in column `name` ('' if the table or the row has none)."""
            i = column.get(name.lower())
            return fields[i] if i is not None and i < len(fields) else ""

        where = f"{path}:{number}"
        if get("Selection"):
            if get("Selection") in seen:  # the same selection in another view
                continue
            seen.add(get("Selection"))
        named = next((get(name) for name in names_recording if get(name)), "")
        recording = find(named, path) if named else beside
        if not isinstance(recording, Path):
            problems.append(f"{where}: recording {named} {recording}" if named else
                            f"{where}: names no recording ({' or '.join(names_recording)} is empty)")
            continue
        times = _times(get(BEGIN_TIME), get(END_TIME), where, problems)
        if times is None:
            continue
        begin, end = times
        offset = _seconds(get(FILE_OFFSET)) if named else None
        if offset is not None:  # a table over a file sequence: begin within the named file
            begin, end = offset, offset + (end - begin)
        label = get(label_name)
        if not label:
            problems.append(f"{where}: empty label ({label_name})")
            continue
        selections.append(Selection(recording, begin, end, label, where))
    return selections, problems


def _audacity(path: Path, lines: list[str], beside: Path | None) -> tuple[list[Selection], list[str]]:
    if beside is None:
        return [], [f"{path}: an Audacity label file, but no recording beside it with its name "
                    f"({path.stem}.wav or another audio format)"]
    selections, problems = [], []
    for number, fields in audacity_lines(lines):
        where = f"{path}:{number}"
        if len(fields) < 2:
            problems.append(f"{where}: expected start<TAB>end<TAB>label, got {fields[0].strip()[:40]!r}")
            continue
        times = _times(fields[0], fields[1], where, problems)
        if times is None:
            continue
        label = _OWN_CONFIDENCE.sub("", fields[2].strip()) if len(fields) > 2 else ""
        if not label:
            problems.append(f"{where}: empty label")
            continue
        selections.append(Selection(beside, times[0], times[1], label, where))
    return selections, problems


def _times(begin_text: str, end_text: str, where: str, problems: list[str]) -> tuple[float, float] | None:
    """(begin, end) seconds, or None with the problem noted: not numbers, or not end > begin."""
    begin, end = _seconds(begin_text), _seconds(end_text)
    for name, text, value in (("begin", begin_text, begin), ("end", end_text, end)):
        if value is None:
            problems.append(f"{where}: {name} time {text.strip()!r} is not a number of seconds")
            return None
    assert begin is not None and end is not None
    if end <= begin:
        problems.append(f"{where}: end {end:g} s is not after begin {begin:g} s")
        return None
    return begin, end


def _seconds(text: str) -> float | None:
    """A finite number of seconds; a decimal comma (as some locales write) is read as a point."""
    text = text.strip()
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _fields(line: str) -> list[str]:
    return [field.strip() for field in line.rstrip("\r\n").split("\t")]


def _text(path: Path, limit: int | None = None) -> tuple[list[str], str | None]:
    """The file's lines, or a problem (see `audiocnn.tabletext.read_text`: a regular file of at most
    64 MiB, UTF-8 or UTF-16 with its mark, else Windows-1252 with a warning); only the first
    `limit` bytes if given (the last line may then be cut)."""
    try:
        return lines(read_text(path, head=limit)), None
    except AudiocnnError as err:
        return [], str(err)
