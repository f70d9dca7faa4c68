"""A dataset listed in a CSV: columns `path,label` and optionally `fold` and `group`.

Paths are relative to the CSV's folder (or absolute). With a `fold` column those folds are
used as given; without one, stratified folds are assigned from a fixed seed. A `group`
column (recording session, site, individual animal) keeps related clips in one fold.
"""

from __future__ import annotations

from pathlib import Path

from audiocnn.datasets._files import parse_fold, read_csv, resolve_audio
from audiocnn.datasets.base import Clip, Dataset, assign_folds
from audiocnn.errors import DatasetError


def load(csv_path: Path, *, n_folds: int = 5, seed: int = 0) -> Dataset:
    """A dataset listed in a CSV (`path,label[,fold][,group]`, paths relative to it); folds assigned if absent."""
    rows = read_csv(csv_path, ["path", "label"])
    if not rows:
        raise DatasetError(f"{csv_path}: lists no clips")
    base = csv_path.parent
    clips, problems = [], []
    has_fold = "fold" in rows[0]
    for line, row in enumerate(rows, start=2):
        where = f"{csv_path}:{line}"
        if not row["label"]:
            problems.append(f"{where}: empty label")
            continue
        path = resolve_audio(base / row["path"])
        if path is None:
            problems.append(f"{where}: missing audio file {row['path']}")
            continue
        fold = parse_fold(row["fold"], where) if has_fold else None
        clips.append(Clip(path, row["label"], fold, row.get("group") or None))
    if not clips:
        raise DatasetError(f"{csv_path}: none of the listed clips could be used")
    if not has_fold:
        clips = assign_folds(clips, n_folds, seed)
    classes = sorted({c.label for c in clips})
    return Dataset("csv", csv_path, classes, clips, problems)
