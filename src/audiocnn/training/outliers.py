"""Outlier exposure: windows of sounds that are none of the classes, and the loss that keeps the
model unsure about them (Hendrycks et al. 2019).

A classifier trained on 50 classes only has never been told that anything else exists: speech
or music gets one of the 50 labels with a confident-looking probability, and `unknown` cannot
catch it. Shown such recordings with the uniform distribution as their target, the model
learns to spread its probability over them, which is what the abstain rule looks for.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from audiocnn import audio
from audiocnn.config.train import OutlierConfig
from audiocnn.datasets.images import cache_key, cached, image_shape, images_of
from audiocnn.datasets.noise_floors import training_floors
from audiocnn.errors import AudiocnnWarning, AudioError, ConfigError
from audiocnn.features import Frontend
from audiocnn.training.cache import folder_digest

#: Bumped when the made noise floors change, so cached images of older ones are not reused.
FLOORS_SCHEME = 1


def outlier_loss(logits: Tensor) -> Tensor:
    """Cross-entropy between the softmax of `logits` and the uniform distribution, per window on
    average; its minimum, log(classes), is reached by equal logits."""
    return -F.log_softmax(logits.float(), dim=-1).mean(dim=-1).mean()


def outlier_windows(wave: np.ndarray, window: int, most: int) -> np.ndarray:
    """(n, window) windows of one recording: back to back, at most `most` spread over it; a
    recording shorter than a window is one zero-padded window, and a last part shorter than
    half a window is left out (it would be mostly padding)."""
    starts = list(range(0, max(1, len(wave) - (window + 1) // 2 + 1), window))
    if len(starts) > most:
        starts = [starts[i] for i in np.linspace(0, len(starts) - 1, most).round().astype(int)]
    return np.stack([audio.fix_length(wave, window, start=start) for start in starts])


def outlier_images(cfg: OutlierConfig, frontend: Frontend, clip_seconds: float, cache_dir: Path | None,
                   progress: bool = True, *, seed: int = 0) -> Tensor:
    """(windows, channels, rows, frames): the images of every window of every file in `cfg.folder`,
    then of `cfg.noise_floors` noise-floor windows made from `seed`.

    Cached under a key of the files' contents, the floors' count and seed, the frontend, the clip
    length and the window limit; an unreadable file is skipped with its name in a warning, not a
    failed run.
    """
    files: list[Path] = []
    if cfg.folder is not None:
        root = Path(cfg.folder).expanduser()
        files = audio.audio_files(root) if root.is_dir() else []
        if not files:
            raise ConfigError(f"train.outliers.folder: {root} " + ("holds no audio files" if root.is_dir()
                                                                      else "is not a folder"))
    key = "outliers-" + cache_key([], frontend.config(), clip_seconds, {
        "outliers": folder_digest(files), "max_windows_per_file": cfg.max_windows_per_file,
        **({"noise_floors": cfg.noise_floors, "seed": seed, "floors": FLOORS_SCHEME} if cfg.noise_floors else {})})
    window = round(clip_seconds * frontend.sample_rate)

    def compute() -> Tensor:
        parts = []
        for path in tqdm(files, desc="outlier audio", unit="file", disable=not progress, leave=False):
            try:
                wave = audio.load(path, frontend.sample_rate)
            except AudioError as err:
                warnings.warn(f"train.outliers: skipping {err}", AudiocnnWarning, stacklevel=2)
                continue
            parts.append(outlier_windows(wave, window, cfg.max_windows_per_file))
        if files and not parts:
            raise ConfigError(f"train.outliers.folder: none of the {len(files)} files in {cfg.folder} can be read")
        if cfg.noise_floors:
            parts.append(training_floors(cfg.noise_floors, window, frontend.sample_rate, seed))
        return images_of(np.concatenate(parts), frontend)

    return cached(cache_dir, key, compute, shape=lambda: (-1, *image_shape(frontend, clip_seconds)))
