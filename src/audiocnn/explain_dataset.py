"""What a model learned, class by class: attributions averaged over a test fold.

For every clip of the fold, the attribution of its *true* class is computed (Integrated
Gradients by default; see `explain`), then averaged over the clips of each class. Each
class gets a figure — its mean spectrogram, the mean attribution over time and frequency,
and the attribution summed over time as a band profile beside the class's mean spectrum —
and one grid shows all classes' band profiles, so a glance says which frequencies each
class is recognised by. Use a model that never trained on that fold (`cv` saves one per
fold as RUN/foldK/model), or the picture mixes what it learned with what it memorised.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audiocnn.bundle import Bundle
from audiocnn.cache import clip_images
from audiocnn.errors import ConfigError
from audiocnn.explain import grad_cam_maps, ig_maps
from audiocnn.explain_plots import band_profile, smooth_profile
from audiocnn.features import Frontend
from audiocnn.plots import draw_image, frequency_ticks, plt

#: Fewer IG steps than for one clip: class means average out the quadrature error.
DATASET_STEPS = 32


@dataclass
class ClassAttribution:
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
                       cache_dir: Path | None = None, batch_size: int = 8, progress: bool = True
                       ) -> list[ClassAttribution]:
    """Mean attribution of each class over the clips of test fold `fold`, in the model's label order.

    The dataset and its folds are the ones the model's recipe names, so fold K is the fold
    that training left out; a model that trained on fold K is refused (`require_held_out`).
    """
    from audiocnn.bundle import require_held_out
    from audiocnn.cv import recipe_dataset

    require_held_out(bundle, fold)
    data = recipe_dataset(bundle.recipe, data_root)
    clips = [clip for clip in data.clips if clip.fold == fold]
    if not clips:
        raise ConfigError(f"--fold {fold}: {data.name} at {data_root} has folds {data.folds}")
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


def save_class_figure(item: ClassAttribution, frontend: Frontend, n_samples: int, out: Path, method: str) -> Path:
    fig = plt.figure(figsize=(13, 6.4), constrained_layout=True)
    grid = fig.add_gridspec(2, 2, width_ratios=(4, 1))
    ax = fig.add_subplot(grid[0, 0])
    fig.colorbar(draw_image(ax, item.spectrogram, frontend, n_samples), ax=ax, label="dB", pad=0.01)
    ax.set_title(f"mean spectrogram of the {item.n_clips} clips", fontsize=10)
    ax = fig.add_subplot(grid[1, 0])
    scale = float(np.percentile(np.abs(item.attribution), 99.5)) or 1.0  # a few extreme cells would wash it out
    artist = draw_image(ax, item.attribution, frontend, n_samples, cmap="RdBu_r")
    artist.set_clim(-scale, scale)
    fig.colorbar(artist, ax=ax, label="mean attribution", pad=0.01)
    ax.set_title(f"mean {_method_name(method)} of “{item.label}” (red: evidence for it)", fontsize=10)
    spectrum = fig.add_subplot(grid[0, 1])
    _mean_spectrum(spectrum, item.spectrogram, frontend)
    band_profile(fig.add_subplot(grid[1, 1]), item.attribution, frontend)
    fig.suptitle(f"{item.label}: {item.n_correct}/{item.n_clips} test clips classified correctly")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def save_grid(items: list[ClassAttribution], frontend: Frontend, out: Path, title: str) -> Path:
    """All classes' band profiles (attribution by frequency, red) over their mean spectrum (grey)."""
    columns = 10 if len(items) > 20 else 5
    rows = math.ceil(len(items) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.6 * rows), sharey=True, squeeze=False,
                             constrained_layout=True)
    row_hz = frontend.row_frequencies()
    ticks = frequency_ticks(np.asarray(row_hz), min_gap=0.15) if row_hz is not None else None
    for ax, item in zip(axes.flat, items):
        profile = smooth_profile(item.profile)
        y = np.arange(len(profile))
        spectrum = item.spectrogram.mean(axis=1)
        spread = np.ptp(spectrum) or 1.0
        peak = np.abs(profile).max() or 1.0
        ax.fill_betweenx(y, 0, (spectrum - spectrum.min()) / spread, color="0.8", step="mid")
        ax.fill_betweenx(y, 0, np.clip(profile / peak, 0, None), color="tab:red", step="mid", alpha=0.85)
        ax.fill_betweenx(y, 0, np.clip(profile / peak, None, 0), color="tab:blue", step="mid", alpha=0.85)
        ax.set_xlim(-0.6, 1.05)
        ax.set_xticks([])
        ax.set_title(f"{item.label}\n{item.n_correct}/{item.n_clips}", fontsize=8)
        if ticks is not None:
            ax.set_yticks(*ticks)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(items):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def write_dataset_explanation(items: list[ClassAttribution], bundle: Bundle, out: Path, *, method: str,
                              title: str) -> list[Path]:
    """Per-class PNGs in out/classes/, grid.png, profiles.csv and attributions.npz; returns the grid and CSV paths."""
    frontend = bundle.model.frontend
    n_samples = round(bundle.clip_seconds * bundle.sample_rate)
    for item in items:
        save_class_figure(item, frontend, n_samples, out / "classes" / f"{item.label}.png", method)
    grid = save_grid(items, frontend, out / "grid.png", title)
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
    return [grid, table]


def _mean_spectrum(ax, spectrogram: np.ndarray, frontend: Frontend) -> None:
    spectrum = spectrogram.mean(axis=1)
    ax.fill_betweenx(np.arange(len(spectrum)), spectrum.min(), spectrum, color="0.5", step="mid")
    ax.set_ylim(-0.5, len(spectrum) - 0.5)
    row_hz = frontend.row_frequencies()
    if row_hz is not None:
        ax.set_yticks(*frequency_ticks(np.asarray(row_hz)))
    ax.set_xlabel("mean dB")
    ax.set_title("mean spectrum", fontsize=10)


def _method_name(method: str) -> str:
    return {"ig": "Integrated Gradients", "gradcam": "Grad-CAM"}[method]
