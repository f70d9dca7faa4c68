"""The types every dataset returns, and the one way splits are made from folds.

Folds are data, not code paths: a loader only says which fold (and which group: source
recording, artist) each clip belongs to. `make_splits` turns that into (train, val, test)
lists, taking validation clips from the training folds only, and never letting a group
straddle train and val. The test fold is not touched until the end of training.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from audiocnn.errors import DatasetError


@dataclass(frozen=True)
class Clip:
    """One labelled recording, or one labelled part of a recording (`start_s`, `duration_s`).

    Annotated long recordings give many clips of one file, so wherever clips are keyed (rows
    of the image tensor, the feature cache, duplicate checks, seeds) the key is `key`: the
    file alone for a whole-file clip, as it always was (existing caches stay valid), and the
    file with its `segment` for a part.

    Example:
        >>> Clip(Path("dog.wav"), "dog", fold=1).segment  # a whole file
        ''
        >>> part = Clip(Path("dawn.wav"), "robin", fold=2, group="site3", start_s=12.5, duration_s=5.0)
        >>> part.segment, part.key == (Path("dawn.wav"), "@12.5s+5.0s")
        ('@12.5s+5.0s', True)
    """

    path: Path
    label: str
    fold: int | None = None  # official (or assigned) cross-validation fold, 1-based
    group: str | None = None  # clips of one group (same source recording/artist) stay together
    start_s: float | None = None  # the part of the file: from here (None: the whole file)
    duration_s: float | None = None  # for this long (None: to the file's end)

    @property
    def segment(self) -> str:
        """'' for a whole file, else '@START s+DURATION s' (as in `rec.wav@12.5s+5.0s`), to follow the file's name."""
        if self.start_s is None and self.duration_s is None:
            return ""
        return f"@{self.start_s or 0.0!r}s" + (f"+{self.duration_s!r}s" if self.duration_s is not None else "")

    @property
    def key(self) -> Path | tuple[Path, str]:
        """What tells this clip's audio apart from other clips': its file (plus the segment for a part)."""
        return (self.path, self.segment) if self.segment else self.path


@dataclass(frozen=True)
class Split:
    """One train/val/test partition.

    `test_fold` is the fold held out as `test` (None for a published fixed split, or for
    training on all data); `name` says which split it is in folder names and records
    ("fold3", "filtered", "all-data").

    Example:
        >>> clips = [Clip(Path(f"{i}.wav"), "dog", fold=i) for i in (1, 2, 3)]
        >>> split = Split.for_fold(3, train=clips[:1], val=clips[1:2], test=clips[2:])
        >>> split.name, split.test_fold, [c.path.name for c in split.test]
        ('fold3', 3, ['3.wav'])
    """

    name: str
    train: list[Clip]
    val: list[Clip]
    test: list[Clip]
    test_fold: int | None = None

    @classmethod
    def for_fold(cls, fold: int, train: list[Clip], val: list[Clip], test: list[Clip]) -> Split:
        """The split that tests on `fold`, named as run folders name it ("fold3")."""
        return cls(f"fold{fold}", train, val, test, fold)


def split_fold(record: dict) -> int | None:
    """The test fold of a model's metrics record (None: no fold was held out).

    Records carry `test_fold`; those written before it existed only name the split
    ("fold3"), so that name is read here, and nowhere else.
    """
    if "test_fold" in record:
        return record["test_fold"]
    name = str(record.get("split", ""))
    return int(name.removeprefix("fold")) if name.startswith("fold") and name[4:].isdigit() else None


@dataclass
class Dataset:
    """A labelled collection of clips with its class list and the problems found reading it.

    `fixed_split` is set for datasets whose authors publish one train/val/test partition
    (GTZAN's artist-filtered split) instead of cross-validation folds. Loaders make these
    (`audiocnn.datasets.load_dataset`); one can be built by hand too.

    Example:
        >>> clips = [Clip(Path(f"{label}{i}.wav"), label, fold=i % 3 + 1) for label in ("cat", "dog") for i in range(6)]
        >>> dataset = Dataset("toy", Path("toy"), ["cat", "dog"], clips)
        >>> dataset.folds, dataset.label_index()
        ([1, 2, 3], {'cat': 0, 'dog': 1})
    """

    name: str
    root: Path
    classes: list[str]
    clips: list[Clip]
    problems: list[str] = field(default_factory=list)
    fixed_split: Split | None = None

    @property
    def folds(self) -> list[int]:
        """The fold numbers its clips carry, sorted (empty before folds are assigned)."""
        return sorted({c.fold for c in self.clips if c.fold is not None})

    def label_index(self) -> dict[str, int]:
        """Class name to its output index, in the order of `classes`."""
        return {label: i for i, label in enumerate(self.classes)}


def group_of(clip: Clip) -> str:
    """A clip without a declared group is a group of its own."""
    return clip.group if clip.group is not None else str(clip.path)


