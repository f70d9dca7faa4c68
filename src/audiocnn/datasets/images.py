"""The images of a dataset's clips, computed once and kept in a feature cache.

On a CPU, decoding and the STFT cost as much as a small CNN's forward pass, so training
computes the images of all clips once (fixed length, no augmentation) and reuses them for
every epoch and every fold; quantization and dataset explanations read the same images.
A cache file is keyed by everything that changes an image (frontend config, clip length,
each file's path, size and mtime, the part of it a clip is cut from, and any `extra`
settings, such as augmentation): a stale cache cannot be read, and a cached run gives the same
numbers as an uncached one. A whole-file clip's entry is keyed as before parts existed, so
existing caches stay valid.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from platformdirs import user_cache_path
from tqdm import tqdm

from audiocnn import atomic, audio
from audiocnn.datasets.base import Clip
from audiocnn.errors import AudiocnnWarning, DatasetError, item_failure
from audiocnn.features import Frontend

#: Clips per frontend call.
BATCH = 32


def default_cache_dir() -> Path:
    """The per-user feature cache (`~/.cache/audiocnn/features` on Linux; honours XDG_CACHE_HOME)."""
    return user_cache_path("audiocnn", appauthor=False) / "features"


def clip_images(clips: list[Clip], frontend: Frontend, clip_seconds: float, cache_dir: Path | None = None,
                *, progress: bool = True) -> torch.Tensor:
    """(len(clips), channels, rows, frames) float32 images, read from / written to `cache_dir`."""
    key = cache_key(clips, frontend.config(), clip_seconds)
    return cached(cache_dir, key, lambda: images_of(clip_waves(clips, frontend.sample_rate, clip_seconds, progress),
                                                    frontend), shape=lambda: (len(clips), *image_shape(frontend, clip_seconds)))


def image_shape(frontend: Frontend, clip_seconds: float) -> tuple[int, ...]:
    """(channels, rows, frames) of one clip's image: what a cached entry must hold per clip."""
    with torch.inference_mode():
        return tuple(frontend(torch.zeros(1, int(round(clip_seconds * frontend.sample_rate)))).shape[1:])


def cache_key(clips: list[Clip], frontend: dict[str, Any], clip_seconds: float,
              extra: dict[str, Any] | None = None) -> str:
    """A digest of everything that changes the images of `clips`."""
    settings: dict[str, Any] = {"frontend": frontend, "seconds": clip_seconds}
    if extra:
        settings["extra"] = extra
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for clip in clips:
        stat = clip.path.stat()
        digest.update(f"{clip.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}{clip.segment}\n".encode())
    return digest.hexdigest()[:24]


def cached(cache_dir: Path | None, key: str, compute: Callable[[], torch.Tensor],
           shape: Callable[[], tuple[int, ...]] | None = None) -> torch.Tensor:
    """The tensor stored under `key`, or `compute()` stored there atomically (no cache: just computed).

    An entry that is not a float32 array of `shape()` (-1: any size on that axis; asked only when
    an entry is there to check) is set aside like a damaged one: a valid `.npy` of the wrong shape
    (a file copied in by hand, another version's layout) otherwise failed deep inside training, on
    every run.
    """
    path = Path(cache_dir) / f"{key}.npy" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            stored = np.load(path)  # never a pickle: np.load refuses them by default
            _check_entry(stored, shape() if shape is not None else None)
            return torch.from_numpy(stored)
        except (ValueError, OSError, EOFError) as err:  # truncated or garbage (a full disk, a bad copy)
            warnings.warn(f"{path}: unreadable feature-cache entry ({err}); computing it again", AudiocnnWarning,
                          stacklevel=2)
    images = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replaced(path) as partial, partial.open("wb") as handle:  # DDP ranks may race: each its own
            np.save(handle, images.numpy())
    return images


def _check_entry(stored: np.ndarray, shape: tuple[int, ...] | None) -> None:
    """A ValueError unless `stored` is float32 of `shape` (-1 matches any size)."""
    if stored.dtype != np.float32:
        raise ValueError(f"holds {stored.dtype}, not float32")
    if shape is not None and (stored.ndim != len(shape) or any(want not in (-1, got)
                                                                for want, got in zip(shape, stored.shape))):
        raise ValueError(f"shape {tuple(stored.shape)}, expected {tuple('any' if n == -1 else n for n in shape)}")


def clip_waves(clips: list[Clip], rate: int, clip_seconds: float, progress: bool) -> np.ndarray:
    """Every clip (its part of the file, if it names one) decoded at `rate` and cut or zero-padded to
    `clip_seconds`; bad clips are one DatasetError."""
    n_samples = int(round(clip_seconds * rate))
    waves = np.zeros((len(clips), n_samples), dtype=np.float32)
    bad: list[str] = []
    for i, clip in enumerate(tqdm(clips, desc="reading audio", unit="clip", disable=not progress, leave=False)):
        try:
            wave = audio.load(clip.path, rate, offset=clip.start_s or 0.0, duration=clip.duration_s)
            waves[i] = audio.fix_length(wave, n_samples)
        except Exception as err:  # noqa: BLE001 - each bad clip is listed, whatever it raised
            bad.append(item_failure(clip.path, err))
    if bad:
        listed = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DatasetError(f"{len(bad)} of {len(clips)} clips cannot be read ({listed}); "
                           f"`audiocnn data info` lists every problem")
    return waves


def images_of(waves: np.ndarray, frontend: Frontend) -> torch.Tensor:
    """The frontend's images of (clips, samples) waveforms, computed in batches."""
    with torch.inference_mode():
        parts = [frontend(torch.from_numpy(waves[i : i + BATCH])) for i in range(0, len(waves), BATCH)]
    return torch.cat(parts) if parts else torch.empty(0)
