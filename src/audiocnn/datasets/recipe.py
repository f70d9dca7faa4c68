"""The dataset a recipe names, loaded with the recipe's fold and split options.

Training, quantization and dataset explanations all need the *same* clips in the *same*
folds as the recipe a model was trained with (so fold K is the fold training left out);
this is the one place that turns a recipe's `data` section into a `Dataset`.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from audiocnn.config import Recipe
from audiocnn.datasets import Dataset, load_dataset, loader_options
from audiocnn.datasets._files import unreadable
from audiocnn.datasets.base import Clip
from audiocnn.errors import AudiocnnWarning, DatasetError


def recipe_dataset(recipe: Recipe, data_root: Path) -> Dataset:
    """The recipe's dataset at `data_root`, with the recipe's fold/split options (so folds match training)."""
    d = recipe.data
    # Options the user set go through (a loader that cannot use one refuses it); the default
    # seed only matters to datasets whose folds are assigned.
    options = {"n_folds": d.folds, "split": d.split, "splits_dir": Path(d.splits_dir) if d.splits_dir else None,
               "label_column": d.label_column, "negatives": d.negatives, "negative_label": d.negative_label}
    accepted = loader_options(d.dataset)
    if "seed" in accepted:
        options["seed"] = d.seed
    if "clip_seconds" in accepted:  # annotations cut clips of the recipe's length from long recordings
        options["clip_seconds"] = d.clip_seconds
    return load_dataset(d.dataset, data_root, **options)


def limited_dataset(recipe: Recipe, data_root: Path, *, allow_incomplete: bool = False) -> Dataset:
    """The recipe's dataset to train on, with at most `data.limit_per_class` clips per class and
    fold (all if unset). A dataset with problems is refused unless `allow_incomplete`
    (`require_complete`)."""
    dataset = recipe_dataset(recipe, data_root)
    if recipe.data.limit_per_class:
        dataset.clips = _limit(dataset.clips, recipe.data.limit_per_class)
    set_aside_unreadable(dataset)  # of the clips kept: a smoke run does not open all of ESC-50
    require_complete(dataset, allow_incomplete)
    return dataset


def set_aside_unreadable(dataset: Dataset) -> None:
    """Clips whose file cannot be opened become problems of the dataset and leave its clip lists,
    so `require_complete` refuses it up front, listing them, or trains on the rest with
    `--allow-incomplete`, instead of failing after the other files were read."""
    bad = unreadable(clip.path for clip in dataset.clips)
    if not bad:
        return
    dataset.problems += list(bad.values())
    dataset.clips = [clip for clip in dataset.clips if clip.path not in bad]
    s = dataset.fixed_split
    if s is not None:
        dataset.fixed_split = replace(s, **{part: [c for c in getattr(s, part) if c.path not in bad]
                                            for part in ("train", "val", "test")})


def require_complete(dataset: Dataset, allow_incomplete: bool = False) -> None:
    """Training on a dataset with problems (missing files, empty or unknown labels, ...) would
    quietly train and score another dataset than the one named, e.g. 1200 of ESC-50's 2000 clips
    after a partial extraction: refuse, or with `allow_incomplete` warn with the counts."""
    if not dataset.problems:
        return
    n = len(dataset.problems)
    listed = "; ".join(dataset.problems[:3]) + (f"; and {n - 3} more" if n > 3 else "")
    message = (f"{dataset.root}: {n} problem(s) in the {dataset.name} dataset ({listed}); "
               f"`audiocnn data info` lists them all")
    if not allow_incomplete:
        raise DatasetError(f"{message}. Fix them, or pass --allow-incomplete to train on the {len(dataset.clips)} "
                           "usable clips (results are then not comparable with the full dataset's)")
    warnings.warn(f"{message}; training on the {len(dataset.clips)} usable clips (--allow-incomplete)",
                  AudiocnnWarning, stacklevel=3)


def _limit(clips: list[Clip], per_class: int) -> list[Clip]:
    """At most `per_class` clips of each class in each fold (keeps folds balanced for smoke runs)."""
    seen: dict[tuple[str, int | None], int] = defaultdict(int)
    kept = []
    for clip in clips:
        key = (clip.label, clip.fold)
        if seen[key] < per_class:
            seen[key] += 1
            kept.append(clip)
    return kept
