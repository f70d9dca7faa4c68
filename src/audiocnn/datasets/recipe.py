"""The dataset a recipe names, loaded with the recipe's fold and split options.

Training, quantization and dataset explanations all need the *same* clips in the *same*
folds as the recipe a model was trained with (so fold K is the fold training left out);
this is the one place that turns a recipe's `data` section into a `Dataset`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from audiocnn.config import Recipe
from audiocnn.datasets import Dataset, load_dataset, loader_options
from audiocnn.datasets.base import Clip


def recipe_dataset(recipe: Recipe, data_root: Path) -> Dataset:
    """The recipe's dataset at `data_root`, with the recipe's fold/split options (so folds match training)."""
    d = recipe.data
    # Options the user set go through (a loader that cannot use one refuses it); the default
    # seed only matters to datasets whose folds are assigned.
    options = {"n_folds": d.folds, "split": d.split, "splits_dir": Path(d.splits_dir) if d.splits_dir else None}
    if "seed" in loader_options(d.dataset):
        options["seed"] = d.seed
    return load_dataset(d.dataset, data_root, **options)


def limited_dataset(recipe: Recipe, data_root: Path) -> Dataset:
    """The recipe's dataset with at most `data.limit_per_class` clips per class and fold (all if unset)."""
    dataset = recipe_dataset(recipe, data_root)
    if recipe.data.limit_per_class:
        dataset.clips = _limit(dataset.clips, recipe.data.limit_per_class)
    return dataset


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
