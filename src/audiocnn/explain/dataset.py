"""What a model learned, class by class: attributions averaged over a test fold.

For every clip of the fold, the attribution of its *true* class is computed (Integrated
Gradients by default; see `explain.attributions`), then averaged over the clips of each
class; `viz.class_profiles` draws them, `write_profiles` keeps the numbers. Use a model that never trained on that fold (`cv` saves one per
fold as RUN/foldK/model), or the picture mixes what it learned with what it memorised.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audiocnn.bundle import Bundle, require_held_out
from audiocnn.datasets._files import unreadable
from audiocnn.datasets.images import clip_images
from audiocnn.datasets.recipe import recipe_dataset
from audiocnn.errors import ConfigError, DatasetError, OptionError
from audiocnn.explain.attributions import STEPS_RANGE, grad_cam_maps, ig_maps

#: Fewer IG steps than for one clip: class means average out the quadrature error.
DATASET_STEPS = 32


@dataclass
class ClassAttribution:
    """One class's profile over a test fold: its mean spectrogram and mean attribution, and how
    many of its clips the model got right."""

    label: str
    n_clips: int
    n_correct: int
    spectrogram: np.ndarray  # (rows, frames) mean dB image of the class's clips
    attribution: np.ndarray  # (rows, frames) mean attribution of the true class, summed over channels

    @property
    def profile(self) -> np.ndarray:
        """Attribution summed over time: one value per frequency row."""
        return self.attribution.sum(axis=1)


def class_attributions(bundle: Bundle, data_root: Path, fold: int, *, method: str = "ig", steps: int = DATASET_STEPS,
                       cache_dir: Path | None = None, batch_size: int = 8, progress: bool = True,
                       on_unreadable: Callable[[str], None] | None = None) -> list[ClassAttribution]:
    """Mean attribution of each class over the clips of test fold `fold`, in the model's label order.

    The dataset and its folds are the ones the model's recipe names, so fold K is the fold
    that training left out; a model that trained on fold K is refused (`require_held_out`).
    A file that cannot be opened is left out and its one-line problem given to `on_unreadable`
    (the rest are explained); without it, such a file is a DatasetError.
    """
    bundle.require_images("explain-dataset")
    if not STEPS_RANGE[0] <= steps <= STEPS_RANGE[1]:
        raise OptionError("steps", f"must be {STEPS_RANGE[0]}-{STEPS_RANGE[1]} (got {steps})")
    require_held_out(bundle, fold)
    data = recipe_dataset(bundle.recipe, data_root)
    clips = [clip for clip in data.clips if clip.fold == fold]
    if not clips:
        raise OptionError("fold", f"{fold}: {data.name} at {data_root} has folds {data.folds}")
    bad = unreadable(clip.path for clip in clips)
    if bad and on_unreadable is None:
        raise DatasetError(f"{len(bad)} file(s) of fold {fold} cannot be read: {'; '.join(list(bad.values())[:3])}")
    for problem in bad.values():
        on_unreadable(problem)
    clips = [clip for clip in clips if clip.path not in bad]
    if not clips:
        raise DatasetError(f"{data_root}: none of the files of fold {fold} can be read")
    unknown = sorted({clip.label for clip in clips} - set(bundle.labels))
    if unknown:
        raise ConfigError(f"{data_root}: labels {', '.join(unknown[:5])} are not among the model's labels")
    model = bundle.model.eval()
    images = clip_images(clips, model.frontend, bundle.clip_seconds, cache_dir, progress=progress)
    targets = torch.tensor([bundle.labels.index(clip.label) for clip in clips])
    sums: dict[int, np.ndarray] = {}
    spectra: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    correct: dict[int, int] = {}
    bar = tqdm(total=len(clips), desc=f"explaining fold {fold}", unit="clip", disable=not progress)
    for i in range(0, len(clips), batch_size):
        raw, target = images[i : i + batch_size], targets[i : i + batch_size]
        normalised = model.normalise(raw)
        with torch.inference_mode():
            hits = (model.backbone(normalised).argmax(-1) == target).numpy()
        maps = ig_maps(model.backbone, normalised, target, steps)[0] if method == "ig" else \
            grad_cam_maps(model.backbone, normalised, target)
        for k, t in enumerate(target.tolist()):
            sums[t] = sums.get(t, 0) + maps[k].sum(axis=0)
            spectra[t] = spectra.get(t, 0) + raw[k, 0].numpy()
            counts[t] = counts.get(t, 0) + 1
            correct[t] = correct.get(t, 0) + int(hits[k])
        bar.update(len(target))
    bar.close()
    return [ClassAttribution(bundle.labels[t], counts[t], correct[t], spectra[t] / counts[t], sums[t] / counts[t])
            for t in sorted(counts)]


def write_profiles(items: list[ClassAttribution], bundle: Bundle, out: Path) -> Path:
    """OUT/profiles.csv (per class: clips, correct, peak attribution frequency, low-band share) and
    OUT/attributions.npz (the mean images); returns the CSV's path."""
    frontend = bundle.model.frontend
    out.mkdir(parents=True, exist_ok=True)
    row_hz = frontend.row_frequencies()
    table = out / "profiles.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "n_clips", "n_correct", "peak_attribution_hz", "positive_share_below_1khz"])
        for item in items:
            positive = np.clip(item.profile, 0, None)
            peak_hz = float(row_hz[int(np.argmax(item.profile))]) if row_hz is not None else float("nan")
            low = float(positive[np.asarray(row_hz) < 1000].sum() / (positive.sum() or 1)) if row_hz is not None else float("nan")
            writer.writerow([item.label, item.n_clips, item.n_correct, f"{peak_hz:.0f}", f"{low:.2f}"])
    np.savez_compressed(out / "attributions.npz", labels=np.array([i.label for i in items]),
                        attribution=np.stack([i.attribution for i in items]),
                        spectrogram=np.stack([i.spectrogram for i in items]))
    return table


def method_name(method: str) -> str:
    """An attribution method's name for people (`ig` -> Integrated Gradients)."""
    return {"ig": "Integrated Gradients", "gradcam": "Grad-CAM"}[method]
