"""The images a cross-validation trains on: a recipe's dataset with the images of all its clips,
their augmented copies and the outlier recordings' windows, computed (or read from the feature
cache) once for every fold.

Its own module so that `cv` (which trains the folds) and `teachers` (which scores them with
trained models for distillation) both use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from audiocnn.config import Recipe
from audiocnn.datasets import Dataset
from audiocnn.datasets.images import clip_images
from audiocnn.datasets.recipe import limited_dataset
from audiocnn.features import create_frontend
from audiocnn.training.cache import augmented_images
from audiocnn.training.outliers import outlier_images


@dataclass
class Prepared:
    """A dataset with the images of all its clips (and their augmented copies, if the recipe asks)."""

    dataset: Dataset
    images: torch.Tensor  # (clips, channels, rows, frames)
    copies: torch.Tensor | None  # (copies, clips, channels, rows, frames)
    rows: dict[Path | tuple[Path, str], int]  # each clip's row in `images`, by `Clip.key` (a file and its part)
    outliers: torch.Tensor | None = None  # (windows, channels, rows, frames): train.outliers' recordings


def prepare(recipe: Recipe, data_root: Path, cache_dir: Path | None, progress: bool = True, *,
            allow_incomplete: bool = False) -> Prepared:
    """The dataset (limited as the recipe says), all its images, and each clip's row in them."""
    dataset = limited_dataset(recipe, data_root, allow_incomplete=allow_incomplete)
    return prepare_images(recipe, dataset, cache_dir, progress)


def prepare_images(recipe: Recipe, dataset: Dataset, cache_dir: Path | None, progress: bool = True) -> Prepared:
    """All images of `dataset` (from the cache where it has them) and each clip's row in them."""
    frontend = create_frontend(recipe.frontend)
    images = clip_images(dataset.clips, frontend, recipe.data.clip_seconds, cache_dir, progress=progress)
    augment = recipe.train.waveform
    # Copies are made for every clip (test folds too), so one cached file serves all folds;
    # only the training clips' copies are ever shown to a model.
    copies = (augmented_images(dataset.clips, frontend, recipe.data.clip_seconds, augment, cache_dir,
                               seed=recipe.train.seed, progress=progress) if augment.copies else None)
    outliers = (outlier_images(recipe.train.outliers, frontend, recipe.data.clip_seconds, cache_dir, progress,
                               seed=recipe.train.seed) if recipe.train.outliers.enabled else None)
    return Prepared(dataset, images, copies, {clip.key: i for i, clip in enumerate(dataset.clips)}, outliers)
