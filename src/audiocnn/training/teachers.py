"""The distillation teachers' soft targets for one fold (see `training.distill`).

Each teacher is a trained model; for a cv fold it must be the same fold's model of a teacher
run, so that no test clip leaks into the student through its teacher.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from audiocnn import bundle
from audiocnn.config import Recipe
from audiocnn.datasets.base import Split
from audiocnn.datasets.images import clip_images
from audiocnn.errors import ConfigError
from audiocnn.features import create_frontend
from audiocnn.training.cache import augmented_images
from audiocnn.training.distill import ensemble_probabilities
from audiocnn.training.prepare import Prepared


def teacher_bundle(teacher: str, split: Split) -> Path:
    """The teacher model for `split`: a cv run's model of that fold; for all-data training, a bundle.

    A fold must never learn from a teacher that saw its test clips, so a cv fold takes the
    teacher run's model of the same fold and refuses a bundle (trained on who knows which folds).
    """
    root = Path(teacher).expanduser()
    if split.test_fold is None and not split.test:
        if (root / "config.json").is_file():
            return root
        raise ConfigError(f"train.distill.teachers: {root} is not a model bundle (training on all data takes "
                          "bundles as teachers)")
    model = root / split.name / "model"
    if not (model / "config.json").is_file():
        raise ConfigError(f"train.distill.teachers: {root} has no {split.name}/model: a teacher of {split.name} "
                          f"must be a cv run of the same folds (a model trained on every fold would have seen "
                          f"{split.name}'s test clips)")
    return model


def teacher_targets(recipe: Recipe, split: Split, prepared: Prepared, cache_dir: Path | None,
                    progress: bool = True) -> Tensor:
    """(1 + copies, n_train, classes): the teachers' mean probabilities for every training image.

    Version 0 is each clip's own image, version k its k-th augmented copy, in the order of
    `split.train`. A teacher whose frontend differs from the recipe's gets its own images of
    the same clips and copies, from the feature cache where they are.
    """
    rows = torch.tensor([prepared.rows[clip.key] for clip in split.train], dtype=torch.long)
    clips, seconds, augment = prepared.dataset.clips, recipe.data.clip_seconds, recipe.train.waveform
    own = create_frontend(recipe.frontend)
    members: list[list[Tensor]] = []  # per teacher, per version: (n_train, classes) logits
    for teacher in recipe.train.distill.teachers:
        model = bundle.load(teacher_bundle(teacher, split))
        if model.labels != prepared.dataset.classes:
            raise ConfigError(f"train.distill.teachers: {model.path} predicts other classes than "
                              f"{prepared.dataset.name} has (or in another order)")
        if model.recipe.data != recipe.data:  # another dataset, seed or split: its fold K is not this fold K
            raise ConfigError(f"train.distill.teachers: {model.path} was trained on other data or splits "
                              f"(its recipe's data section differs from this one's), so it may have seen "
                              f"{split.name}'s test or validation clips")
        if model.sample_rate != own.sample_rate:
            raise ConfigError(f"train.distill.teachers: {model.path} hears audio at {model.sample_rate} Hz, this "
                              f"recipe at {own.sample_rate} Hz: the augmented copies "
                              "would not be the same sounds")
        frontend = model.model.frontend
        if frontend.config() == own.config():
            images, copies = prepared.images, prepared.copies
        else:
            images = clip_images(clips, frontend, seconds, cache_dir, progress=progress)
            copies = (augmented_images(clips, frontend, seconds, augment, cache_dir, seed=recipe.train.seed,
                                       progress=progress) if augment.copies else None)
        versions = [images] + (list(copies) if copies is not None else [])
        members.append([model.model.image_logits(version[rows])
                        for version in tqdm(versions, desc=f"teacher {model.path}", unit="version",
                                            disable=not progress, leave=False)])
    return torch.stack([ensemble_probabilities([logits[v] for logits in members]) for v in range(len(members[0]))])