def assign_folds(clips: list[Clip], n_folds: int, seed: int = 0) -> list[Clip]:
    """Give fold numbers 1..n_folds to clips that have none: stratified by label, grouped by group.

    Deterministic for a given seed, so a dataset without official folds (GTZAN, a user's folder)
    still has repeatable cross-validation.
    """
    if n_folds < 2:
        raise DatasetError(f"need at least 2 folds for cross-validation, got {n_folds}")
    largest = max(count_by(clips, "label").values(), default=0)
    if len({group_of(c) for c in clips}) < n_folds or largest < n_folds:
        raise DatasetError(
            f"cannot make {n_folds} folds from {len(clips)} clips (largest class: {largest}); use fewer folds"
        )
    folds = _stratified_group_parts(clips, n_folds, seed)
    return [replace(clip, fold=fold) for clip, fold in zip(clips, folds)]


def make_splits(dataset: Dataset, *, val_fraction: float = 0.1, seed: int = 0) -> list[Split]:
    """One split per fold: that fold is the test set; val is carved out of the other folds.

    Args:
        dataset: clips with folds (a dataset with a published `fixed_split` gives that one only).
        val_fraction: about this share of the training folds' clips goes to val, stratified by label,
            no group on both sides (0: no val).
        seed: the same seed gives the same val clips.

    Returns:
        A `Split` per fold, in fold order.

    Raises:
        DatasetError: fewer than 2 folds, or too few groups to hold val out.

    Example:
        >>> clips = [Clip(Path(f"{label}{i}.wav"), label, fold=i % 3 + 1) for label in ("cat", "dog") for i in range(6)]
        >>> splits = make_splits(Dataset("toy", Path("toy"), ["cat", "dog"], clips), val_fraction=0.25)
        >>> [(s.name, len(s.train), len(s.val), len(s.test)) for s in splits]
        [('fold1', 6, 2, 4), ('fold2', 6, 2, 4), ('fold3', 6, 2, 4)]
        >>> [sorted(c.label for c in s.val) for s in splits]  # stratified: one of each class
        [['cat', 'dog'], ['cat', 'dog'], ['cat', 'dog']]
    """
    if dataset.fixed_split is not None:
        return [dataset.fixed_split]
    if len(dataset.folds) < 2:
        raise DatasetError(f"{dataset.name}: needs at least 2 folds to make splits, has {len(dataset.folds)}")
    splits = []
    for fold in dataset.folds:
        test = [c for c in dataset.clips if c.fold == fold]
        rest = [c for c in dataset.clips if c.fold != fold]
        train, val = holdout(rest, val_fraction, seed)
        splits.append(Split.for_fold(fold, train, val, test))
    return splits


def holdout(clips: list[Clip], fraction: float, seed: int = 0) -> tuple[list[Clip], list[Clip]]:
    """Split clips into (train, val) with about `fraction` in val, stratified and group-disjoint."""
    if fraction <= 0:
        return list(clips), []
    if not 0 < fraction < 0.5:
        raise DatasetError(f"validation fraction must be in (0, 0.5), got {fraction}")
    n_groups = len({group_of(c) for c in clips})
    if n_groups < 2:
        raise DatasetError(
            f"cannot hold out validation clips: the training folds hold {n_groups} group(s) "
            f"(recordings/sites), and val must not share one with train; add data or use val_fraction 0"
        )
    # val is one of k = round(1/fraction) stratified parts, so 0.1 -> 1/10 and 0.3 -> 1/3.
    parts = _stratified_group_parts(clips, max(2, round(1 / fraction)), seed)
    train = [c for c, p in zip(clips, parts) if p != 1]
    val = [c for c, p in zip(clips, parts) if p == 1]
    return train, val


def _stratified_group_parts(clips: list[Clip], n_parts: int, seed: int) -> list[int]:
    """Part number (1-based) per clip, stratified by label and keeping groups whole.

    With very small data (fewer groups, or a largest class smaller than `n_parts`) fewer parts
    are made, so a holdout is then somewhat larger than asked rather than impossible.
    """
    labels = np.array([c.label for c in clips])
    groups = np.array([group_of(c) for c in clips])
    n_parts = min(n_parts, len(set(groups)), max(count_by(clips, "label").values()))
    parts = np.zeros(len(clips), dtype=int)
    from sklearn.model_selection import (
        StratifiedGroupKFold,  # here: sklearn takes 1.5 s to import, predict never needs it
    )

    splitter = StratifiedGroupKFold(n_splits=n_parts, shuffle=True, random_state=seed)
    # sklearn warns when a class has fewer members than parts; that is fine for tiny datasets.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for part, (_, index) in enumerate(splitter.split(np.zeros(len(clips)), labels, groups), start=1):
            parts[index] = part
    return parts.tolist()


def count_by(clips: list[Clip], key: str) -> Counter:
    """Clips per value of a Clip attribute ("fold", "label")."""
    return Counter(getattr(c, key) for c in clips)
