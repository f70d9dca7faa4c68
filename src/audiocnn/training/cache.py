"""Waveform-augmented copies of the training clips, as cached images.

Images cannot redraw an audio transform, so each clip gets `copies` seeded augmented
versions, computed once and kept in the same feature cache as the clips' own images
(`datasets.images`); the cache key adds the augmentation settings, the seed, the
audiomentations version and the background recordings' contents, so a changed setting or
recording never reads stale copies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audiocnn import audio
from audiocnn.config.train import WaveformAugmentConfig
from audiocnn.datasets.base import Clip
from audiocnn.datasets.images import cache_key, cached, clip_waves, image_shape, images_of
from audiocnn.features import Frontend
from audiocnn.training.augment import augmented_waveform, background_files, waveform_transform

#: Bumped when the way augmented copies are seeded changes, so older cached copies are not reused.
COPY_SEEDING = 2


def augmented_images(clips: list[Clip], frontend: Frontend, clip_seconds: float, augment: WaveformAugmentConfig,
                     cache_dir: Path | None = None, *, seed: int = 0, progress: bool = True) -> torch.Tensor:
    """(augment.copies, len(clips), channels, rows, frames): images of seeded augmented copies.

    Copy k of a clip is drawn with the seed (seed, k, the clip's file name and part), so it does not
    depend on which other clips are in the list or in what order; the cache key holds the
    augmentation settings, the seed, and the audiomentations version (an upgrade may draw
    other copies from the same seed).
    """
    import audiomentations

    settings = {"augment": dataclasses.asdict(augment), "seed": seed, "scheme": COPY_SEEDING,
                "audiomentations": audiomentations.__version__}
    if "background" in augment.transforms:  # the folder's recordings, not its name, decide the copies
        settings["backgrounds"] = folder_digest(background_files(augment.backgrounds))
    if "room" in augment.transforms:
        import pyroomacoustics

        from audiocnn.training.rooms import MAX_REFLECTION_ORDER, ROOM_SCHEME

        settings["rooms"] = {"pyroomacoustics": pyroomacoustics.__version__, "scheme": ROOM_SCHEME,
                             "max_order": MAX_REFLECTION_ORDER}
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
                drawn = augmented_waveform(transform, wave, frontend.sample_rate, copy_seed(seed, k, clip.path, clip.segment))
                copy[i] = audio.fix_length(drawn, waves.shape[1])
                bar.update()
            copies.append(images_of(copy, frontend))
        bar.close()
        return torch.stack(copies)

    return cached(cache_dir, key, compute,
                  shape=lambda: (augment.copies, len(clips), *image_shape(frontend, clip_seconds)))


def folder_digest(files: list[Path]) -> str:
    """A digest of these files' names and contents, in order: the same recordings give the same digest."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as stream:
            digest.update(hashlib.file_digest(stream, "sha256").digest())
    return digest.hexdigest()


def copy_seed(seed: int, copy: int, path: Path, segment: str = "") -> int:
    """The seed of one augmented copy of one clip: independent of every other clip.

    `segment` (`Clip.segment`) tells apart the clips cut from one recording; a whole file's
    is '', so its copies are the ones it always had."""
    return int(np.random.SeedSequence([seed, copy, zlib.crc32((path.name + segment).encode())]).generate_state(1)[0])
