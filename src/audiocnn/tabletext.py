"""Text tables from outside: read without trusting them, and the cell escaping their writers and
readers share. `inference.formats` writes result tables, `inference.tables` reads them back and
merges them, `datasets.tables` reads annotators' Raven and Audacity tables: all through here, so
the rules below hold for every one.

Reading (`read_text`):

- **regular files only**: the file is opened non-blocking and checked (`fstat`) before a byte
  is read, so a pipe or a device named like a table is refused at once, never waited on or read
  forever;
- **bounded**: at most `MAX_TABLE_BYTES` (64 MiB; a season of Raven selections is a few MB); a
  larger file is one error, read no further;
- **encodings**: UTF-8 with or without a byte-order mark, UTF-16 and UTF-32 with one; other bytes
  are read as Windows-1252 (Latin-1 where it leaves a byte undefined), as older Windows tools
  write them, with a warning. A NUL byte (binary data, or UTF-16 without its mark) is one error;
- **lines** end at `\\n`, `\\r\\n` or `\\r` only. `str.splitlines` also ends them at `\\v`, `\\f`,
  `\\x1c`-`\\x1e`, NEL (`\\x85`) and U+2028/9, any of which a file name may hold.

Walking (`walk`): with a stack, not recursion (a folder 1000 levels deep is fine); links to
folders are not followed (no loops, nothing outside the folder), links to files are; pipes,
devices, link loops and subfolders that cannot be listed are skipped with a warning each.

Escaping: a CSV cell starting with `=`, `+`, `-`, `@`, a tab, a carriage return or `'` gets one
`'` in front, so a spreadsheet shows it as text instead of running it (`spreadsheet_text`;
`spreadsheet_value` undoes it). Raven tables and Audacity label tracks have no quoting, so a
backslash, a tab, NUL and every character `splitlines` breaks at are written as escapes
(`\\\\`, `\\t`, `\\n`, `\\r`, `\\x0c`, `\\x85`, `\\u2028`, ...) and their cells get the same `'`
(`raven_text`; `raven_value` undoes both). Applying a writer to what its reader gives back
returns the cell as written, so `merge` can neutralise every cell it copies without changing ours.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from audiocnn.errors import AudiocnnWarning, ConfigError

#: The largest table read (bytes): far above any real one, far below what would fill memory.
MAX_TABLE_BYTES = 64 * 1024 * 1024
#: Raven's own column names that audiocnn writes and reads.
BEGIN_TIME, END_TIME, BEGIN_PATH = "Begin Time (s)", "End Time (s)", "Begin Path"
RAVEN_COLUMNS = ["Selection", "View", "Channel", BEGIN_TIME, END_TIME, "Low Freq (Hz)", "High Freq (Hz)",
                 BEGIN_PATH, "Label", "Confidence", "Rank"]
#: First characters that make a spreadsheet read a cell as a formula (and `'`, so the rule inverts).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
#: Where a line ends when reading a table (see the module docstring for why not `splitlines`).
LINE_END = re.compile(r"\r\n|\r|\n")

_SHORT_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
#: Every character `str.splitlines` ends a line at, besides those above; and NUL, which no reader takes.
_LINE_BREAKS = "\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_RAVEN_ESCAPES = str.maketrans({**_SHORT_ESCAPES, **{c: f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
                                                     for c in _LINE_BREAKS}})
_RAVEN_ESCAPE = re.compile(r"\\(?:([\\tnr])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4}))")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def spreadsheet_text(text: object) -> str:
    """`text` as a spreadsheet shows it and never runs it: `'` in front of a formula start."""
    text = str(text)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def spreadsheet_value(cell: str) -> str:
    """A cell's text without the `'` that kept a spreadsheet from running it."""
    return cell[1:] if cell.startswith("'") else cell


def raven_text(text: object) -> str:
    """`text` for a Raven or Audacity cell: nothing in it can split a line, and no formula runs."""
    return spreadsheet_text(str(text).translate(_RAVEN_ESCAPES))


def raven_cells(selection: int, begin: float, end: float, path: object, label: object, confidence: float | None,
                rank: int = 1, high_hz: float = 0.0) -> list[str]:
    """One selection in `RAVEN_COLUMNS`' order, as audiocnn writes every Raven table (predictions, search
    hits, reviewed sets): times in seconds to the millisecond, text cells escaped (`raven_text`), an empty
    confidence for `unknown`."""
    return [str(selection), "Spectrogram 1", "1", f"{begin:.3f}", f"{end:.3f}", "0.0", f"{high_hz:.1f}",
            raven_text(path), raven_text(label), "" if confidence is None else f"{confidence:.4f}", str(rank)]


def raven_value(cell: str) -> str:
    """A Raven or Audacity cell's text, its escapes and its `'` undone."""
    def unescaped(match: re.Match[str]) -> str:
        short, byte, wide = match.groups()
        return {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}[short] if short else chr(int(byte or wide, 16))

    return _RAVEN_ESCAPE.sub(unescaped, spreadsheet_value(cell))


