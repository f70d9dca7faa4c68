"""Feature cache: compute every clip's image once, then train from memory.

On a CPU, decoding and the STFT cost as much as a small CNN's forward pass, so training
computes the images of all clips once (fixed length, no augmentation) and reuses them for
every epoch and every fold. The cache file is keyed by everything that changes an image
(frontend config, clip length, each file's path, size and mtime, and for augmented copies
the augmentation settings and seed): a stale cache cannot be read, and a cached run gives
the same numbers as an uncached one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from audiocnn import audio
from audiocnn.augment import augmented_waveform, waveform_transform
from audiocnn.config import WaveformAugmentConfig
from audiocnn.datasets.base import Clip
from audiocnn.errors import AudioError, DatasetError
from audiocnn.features import Frontend

BATCH = 32
#: Bumped when the way augmented copies are seeded changes, so older cached copies are not reused.
COPY_SEEDING = 2


def clip_images(clips: list[Clip], frontend: Frontend, clip_seconds: float, cache_dir: Path | None = None,
                *, progress: bool = True) -> torch.Tensor:
    """(len(clips), channels, rows, frames) float32 images, read from / written to `cache_dir`."""
    key = cache_key(clips, frontend.config(), clip_seconds)
    return _cached(cache_dir, key, lambda: _images(clip_waves(clips, frontend.sample_rate, clip_seconds, progress), frontend))


def augmented_images(clips: list[Clip], frontend: Frontend, clip_seconds: float, augment: WaveformAugmentConfig,
                     cache_dir: Path | None = None, *, seed: int = 0, progress: bool = True) -> torch.Tensor:
    """(augment.copies, len(clips), channels, rows, frames): images of seeded augmented copies.

    Copy k of a clip is drawn with the seed (seed, k, the clip's file name), so it does not
    depend on which other clips are in the list or in what order; the cache key holds the
    augmentation settings, the seed, and the audiomentations version (an upgrade may draw
    other copies from the same seed).
    """
    import audiomentations

    settings = {"augment": dataclasses.asdict(augment), "seed": seed, "scheme": COPY_SEEDING,
                "audiomentations": audiomentations.__version__}
    key = cache_key(clips, frontend.config(), clip_seconds, settings)

    def compute() -> torch.Tensor:
        waves = clip_waves(clips, frontend.sample_rate, clip_seconds, progress)
        transform = waveform_transform(augment)
        copies = []
        bar = tqdm(total=augment.copies * len(clips), desc="augmenting audio", unit="clip", disable=not progress,
                   leave=False)
        for k in range(augment.copies):
            copy = np.empty_like(waves)
            for i, (clip, wave) in enumerate(zip(clips, waves)):
                drawn = augmented_waveform(transform, wave, frontend.sample_rate, copy_seed(seed, k, clip.path))
                copy[i] = audio.fix_length(drawn, waves.shape[1])
                bar.update()
            copies.append(_images(copy, frontend))
        bar.close()
        return torch.stack(copies)

    return _cached(cache_dir, key, compute)


def copy_seed(seed: int, copy: int, path: Path) -> int:
    """The seed of one augmented copy of one clip: independent of every other clip."""
    return int(np.random.SeedSequence([seed, copy, zlib.crc32(path.name.encode())]).generate_state(1)[0])


def cache_key(clips: list[Clip], frontend: dict[str, Any], clip_seconds: float,
              extra: dict[str, Any] | None = None) -> str:
    settings: dict[str, Any] = {"frontend": frontend, "seconds": clip_seconds}
    if extra:
        settings["extra"] = extra
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for clip in clips:
        stat = clip.path.stat()
        digest.update(f"{clip.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _cached(cache_dir: Path | None, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    path = Path(cache_dir) / f"{key}.npy" if cache_dir is not None else None
    if path is not None and path.is_file():
        return torch.from_numpy(np.load(path))
    images = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial.npy")  # per process: DDP ranks may race
        np.save(partial, images.numpy())
        partial.replace(path)  # atomic: a killed run never leaves a half-written cache
    return images


def clip_waves(clips: list[Clip], rate: int, clip_seconds: float, progress: bool) -> np.ndarray:
    """Every clip decoded at `rate` and cut or zero-padded to `clip_seconds`; bad clips are one DatasetError."""
    n_samples = int(round(clip_seconds * rate))
    waves = np.zeros((len(clips), n_samples), dtype=np.float32)
    bad: list[str] = []
    for i, clip in enumerate(tqdm(clips, desc="reading audio", unit="clip", disable=not progress, leave=False)):
        try:
            waves[i] = audio.fix_length(audio.load(clip.path, rate), n_samples)
        except AudioError as err:
            bad.append(str(err))
    if bad:
        listed = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DatasetError(f"{len(bad)} of {len(clips)} clips cannot be read ({listed}); "
                           f"`audiocnn data info` lists every problem")
    return waves


def _images(waves: np.ndarray, frontend: Frontend) -> torch.Tensor:
    with torch.inference_mode():
        parts = [frontend(torch.from_numpy(waves[i : i + BATCH])) for i in range(0, len(waves), BATCH)]
    return torch.cat(parts) if parts else torch.empty(0)
