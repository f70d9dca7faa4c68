"""What a model learned, class by class, as pictures: `audiocnn explain-dataset`'s figures.

Each class gets a figure (its mean spectrogram, the mean attribution of its true class over
time and frequency, and that attribution summed over time as a band profile beside the
class's mean spectrum); one grid shows every class's band profile over its mean spectrum, so
a glance says which frequencies each class is recognised by. The numbers behind them come
from `explain.dataset.class_attributions`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from audiocnn.bundle import Bundle
from audiocnn.explain.dataset import ClassAttribution, method_name, write_profiles
from audiocnn.features import Frontend
from audiocnn.viz.axes import draw_image, figure, frequency_ticks, save
from audiocnn.viz.explanations import band_profile, smooth_profile


def write_dataset_explanation(items: list[ClassAttribution], bundle: Bundle, out: Path, *, method: str,
                              title: str) -> list[Path]:
    """Everything `explain-dataset` writes: OUT/classes/<label>.png for every class, OUT/grid.png,
    OUT/profiles.csv and OUT/attributions.npz; returns the grid's and the table's paths."""
    frontend = bundle.model.frontend
    n_samples = round(bundle.clip_seconds * bundle.sample_rate)
    for item in items:
        save_class_figure(item, frontend, n_samples, out / "classes" / f"{item.label}.png", method)
    return [save_grid(items, frontend, out / "grid.png", title), write_profiles(items, bundle, out)]


def save_class_figure(item: ClassAttribution, frontend: Frontend, n_samples: int, out: Path, method: str) -> Path:
    """Draw one class's mean spectrogram and mean attribution into `out` (PNG); the path."""
    fig = figure(figsize=(13, 6.4))
    grid = fig.add_gridspec(2, 2, width_ratios=(4, 1))
    ax = fig.add_subplot(grid[0, 0])
    fig.colorbar(draw_image(ax, item.spectrogram, frontend, n_samples), ax=ax, label="dB", pad=0.01)
    ax.set_title(f"mean spectrogram of the {item.n_clips} clips", fontsize=10)
    ax = fig.add_subplot(grid[1, 0])
    scale = float(np.percentile(np.abs(item.attribution), 99.5)) or 1.0  # a few extreme cells would wash it out
    artist = draw_image(ax, item.attribution, frontend, n_samples, cmap="RdBu_r")
    artist.set_clim(-scale, scale)
    fig.colorbar(artist, ax=ax, label="mean attribution", pad=0.01)
    ax.set_title(f"mean {method_name(method)} of “{item.label}” (red: evidence for it)", fontsize=10)
    spectrum = fig.add_subplot(grid[0, 1])
    _mean_spectrum(spectrum, item.spectrogram, frontend)
    band_profile(fig.add_subplot(grid[1, 1]), item.attribution, frontend)
    fig.suptitle(f"{item.label}: {item.n_correct}/{item.n_clips} test clips classified correctly")
    return save(fig, out, dpi=90)


def save_grid(items: list[ClassAttribution], frontend: Frontend, out: Path, title: str) -> Path:
    """All classes' band profiles (attribution by frequency, red) over their mean spectrum (grey)."""
    columns = 10 if len(items) > 20 else 5
    rows = math.ceil(len(items) / columns)
    fig = figure(figsize=(1.9 * columns, 2.6 * rows))
    axes = fig.subplots(rows, columns, sharey=True, squeeze=False)
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
    return save(fig, out, dpi=90)


def _mean_spectrum(ax, spectrogram: np.ndarray, frontend: Frontend) -> None:
    spectrum = spectrogram.mean(axis=1)
    ax.fill_betweenx(np.arange(len(spectrum)), spectrum.min(), spectrum, color="0.5", step="mid")
    ax.set_ylim(-0.5, len(spectrum) - 0.5)
    row_hz = frontend.row_frequencies()
    if row_hz is not None:
        ax.set_yticks(*frequency_ticks(np.asarray(row_hz)))
    ax.set_xlabel("mean dB")
    ax.set_title("mean spectrum", fontsize=10)
