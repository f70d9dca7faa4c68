"""Attribution pictures: a window's spectrogram, where the evidence sits on it, and what the model said.

Attributions are drawn over a grey spectrogram on the same time (s) and frequency (Hz) axes
as every other picture of the project (`viz.axes.draw_image`). Integrated Gradients is signed
(red: evidence for the class, blue: against), with its colour range set at the 99th
percentile of |attribution| so a few extreme cells do not wash the rest out. Grad-CAM is
non-negative and drawn as a heat map. Multi-channel images are summed over channels.
Profiles over frequency are smoothed over a few rows (`smooth_profile`): IG flips sign from
one mel row to the next, and that detail is noise a reader would otherwise have to squint past.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from audiocnn.explain.attributions import Attribution
from audiocnn.features import Frontend
from audiocnn.viz.axes import draw_image, figure, frequency_ticks, save

TITLES = {"ig": "Integrated Gradients (red: for, blue: against)", "gradcam": "Grad-CAM (last feature map)"}


def overlay(ax: Axes, spectrogram: np.ndarray, attribution: np.ndarray, frontend: Frontend, n_samples: int,
            *, signed: bool, start: float = 0.0):
    """Draw a (rows, frames) attribution over a grey (rows, frames) spectrogram; returns the colour artist."""
    base = draw_image(ax, spectrogram, frontend, n_samples, start=start, cmap="gray")
    scale = float(np.percentile(np.abs(attribution), 99)) or float(np.abs(attribution).max()) or 1.0
    norm = Normalize(-scale, scale) if signed else Normalize(0, scale)
    colours = matplotlib.colormaps["RdBu_r" if signed else "inferno"](norm(attribution))
    strength = np.clip(np.abs(attribution) / scale, 0, 1)
    colours[..., 3] = 0.85 * strength**0.7 if signed else 0.55
    ax.imshow(colours, origin="lower", aspect="auto", extent=base.get_extent(), interpolation="nearest")
    return ScalarMappable(norm=norm, cmap="RdBu_r" if signed else "inferno")


def probability_bars(ax: Axes, labels: list[str], probabilities: np.ndarray, target: int, k: int = 5) -> None:
    """The k most probable classes as horizontal bars, the explained class highlighted."""
    order = list(np.argsort(-probabilities)[:k])
    if target not in order:
        order[-1] = target
    names = [labels[i] for i in order][::-1]
    values = [probabilities[i] for i in order][::-1]
    colours = ["tab:red" if i == target else "tab:gray" for i in order][::-1]
    ax.barh(names, values, color=colours)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.set_title("model output", fontsize=10)
    for y, value in enumerate(values):
        ax.text(min(value + 0.02, 0.8), y, f"{value:.2f}", va="center", fontsize=8)


def save_explanation(result: Attribution, frontend: Frontend, out: Path, title: str) -> Path:
    """One PNG: the spectrogram and the probabilities on top, one overlay per attribution method below."""
    methods = list(result.maps)
    fig = figure(figsize=(13, 3.4 * (1 + len(methods))))
    grid = fig.add_gridspec(1 + len(methods), 2, width_ratios=(4, 1))
    spectrogram = result.image[0]
    ax = fig.add_subplot(grid[0, 0])
    artist = draw_image(ax, spectrogram, frontend, result.n_samples, start=result.start)
    fig.colorbar(artist, ax=ax, label="dB", pad=0.01)
    ax.set_title("spectrogram the model sees" + (" (first channel)" if result.image.shape[0] > 1 else ""), fontsize=10)
    probability_bars(fig.add_subplot(grid[0, 1]), result.labels, result.probabilities, result.target)
    for row, method in enumerate(methods, start=1):
        ax = fig.add_subplot(grid[row, 0])
        attribution = result.maps[method].sum(axis=0)
        mappable = overlay(ax, spectrogram, attribution, frontend, result.n_samples, signed=method == "ig",
                           start=result.start)
        fig.colorbar(mappable, ax=ax, label="attribution", pad=0.01)
        note = ""
        if method == "ig" and result.delta is not None and result.logit_gap:
            note = f" — sums to {result.logit_gap + result.delta:.2f} of a logit gap to the baseline of {result.logit_gap:.2f}"
        ax.set_title(f"{TITLES[method]} for “{result.target_label}”{note}", fontsize=10)
        profile = fig.add_subplot(grid[row, 1])
        band_profile(profile, attribution, frontend)
    fig.suptitle(title)
    return save(fig, out, dpi=100)


def smooth_profile(profile: np.ndarray, fraction: float = 0.08) -> np.ndarray:
    """A Hann-weighted moving average over about `fraction` of the rows (11 of 128), same length."""
    width = max(1, int(round(fraction * len(profile))) | 1)
    if width < 3:
        return profile
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    padded = np.pad(profile, width // 2, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def band_profile(ax: Axes, attribution: np.ndarray, frontend: Frontend) -> None:
    """Attribution summed over time for each row, smoothed: which frequencies carried the evidence."""
    profile = smooth_profile(attribution.sum(axis=1))
    rows = np.arange(len(profile))
    ax.fill_betweenx(rows, 0, profile, where=profile >= 0, color="tab:red", step="mid", alpha=0.8)
    ax.fill_betweenx(rows, 0, profile, where=profile < 0, color="tab:blue", step="mid", alpha=0.8)
    ax.axvline(0, color="black", lw=0.5)
    ax.set_ylim(-0.5, len(profile) - 0.5)
    row_hz = frontend.row_frequencies()
    if row_hz is not None:
        positions, labels = frequency_ticks(np.asarray(row_hz))
        ax.set_yticks(positions, labels)
    ax.set_xlabel("summed over time (smoothed)")
    ax.set_title("by frequency", fontsize=10)
