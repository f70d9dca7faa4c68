"""Training-time augmentation: waveform transforms, SpecAugment and mixup.

SpecAugment and mixup act on a batch of images already in memory, so they stay cheap with
cached features and are redrawn every step: the model never sees the same masked or mixed
image twice. Waveform transforms (pitch, stretch, noise, gain, shift, low-pass) change the audio before
the spectrogram, so they cannot be redrawn per step from cached images; instead
`augmented_waveform` makes a fixed number of seeded copies per clip, which the cache turns
into images once (see `cache.augmented_images`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from audiocnn.config import SpecAugmentConfig, WaveformAugmentConfig

WaveformTransform = Callable[[np.ndarray, int], np.ndarray]


def waveform_transform(cfg: WaveformAugmentConfig) -> WaveformTransform:
    """The enabled audiomentations transforms as one (samples, rate) → samples function."""
    import audiomentations as A

    p = cfg.p
    steps = {
        "pitch": lambda: A.PitchShift(-cfg.pitch_semitones, cfg.pitch_semitones, p=p),
        "stretch": lambda: A.TimeStretch(cfg.min_stretch, cfg.max_stretch, leave_length_unchanged=True, p=p),
        "shift": lambda: A.Shift(-cfg.shift_seconds, cfg.shift_seconds, shift_unit="seconds", rollover=False, p=p),
        "gain": lambda: A.Gain(-cfg.gain_db, cfg.gain_db, p=p),
        # Coloured noise (white to brown) is closer to wind, traffic and hum than white noise.
        "noise": lambda: A.AddColorNoise(cfg.min_snr_db, cfg.max_snr_db, p=p),
        # Last, as the recorder would: its band limit applies to the sound and its noise alike.
        "lowpass": lambda: A.LowPassFilter(cfg.min_lowpass_hz, cfg.max_lowpass_hz, min_rolloff=24, max_rolloff=48, p=p),
    }
    compose = A.Compose([steps[name]() for name in steps if name in cfg.transforms])
    return lambda samples, rate: compose(samples=samples, sample_rate=rate)


def augmented_waveform(transform: WaveformTransform, samples: np.ndarray, rate: int, seed: int) -> np.ndarray:
    """One seeded draw of `transform`: the same seed gives the same copy.

    audiomentations draws from the global RNGs, so they are seeded here and restored after:
    the caller's random state is left as it was.
    """
    saved = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        out = transform(samples.astype(np.float32, copy=True), rate)
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
    return np.nan_to_num(out.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)


def spec_augment(images: Tensor, cfg: SpecAugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """Zero random bands of rows (frequency) and columns (time) per image (Park et al. 2019).

    Masked cells are set to 0, the mean of normalised images, so masks add no energy.
    """
    if not (cfg.freq_masks and cfg.freq_width) and not (cfg.time_masks and cfg.time_width):
        return images
    batch, _, rows, cols = images.shape
    keep = torch.ones(batch, 1, rows, cols, dtype=torch.bool, device=images.device)
    for count, width, size, axis in ((cfg.freq_masks, cfg.freq_width, rows, 2), (cfg.time_masks, cfg.time_width, cols, 3)):
        for _ in range(count if width else 0):
            widths = torch.randint(0, min(width, size) + 1, (batch,), generator=generator)
            starts = (torch.rand(batch, generator=generator) * (size - widths + 1)).long()
            index = torch.arange(size)
            band = (index[None] >= starts[:, None]) & (index[None] < (starts + widths)[:, None])  # (batch, size)
            shape = (batch, 1, size, 1) if axis == 2 else (batch, 1, 1, size)
            keep &= ~band.view(shape).to(images.device)
    return images * keep


def mixup(images: Tensor, labels: Tensor, alpha: float, generator: torch.Generator | None = None
          ) -> tuple[Tensor, Tensor, Tensor, float]:
    """Blend each image with another from the batch: returns (mixed, labels, partner labels, λ)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 1.0
    order = torch.randperm(len(images), generator=generator).to(images.device)
    return lam * images + (1 - lam) * images[order], labels, labels[order], lam
