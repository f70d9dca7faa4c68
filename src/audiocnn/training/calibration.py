"""Confidence that means something: temperature scaling and the threshold below which a model
says "unknown".

A CNN fine-tuned with cross-entropy is over-confident: its top probability is higher than the
share of such answers that are right, and it is high for sounds it was never taught. Two
numbers, both fitted on the validation clips carved out of the training folds (never the test
fold), go into the bundle (`config.json`, key `calibration`):

- `temperature` T: probabilities become softmax(logits / T), with T chosen to minimise the
  negative log-likelihood of the validation clips (Guo et al. 2017, "On calibration of modern
  neural networks"). It changes no ranking, only how sure the model says it is.
- `unknown_below`: a window or file whose top calibrated probability is below it is labelled
  `unknown` (its best guesses still follow). It is set so that a stated share of the validation
  clips the model gets right keep their answer (`KEEP_CORRECT`, 95%): the rest of the
  probability range is where a sound the model does not know tends to land.

A threshold is a low percentile of right answers' confidence, so it needs enough of them: with
fewer than `MIN_CORRECT_CLIPS` it is not fitted and `unknown` stays off; `train`, `cv` and
`calibrate` print the threshold and the clips that set it, and warn when it was not fitted. Once, a 22-clip validation set of a small
annotated dataset set a threshold of 0.95, shown nowhere but metrics.json, and the model then
answered `unknown` to most real recordings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from audiocnn.errors import ConfigError

#: The share of correctly classified validation clips that keep their answer at the default
#: abstain threshold.
KEEP_CORRECT = 0.95
#: Fewer validation clips than this give no calibration (the model keeps temperature 1, never `unknown`).
MIN_VALIDATION_CLIPS = 5
#: Right validation answers an `unknown` threshold is fitted from, at least. At the default 95% it is
#: then set by the 3rd least confident of them, not by the single least confident one (as with
#: fewer than 20), and the share of right answers it keeps on new clips is known to about ±3
#: points (an order statistic's spread: ±5 with 20, ±8 with 10).
MIN_CORRECT_CLIPS = 50
#: The threshold used with fewer: 0, `unknown` off, as for a bundle without calibration. No
#: value without data means the same for 3 classes and 500, or for every temperature; the user
#: sets one with `predict --unknown-below P`.
DEFAULT_UNKNOWN_BELOW = 0.0
#: The temperature is kept in this range: outside it the validation set was too small or degenerate.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


@dataclass(frozen=True)
class Calibration:
    """What a bundle stores about its confidence, and how it was fitted."""

    temperature: float
    unknown_below: float
    keep_correct: float
    clips: int  # validation clips it was fitted on
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    correct_clips: int  # of `clips`, those classified right: the `unknown` threshold is fitted from them
    unknown_fitted: bool  # False: too few right answers, `unknown_below` is DEFAULT_UNKNOWN_BELOW
    fitted_on: str = "validation clips of the training folds"

    def to_dict(self) -> dict[str, float | int | str]:
        """As config.json and metrics.json store it."""
        return asdict(self)


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The T minimising the NLL of softmax(logits / T) for `labels` (L-BFGS on log T)."""
    logits, labels = logits.detach().double(), labels.detach()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def nll() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(nll)
    return float(log_t.detach().exp().clamp(MIN_TEMPERATURE, MAX_TEMPERATURE))


