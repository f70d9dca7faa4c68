"""Small helpers the dataset loaders share: metadata CSVs and audio files on disk."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path

from audiocnn import audio
from audiocnn.audio import AUDIO_EXTENSIONS
from audiocnn.datasets.base import Clip
from audiocnn.errors import DatasetError, item_failure


def read_csv(path: Path, required: list[str]) -> list[dict[str, str]]:
    """Rows of a metadata CSV as dicts; a missing file or column is a DatasetError naming it."""
    if not path.is_file():
        raise DatasetError(f"{path}: metadata file not found (is --root the dataset folder?)")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in required if c not in columns]
            if missing:
                found = ", ".join(columns) or "none"
                raise DatasetError(f"{path}: missing column(s) {', '.join(missing)} (found: {found})")
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a UTF-8 text CSV file") from None
    except csv.Error as err:
        raise DatasetError(f"{path}: malformed CSV ({err})") from None


def resolve_audio(path: Path) -> Path | None:
    """`path` itself, or the same stem with another audio extension (a WAV set converted to FLAC)."""
    if path.is_file():
        return path
    for ext in AUDIO_EXTENSIONS:
        candidate = path.with_suffix(ext)
        if candidate.is_file():
            return candidate
    return None


def parse_fold(value: str, where: str) -> int:
    """A fold number from metadata: a whole number >= 1, else a DatasetError naming `where`."""
    try:
        fold = int(value)
    except ValueError:
        raise DatasetError(f"{where}: fold {value!r} is not a whole number") from None
    if fold < 1:
        raise DatasetError(f"{where}: fold {fold} must be 1 or more")
    return fold


def official_clips(
    meta: Path,
    rows: list[dict[str, str]],
    classes: list[str],
    *,
    label: str,
    index: str,
    audio: Callable[[dict[str, str], int], Path],
    group: Callable[[dict[str, str]], str],
) -> tuple[list[Clip], list[str]]:
    """Clips from an official metadata CSV, and the problems found on the way.

    Each row's `label` column must name one of `classes` and its `index` column must be that
    class's official number; `audio(row, fold)` says where the file should be (any audio
    extension is accepted for it), `group(row)` which source recording it was cut from.
    """
    root = meta.parent.parent
    clips, problems = [], []
    for line, row in enumerate(rows, start=2):
        where = f"{meta}:{line}"
        name = row[label]
        if name not in classes:
            problems.append(f"{where}: unknown label {name!r}")
            continue
        if row[index] != str(classes.index(name)):
            problems.append(f"{where}: {index} {row[index]} does not match {label} {name!r}")
        fold = parse_fold(row["fold"], where)
        expected = audio(row, fold)
        path = resolve_audio(expected)
        if path is None:
            problems.append(f"{where}: missing audio file {expected.relative_to(root)}")
            continue
        clips.append(Clip(path, name, fold, group(row)))
    return clips, problems


def unreadable(paths: Iterable[Path]) -> dict[Path, str]:
    """Each file (once) whose header cannot be read as audio, with the one line that says why.

    A header read costs a millisecond, so training, `data info` and `explain-dataset` can find
    the files that would fail before hours of work, not an epoch into it. Any exception counts,
    not only `AudioError`: a library's surprise on one file is that file's problem.
    """
    bad: dict[Path, str] = {}
    for path in dict.fromkeys(paths):
        try:
            audio.info(path)
        except Exception as err:  # noqa: BLE001 - whatever it is, it is this file's alone
            bad[path] = item_failure(path, err)
    return bad