def audacity_lines(track: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each line of an Audacity label track that holds a label: its
    start, end and (when there) label texts, the label's escapes undone (`raven_value`). Blank
    lines and a label's frequency line (`\\` first) hold none. The one parser of the format:
    `inference.tables` reads our own tracks back, `datasets.tables` an annotator's."""
    for number, line in enumerate(track, start=1):
        if not line.strip() or line.startswith("\\"):
            continue
        fields = line.split("\t", 2)
        if len(fields) == 3:
            fields[2] = raven_value(fields[2])
        yield number, fields


def printable(text: object) -> str:
    """`text` for a terminal: control characters shown as escapes (`\\x1b`), everything else as it is."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def lines(text: str) -> list[str]:
    """`text` cut into lines at `\\n`, `\\r\\n` or `\\r` only (a trailing line end gives no empty last line)."""
    found = LINE_END.split(text)
    return found[:-1] if found and found[-1] == "" else found


def read_text(path: Path, *, limit: int = MAX_TABLE_BYTES, head: int | None = None) -> str:
    """The text of table `path`, under the rules of the module docstring.

    `head`: read only that many bytes (to tell a table from notes); a character cut at the end
    is dropped, and the size limit does not apply. Raises `ConfigError` naming the file; warns
    (`AudiocnnWarning`) when the bytes are not UTF-8 and are read as Windows-1252.
    """
    data = _read_bytes(Path(path), limit, head)
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding, errors="strict" if head is None else "ignore")
            except UnicodeDecodeError as err:
                raise ConfigError(f"{path}: starts as {encoding.upper()} but is not ({err.reason} at byte "
                                  f"{err.start})") from None
    if b"\x00" in data:
        raise ConfigError(f"{path}: holds NUL bytes: not a text table (binary data, or UTF-16 without its "
                          "byte-order mark; save it as UTF-8)")
    try:
        return data.decode("utf-8", errors="strict" if head is None else "ignore")
    except UnicodeDecodeError:
        pass
    if head is None:
        warnings.warn(f"{path}: not UTF-8; read as Windows-1252 (Latin-1), as older Windows tools write",
                      AudiocnnWarning, stacklevel=2)
    return data.decode("latin-1").translate(_CP1252)


def _cp1252(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:  # the five bytes Windows-1252 leaves undefined: Latin-1's meaning
        return chr(byte)


#: Latin-1's reading of each byte -> Windows-1252's (they differ at 0x80-0x9f only).
_CP1252 = {byte: _cp1252(byte) for byte in range(0x80, 0xA0)}


def _read_bytes(path: Path, limit: int, head: int | None) -> bytes:
    """At most `limit` (or `head`) bytes of a regular file, checked before reading (see `read_text`)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, socket or device)"
            raise ConfigError(f"{path}: {kind}; a table must be a file")
        if head is None and info.st_size > limit:
            raise ConfigError(f"{path}: {info.st_size / 2**20:.1f} MiB, more than the {limit / 2**20:g} MiB a "
                              "table may have")
        wanted = head if head is not None else limit + 1
        chunks: list[bytes] = []  # read(n) would hold n bytes at once, however small the file
        try:
            while wanted > 0 and (chunk := handle.read(min(wanted, 1 << 20))):
                chunks.append(chunk)
                wanted -= len(chunk)
        except OSError as err:
            raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None
    if head is None and wanted <= 0:  # it grew while read
        raise ConfigError(f"{path}: more than the {limit / 2**20:g} MiB a table may have")
    return b"".join(chunks)


def walk(folder: Path, wanted: Callable[[str], bool]) -> list[Path]:
    """Regular files (or links to one) below `folder` whose name `wanted` accepts, sorted.

    As `audio.audio_files` walks for recordings: iteratively, folder links not followed. What
    cannot be used (a pipe or device with a wanted name, a link loop, a link to a folder, a
    subfolder that cannot be listed) is skipped with an `AudiocnnWarning` naming it, so one odd
    entry never stops the walk; `folder` itself unlistable is the caller's `OSError`.
    """
    found: list[Path] = []
    stack = [Path(folder)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError as err:
            if current == Path(folder):
                raise
            _skipped(current, err.strerror or str(err))
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_symlink() and entry.is_dir():
                    _skipped(Path(entry.path), "a link to a folder, not followed")
                elif wanted(entry.name):
                    if entry.is_file():
                        found.append(Path(entry.path))
                    elif os.path.exists(entry.path):  # a dangling link has nothing to read: left out
                        _skipped(Path(entry.path), "not a regular file: a pipe, socket or device")
            except OSError as err:  # a link loop (ELOOP), an entry gone or unreadable meanwhile
                _skipped(Path(entry.path), err.strerror or str(err))
    return sorted(found)


def _skipped(path: Path, why: str) -> None:
    warnings.warn(f"{path}: skipped ({why})", AudiocnnWarning, stacklevel=3)
