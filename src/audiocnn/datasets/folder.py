"""A user's own data as folders: `root/<class name>/**/<audio files>`.

There are no official folds, so clips get stratified folds from a fixed seed. Put recordings
from one session/site in one sub-folder per class and they still count as independent clips;
use the CSV dataset with a `group` column when they must stay together.
"""

from __future__ import annotations

from pathlib import Path

from audiocnn.audio import audio_files
from audiocnn.datasets.base import Clip, Dataset, assign_folds
from audiocnn.errors import DatasetError


def load(root: Path, *, n_folds: int = 5, seed: int = 0) -> Dataset:
    """A dataset of `root/<class>/**/<audio>` with stratified folds from `seed`; loose files are a problem."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    clips, problems = [], []
    for label in classes:
        files = audio_files(root / label)
        if not files:
            problems.append(f"{root / label}: class folder holds no audio files")
        clips += [Clip(path, label) for path in files]
    if not clips:
        raise DatasetError(f"{root}: no audio files in class sub-folders (expected {root}/<class>/<file>.wav)")
    loose = [p.name for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
    if loose:
        problems.append(f"{root}: {len(loose)} file(s) outside class folders are ignored (e.g. {loose[0]})")
    classes = [c for c in classes if any(clip.label == c for clip in clips)]
    return Dataset("folder", root, classes, assign_folds(clips, n_folds, seed), problems)
