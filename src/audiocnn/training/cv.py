"""Cross-validation over a dataset's folds, and training one model for a bundle.

`run_cv` trains one model per fold (resuming folds that already have results), writes each
fold's `metrics.json`, `predictions.csv` and `robustness.json` (the same test clips quieter
and under background noise, see `robustness`), then the run's `summary.json`, `summary.md`
and `confusion.png`. Images are computed once for all clips (see `datasets.images`); every fold then
indexes into them. Numbers are honest by construction: weights are chosen on validation
clips from the training folds, and each test fold is scored once, at the end.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score

from audiocnn import atomic, bundle
from audiocnn.config import Recipe, recipe_from_dict
from audiocnn.datasets import Dataset, Split, holdout, make_splits
from audiocnn.datasets.recipe import limited_dataset
from audiocnn.errors import ConfigError
from audiocnn.features import create_frontend
from audiocnn.training import robustness
from audiocnn.training.calibration import expected_calibration_error
from audiocnn.training.fit import FitResult, SplitData, fit_split
from audiocnn.training.prepare import Prepared, prepare, prepare_images
from audiocnn.training.reports import TIMING, write_summary
from audiocnn.training.teachers import teacher_targets

#: Bumped when training changes what the same recipe produces, so run folders never mix two
#: trainings: 2 = timm's optimizer (no weight decay on biases and norm parameters) and mixup
#: that draws nothing when off (metrics.json without the key: 1).
TRAINING_SCHEME = 2


def run_cv(recipe: Recipe, data_root: Path, out: Path, *, folds: list[int] | None = None,
           cache_dir: Path | None = None, progress: bool = True, allow_incomplete: bool = False) -> dict[str, Any]:
    """Cross-validate a recipe: one model per test fold, then the run's summary (`audiocnn cv`).

    Args:
        recipe: what to train (`audiocnn.config.load_recipe`), its dataset named in `recipe.data`.
        data_root: the dataset's folder (for the csv dataset, its CSV file).
        out: the run folder: `recipe.json`, one `foldK/` per fold (metrics.json, predictions.csv,
            robustness.json, the fold's `model/` bundle), summary.json, summary.md, confusion.png.
            Folds finished there before are kept (a killed run resumes).
        folds: train these test folds only (default: all).
        cache_dir: where clip images are cached between runs (None: computed each time).
        progress: show progress bars.
        allow_incomplete: train on the readable clips of a dataset with problems instead of refusing.

    Returns:
        The summary (`mean_accuracy`, `std_accuracy`, `mean_macro_f1`, per-fold and per-class scores,
        robustness); {} on the non-zero ranks of a multi-GPU run.

    Raises:
        ConfigError: `out` was started with another recipe or an older training scheme, or a fold
            the dataset lacks.
        DatasetError: the dataset cannot be read, or has problems and `allow_incomplete` is False.

    Example:
        >>> import audiocnn
        >>> from audiocnn.config import load_recipe
        >>> recipes = Path(audiocnn.__file__).parents[2] / "recipes"
        >>> recipe = load_recipe(recipes / "smoke.yaml", ["data.folds=2"])  # seconds-long: 1 epoch, tiny images and CNN
        >>> recipe.data.dataset, recipe.model.backbone, recipe.train.epochs
        ('esc50', 'test_resnet', 1)
        >>> summary = run_cv(recipe, Path("data/esc50"), Path("runs/smoke"))  # doctest: +SKIP
        >>> sorted(summary)  # doctest: +SKIP
        ['folds', 'mean_accuracy', 'mean_macro_f1', 'per_class_f1', 'robustness', 'std_accuracy']
    """
    _claim_run_folder(out, recipe)
    dataset = limited_dataset(recipe, data_root, allow_incomplete=allow_incomplete)
    prepared = None  # images are made (or read from the cache) only if a fold is left to train
    splits = _fold_splits(recipe, dataset, folds)
    if any(not (out / s.name / "metrics.json").is_file() for s in splits):
        refuse_older_folds(out)
    for split in splits:
        fold_dir = out / split.name
        if (fold_dir / "metrics.json").is_file():
            if robustness.missing(fold_dir) and (fold_dir / "model" / "config.json").is_file():
                # a fold finished before robustness (or one of its conditions) existed: score its saved model
                robustness.save_fold(fold_dir, bundle.load(fold_dir / "model").model, split.test, dataset.classes,
                                     recipe.data.clip_seconds)
            continue  # finished earlier: resume with the next fold
        if prepared is None:
            prepared = prepare_images(recipe, dataset, cache_dir, progress)
        result = fit_split(recipe, create_frontend(recipe.frontend), fold_data(recipe, split, prepared, cache_dir, progress),
                           len(dataset.classes), fold_dir, progress=progress)
        if not result.is_global_zero:
            return {}  # under DDP, rank 0 writes the results
        metrics = score_fold(fold_dir, split, dataset.classes, result)
        # The fold's model, never trained on its test fold: `predict --model RUN/foldK/model`
        # gives honest results on that fold's clips (e.g. under noise, see benchmarks/denoise.py).
        bundle.save(fold_dir / "model", result.model, dataset.classes, recipe, metrics, calibration=result.calibration)
        robustness.save_fold(fold_dir, result.model, split.test, dataset.classes, recipe.data.clip_seconds)
        write_timing(fold_dir, result)
        mark_finished(fold_dir, metrics)  # last: a kill before it leaves the fold to be redone on resume
    return write_summary(out, dataset.classes)


def _claim_run_folder(out: Path, recipe: Recipe) -> None:
    """Make `out` this recipe's run folder (its `recipe.json`), unless folds trained there came
    from another recipe. A folder whose earlier attempt failed before any fold trained holds no
    work to protect: a corrected recipe replaces its recipe.json."""
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "recipe.json"
    trained = any(out.glob("fold*/metrics.json")) or any(out.glob("fold*/checkpoints/*.ckpt"))
    if trained and saved.is_file() and not same_recipe(saved, recipe):
        raise ConfigError(f"{out}: this run folder was started with a different recipe ({saved}); "
                          f"resuming would mix the two. Use a new --out")
    atomic.write_text(saved, json.dumps(recipe.to_dict(), indent=2) + "\n")


def _fold_splits(recipe: Recipe, dataset: Dataset, folds: list[int] | None) -> list[Split]:
    """The (train, val, test) split of each test fold asked for (all by default)."""
    splits = make_splits(dataset, val_fraction=recipe.data.val_fraction, seed=recipe.data.seed)
    if not folds:
        return splits
    unknown = sorted(set(folds) - set(dataset.folds))
    if unknown:
        raise ConfigError(f"--folds {unknown}: {dataset.name} has folds {dataset.folds}")
    return [s for s in splits if s.test_fold in folds]


def refuse_older_folds(out: Path) -> None:
    """Before training into a run folder: its finished folds must come from this `TRAINING_SCHEME`.

    The same recipe trains differently after a scheme change (another optimizer layout), so
    adding folds to older ones would mix two trainings in one summary. Finished folds of an
    older scheme still report (nothing is trained then).
    """
    older = sorted(path.parent.name for path in out.glob("fold*/metrics.json")
                   if json.loads(path.read_text()).get("training_scheme", 1) != TRAINING_SCHEME)
    if older:
        raise ConfigError(f"{out}: {', '.join(older)} were trained by an older audiocnn (training "
                          f"scheme {TRAINING_SCHEME - 1}); training more folds here would mix two trainings in one "
                          "summary. Use a new --out")


def same_recipe(saved: Path, recipe: Recipe) -> bool:
    """Whether a run folder's `recipe.json` is `recipe`, read through today's defaults.

    A setting added to the recipe since the folder was written takes its default in both, so
    old run folders still resume; any setting that differs makes them different recipes.
    """
    try:
        return recipe_from_dict(json.loads(saved.read_text()), str(saved)).to_dict() == recipe.to_dict()
    except (ConfigError, json.JSONDecodeError):
        return False


def train_bundle(recipe: Recipe, data_root: Path, out: Path, *, test_fold: int | None = None,
                 cache_dir: Path | None = None, progress: bool = True, allow_incomplete: bool = False
                 ) -> dict[str, Any]:
    """Train one model (on all data, or all but `test_fold`) and save it as a bundle at `out`.

    Args:
        recipe: what to train (`audiocnn.config.load_recipe`).
        data_root: the dataset's folder (for the csv dataset, its CSV file).
        out: the bundle folder (`audiocnn.bundle.load` reads it); its `training/` keeps checkpoints,
            so a killed run resumes.
        test_fold: leave this fold out and score the model on it (None: train on all data but
            the `recipe.data.val_fraction` held out for validation and calibration).
        cache_dir: where clip images are cached between runs (None: computed each time).
        progress: show progress bars.
        allow_incomplete: train on the readable clips of a dataset with problems instead of refusing.

    Returns:
        The metrics saved in the bundle ({} on the non-zero ranks of a multi-GPU run).

    Raises:
        ConfigError: a `test_fold` the dataset lacks.
        DatasetError: the dataset cannot be read, or has problems and `allow_incomplete` is False.

    Example:
        >>> from audiocnn.config import recipe_from_dict
        >>> recipe = recipe_from_dict({"data": {"dataset": "folder", "clip_seconds": 1.0, "folds": 2},
        ...                            "model": {"backbone": "resnet18", "weights": "none"}, "train": {"epochs": 1}})
        >>> recipe.frontend["kind"], recipe.data.val_fraction
        ('mel', 0.1)
        >>> metrics = train_bundle(recipe, Path("my_sounds"), Path("my-model"), test_fold=1)  # doctest: +SKIP
        >>> sorted(metrics)[:3]  # doctest: +SKIP
        ['accuracy', 'best_val_accuracy', 'calibration']
    """
    prepared = prepare(recipe, data_root, cache_dir, progress, allow_incomplete=allow_incomplete)
    dataset = prepared.dataset
    if test_fold is not None:
        by_fold = {s.test_fold: s for s in make_splits(dataset, val_fraction=recipe.data.val_fraction,
                                                       seed=recipe.data.seed)}
        if test_fold not in by_fold:
            raise ConfigError(f"--test-fold {test_fold}: {dataset.name} has folds {dataset.folds}")
        split = by_fold[test_fold]
    else:
        train, val = holdout(dataset.clips, recipe.data.val_fraction, recipe.data.seed)
        split = Split("all-data", train, val, [])
    work = out / "training"
    result = fit_split(recipe, create_frontend(recipe.frontend), fold_data(recipe, split, prepared, cache_dir, progress),
                       len(dataset.classes), work, progress=progress)
    if not result.is_global_zero:
        return {}  # under DDP, rank 0 writes the bundle
    metrics = write_fold(work, split, dataset.classes, result) if split.test else training_metrics(split, result)
    bundle.save(out, result.model, dataset.classes, recipe, metrics, calibration=result.calibration)
    return metrics


def split_data(split: Split, prepared: Prepared) -> SplitData:
    """The split's rows of the prepared images, with class indices: what `fit_split` trains on."""
    index = prepared.dataset.label_index()

    def picks(clips: list) -> torch.Tensor:
        return torch.tensor([prepared.rows[c.key] for c in clips], dtype=torch.long)

    def part(clips: list) -> tuple[torch.Tensor, torch.Tensor]:
        return prepared.images[picks(clips)], torch.tensor([index[c.label] for c in clips], dtype=torch.long)

    copies = prepared.copies[:, picks(split.train)] if prepared.copies is not None else None
    return SplitData(part(split.train), part(split.val) if split.val else None, part(split.test) if split.test else None,
                     train_copies=copies, outliers=prepared.outliers)


def fold_data(recipe: Recipe, split: Split, prepared: Prepared, cache_dir: Path | None, progress: bool) -> SplitData:
    """The split's images, with the distillation teachers' targets when the recipe names teachers."""
    data = split_data(split, prepared)
    if recipe.train.distill.teachers:
        data.train_targets = teacher_targets(recipe, split, prepared, cache_dir, progress)
    return data


def write_fold(fold_dir: Path, split: Split, classes: list[str], result: FitResult) -> dict[str, Any]:
    """predictions.csv, timing.json and metrics.json of a finished fold (see `score_fold`, `mark_finished`)."""
    write_timing(fold_dir, result)
    return mark_finished(fold_dir, score_fold(fold_dir, split, classes, result))


def write_timing(fold_dir: Path, result: FitResult) -> None:
    """The fold's training time, kept apart from its results (`metrics.json`): a time differs
    from run to run, while results of the same recipe repeat exactly, resumed after a kill or not."""
    atomic.write_text(fold_dir / TIMING, json.dumps({"train_seconds": round(result.seconds, 1)}) + "\n")


def mark_finished(fold_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics.json, atomically: it marks the fold finished, so it is written after everything else."""
    atomic.write_text(fold_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def score_fold(fold_dir: Path, split: Split, classes: list[str], result: FitResult) -> dict[str, Any]:
    """predictions.csv (one row per test clip, every class probability, written atomically) and
    the fold's metrics, returned for `mark_finished` to write once the fold's other files exist.

    Clips cut from long recordings (annotations) also get `start_s` and `duration_s` columns;
    a dataset of whole files writes the columns it always did."""
    assert result.test_probabilities is not None
    probabilities = result.test_probabilities.numpy()
    truth = np.array([classes.index(c.label) for c in split.test])
    predicted = probabilities.argmax(axis=1)
    fold_dir.mkdir(parents=True, exist_ok=True)
    with atomic.replaced(fold_dir / "predictions.csv") as partial, partial.open("w", newline="") as handle:
        writer = csv.writer(handle)
        parts = any(clip.segment for clip in split.test)
        writer.writerow(["path", *(["start_s", "duration_s"] if parts else []), "label", "predicted", "confidence",
                         "correct", *classes])
        for clip, p, k in zip(split.test, probabilities, predicted):
            where = [clip.start_s if clip.start_s is not None else "", clip.duration_s or ""] if parts else []
            writer.writerow([str(clip.path), *where, clip.label, classes[k], f"{p[k]:.4f}",
                             int(clip.label == classes[k]), *(f"{v:.4f}" for v in p)])
    calibrated = {}
    if result.calibration is not None and result.test_logits is not None:
        scaled = (result.test_logits / result.calibration.temperature).softmax(-1).numpy()
        calibrated = {"test_ece": {"uncalibrated": round(expected_calibration_error(probabilities, truth), 4),
                                   "calibrated": round(expected_calibration_error(scaled, truth), 4)},
                      "test_unknown_share": round(float((scaled.max(axis=1) < result.calibration.unknown_below).mean()),
                                                  4)}
    return {
        "split": split.name,
        "accuracy": float((predicted == truth).mean()),
        "macro_f1": float(f1_score(truth, predicted, average="macro", labels=range(len(classes)), zero_division=0)),
        **training_metrics(split, result),
        **calibrated,
    }


def training_metrics(split: Split, result: FitResult) -> dict[str, Any]:
    """What every trained model records about its training, test fold or not."""
    return {
        "split": split.name, **({"test_fold": split.test_fold} if split.test_fold is not None else {}),
        "n_train": len(split.train), "n_val": len(split.val),
        **({"n_test": len(split.test)} if split.test else {}),
        "epochs": result.epochs_trained, "best_val_accuracy": result.best_val_accuracy,
        "training_scheme": TRAINING_SCHEME,
        **({"calibration": result.calibration.to_dict()} if result.calibration else {}),
    }