def unknown_threshold(probabilities: np.ndarray, labels: np.ndarray, keep_correct: float = KEEP_CORRECT) -> float:
    """The top-probability below which only `1 - keep_correct` of the correctly classified clips fall."""
    top = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    if not correct.any():
        return 0.0
    return float(np.quantile(top[correct], 1 - keep_correct, method="lower"))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by clips (Guo et al.)."""
    return confidence_error(probabilities.max(axis=1), probabilities.argmax(axis=1) == labels, bins)


def confidence_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """`expected_calibration_error` from each answer's confidence and whether it was right."""
    correct = np.asarray(correct, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(error)


def calibrate(logits: Tensor, labels: Tensor, keep_correct: float = KEEP_CORRECT) -> Calibration:
    """Temperature and abstain threshold from held-out logits and their true labels.

    With fewer than `MIN_CORRECT_CLIPS` right answers the threshold is `DEFAULT_UNKNOWN_BELOW`,
    recorded as `unknown_fitted: False` (the temperature is fitted all the same); the commands
    that fit one warn about it (`unfitted_warning`).
    """
    temperature = fit_temperature(logits, labels)
    before = logits.float().softmax(-1).numpy()
    after = (logits.float() / temperature).softmax(-1).numpy()
    truth = labels.numpy()
    correct = int((after.argmax(axis=1) == truth).sum())
    fitted = correct >= MIN_CORRECT_CLIPS
    return Calibration(
        temperature=round(temperature, 4),
        unknown_below=round(unknown_threshold(after, truth, keep_correct), 4) if fitted else DEFAULT_UNKNOWN_BELOW,
        keep_correct=keep_correct, clips=len(truth), correct_clips=correct, unknown_fitted=fitted,
        nll_before=round(float(F.cross_entropy(logits.float(), labels)), 4),
        nll_after=round(float(F.cross_entropy(logits.float() / temperature, labels)), 4),
        ece_before=round(expected_calibration_error(before, truth), 4),
        ece_after=round(expected_calibration_error(after, truth), 4),
    )


def threshold_summary(record: Mapping[str, Any] | None, n_val: int | None = None) -> str:
    """One line on a bundle's `unknown` threshold and how many validation clips set it, from its
    calibration record (config.json's or metrics.json's `calibration`; None: not calibrated), for
    the training summary and `audiocnn calibrate`."""
    if not record:
        clips = f"{n_val} validation clips" if n_val is not None else "no validation clips"
        return f"`unknown` off: not calibrated ({clips}; at least {MIN_VALIDATION_CLIPS} needed)"
    below, clips = float(record.get("unknown_below", 0.0)), record.get("clips", "?")
    if "correct_clips" not in record:  # a record from before the minimum existed
        return f"`unknown` below {below:.2f}, fitted on {clips} validation clips"
    if not record.get("unknown_fitted", True):
        return (f"`unknown` off (threshold {below:g}): {record['correct_clips']} of {clips} validation clips "
                f"classified right, fewer than the {MIN_CORRECT_CLIPS} a threshold needs")
    keep = float(record.get("keep_correct", KEEP_CORRECT))
    return (f"`unknown` below {below:.2f}: kept {keep:.0%} of the {record['correct_clips']} validation clips "
            f"classified right (of {clips})")


def unfitted_warning(records: Mapping[str, Mapping[str, Any] | None]) -> str | None:
    """The warning for calibration records (by model: "fold 1", a bundle's path) whose `unknown`
    threshold was not fitted, as one line; None when every one was (or predates the minimum)."""
    unfitted = {name: r for name, r in records.items() if r and not r.get("unknown_fitted", True)}
    if not unfitted:
        return None
    counts = ", ".join(f"{name}: {r.get('correct_clips', '?')} of {r.get('clips', '?')}" for name, r in unfitted.items())
    return (f"`unknown` threshold not fitted ({counts} validation clips classified right; a threshold needs at least "
            f"{MIN_CORRECT_CLIPS}): `unknown` is off. Set one with `predict --unknown-below P`, or train with more "
            "validation clips (data.val_fraction) and run `audiocnn calibrate`")


def validation_clips(bundle: Any, data_root: Path) -> list:
    """The validation clips a bundle was trained beside: the split training drew (same recipe,
    same seed), never a clip it trained on nor its test fold."""
    from audiocnn.datasets import holdout, make_splits, split_fold
    from audiocnn.datasets.recipe import limited_dataset

    recipe = bundle.recipe
    dataset = limited_dataset(recipe, data_root)
    split, fold = bundle.metrics.get("split"), split_fold(bundle.metrics)
    if split in (None, "all-data"):
        return holdout(dataset.clips, recipe.data.val_fraction, recipe.data.seed)[1]
    by_fold = {s.test_fold: s for s in make_splits(dataset, val_fraction=recipe.data.val_fraction,
                                                   seed=recipe.data.seed)}
    if fold not in by_fold and not any(s.name == split for s in by_fold.values()):
        raise ConfigError(f"{bundle.path}: trained for split {split!r}, which {dataset.name} at {data_root} does not "
                          "have; calibrate with the dataset it was trained on")
    chosen = by_fold[fold] if fold in by_fold else next(s for s in by_fold.values() if s.name == split)
    return chosen.val


def calibrate_bundle(bundle: Any, data_root: Path, *, cache_dir: Path | None = None, progress: bool = True,
                     keep_correct: float = KEEP_CORRECT) -> Calibration:
    """Fit a bundle's calibration on its own validation clips (for bundles trained before
    calibration existed, or to refit it); the caller writes it (`bundle.write_calibration`)."""
    clips = validation_clips(bundle, data_root)
    unknown = sorted({clip.label for clip in clips} - set(bundle.labels))
    if unknown:
        raise ConfigError(f"{data_root}: labels {', '.join(unknown[:5])} are not among the model's labels")
    if len(clips) < MIN_VALIDATION_CLIPS:
        raise ConfigError(f"{bundle.path}: only {len(clips)} validation clips; calibration needs at least "
                          f"{MIN_VALIDATION_CLIPS} (train with a larger data.val_fraction)")
    labels = torch.tensor([bundle.labels.index(clip.label) for clip in clips])
    return calibrate(clip_logits(bundle, clips, cache_dir, progress), labels, keep_correct)


def clip_logits(bundle: Any, clips: list, cache_dir: Path | None = None, progress: bool = True) -> Tensor:
    """A bundle's logits of whole clips, from their (cached) images; an ensemble's are its members'
    combined (the log of their mean calibrated probability)."""
    from audiocnn.datasets.images import clip_images
    from audiocnn.models.ensemble import combine

    if bundle.members:
        return combine([clip_logits(m, clips, cache_dir, progress) for m in bundle.members],
                       [m.temperature for m in bundle.members])
    model = bundle.model.eval()
    return model.image_logits(clip_images(clips, model.frontend, bundle.clip_seconds, cache_dir, progress=progress))
