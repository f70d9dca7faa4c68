"""Training-time augmentation: waveform transforms, SpecAugment, Freq-MixStyle and mixup.

SpecAugment, Freq-MixStyle and mixup act on a batch of images already in memory, so they stay cheap with
cached features and are redrawn every step: the model never sees the same masked or mixed
image twice. Waveform transforms (pitch, stretch, shift, gain, room, background, noise, EQ, low-pass) change the audio before
the spectrogram, so they cannot be redrawn per step from cached images; instead
`augmented_waveform` makes a fixed number of seeded copies per clip, which the cache turns
into images once (see `training.cache.augmented_images`).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from audiocnn import audio
from audiocnn.config.train import FreqMixStyleConfig, SpecAugmentConfig, WaveformAugmentConfig
from audiocnn.errors import AudioError, ConfigError

WaveformTransform = Callable[[np.ndarray, int], np.ndarray]


def waveform_transform(cfg: WaveformAugmentConfig) -> WaveformTransform:
    """The enabled audiomentations transforms as one (samples, rate) → samples function.

    Built once per sample rate, since the EQ's bands are placed below that rate's Nyquist
    frequency (filters centred above it blow up).
    """
    import audiomentations as A

    from audiocnn.training.rooms import SimulatedRoom

    p = cfg.p
    steps = {
        "pitch": lambda rate: A.PitchShift(-cfg.pitch_semitones, cfg.pitch_semitones, p=p),
        "stretch": lambda rate: A.TimeStretch(cfg.min_stretch, cfg.max_stretch, leave_length_unchanged=True, p=p),
        "shift": lambda rate: A.Shift(-cfg.shift_seconds, cfg.shift_seconds, shift_unit="seconds", rollover=False, p=p),
        "gain": lambda rate: A.Gain(-cfg.gain_db, cfg.gain_db, p=p),
        # The event in a reverberant room, then the room's own ambience over it.
        "room": lambda rate: SimulatedRoom(cfg.min_rt60_s, cfg.max_rt60_s, p=p),
        "background": lambda rate: A.AddBackgroundNoise(background_files(cfg.backgrounds), cfg.min_background_snr_db,
                                                        cfg.max_background_snr_db, p=p),
        # Coloured noise (white to brown) is closer to wind, traffic and hum than white noise.
        "noise": lambda rate: A.AddColorNoise(cfg.min_snr_db, cfg.max_snr_db, p=p),
        # The microphone's (and room's) colouring applies to the sound and its noise alike.
        "eq": lambda rate: microphone_eq(cfg.eq_db, rate, p),
        # Last, as the recorder would: its band limit applies to the sound and its noise alike.
        "lowpass": lambda rate: A.LowPassFilter(cfg.min_lowpass_hz, cfg.max_lowpass_hz, min_rolloff=24, max_rolloff=48, p=p),
    }
    composed: dict[int, Callable] = {}

    def transform(samples: np.ndarray, rate: int) -> np.ndarray:
        if rate not in composed:
            composed[rate] = A.Compose([steps[name](rate) for name in steps if name in cfg.transforms])
        return composed[rate](samples=samples, sample_rate=rate)

    return transform


def background_files(folder: str | None) -> list[Path]:
    """The audio files under `folder` that background mixing draws from, in a fixed order.

    Raises ConfigError naming the setting and the folder or file when the folder is missing,
    holds no audio, or holds a file that cannot be read (checked once here, not mid-way
    through making the copies).
    """
    root = Path(folder or "").expanduser()
    if not folder or not root.is_dir():
        raise ConfigError(f"train.waveform.backgrounds: {root} is not a folder")
    files = audio.audio_files(root)
    if not files:
        raise ConfigError(f"train.waveform.backgrounds: {root} holds no audio files")
    for path in files:
        try:
            audio.info(path)
        except AudioError as err:
            raise ConfigError(f"train.waveform.backgrounds: {err}") from None
    return files


def microphone_eq(gain_db: float, rate: int, p: float) -> Callable:
    """A random tone colouring, as another microphone or room gives: bass and treble shelves
    and one peak, each with a gain drawn from ±gain_db, all placed below the Nyquist frequency."""
    import audiomentations as A

    nyquist = rate / 2
    return A.Compose([
        A.LowShelfFilter(50.0, min(400.0, 0.2 * nyquist), -gain_db, gain_db, p=1.0),
        A.PeakingFilter(200.0, 0.6 * nyquist, -gain_db, gain_db, min_q=0.5, max_q=2.0, p=1.0),
        A.HighShelfFilter(min(1500.0, 0.3 * nyquist), 0.7 * nyquist, -gain_db, gain_db, p=1.0),
    ], p=p)


def augmented_waveform(transform: WaveformTransform, samples: np.ndarray, rate: int, seed: int) -> np.ndarray:
    """One seeded draw of `transform`: the same seed gives the same copy.

    audiomentations draws from the global RNGs, so they are seeded here and restored after:
    the caller's random state is left as it was.
    """
    saved = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        with warnings.catch_warnings():  # a background bed at another rate is resampled, as it should be
            warnings.filterwarnings("ignore", message=".*had to be resampled", category=UserWarning)
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


def freq_mixstyle(images: Tensor, cfg: FreqMixStyleConfig, generator: torch.Generator | None = None) -> Tensor:
    """Blend each image's per-frequency mean and standard deviation with another image's.

    `generator` draws whether to mix and the partners; λ comes from torch's global generator
    (torch's Beta takes none), as in `mixup`: training saves and restores both on resume.

    Statistics are taken per image and frequency row over channels and time; the content
    normalised by them is kept, so the sound stays and only its colouring (level per band)
    changes. The whole batch is mixed with chance `cfg.p`, as in the reference recipe.
    """
    if cfg.p <= 0 or float(torch.rand((), generator=generator)) >= cfg.p:
        return images
    batch = len(images)
    mean = images.mean(dim=(1, 3), keepdim=True).detach()
    std = (images.var(dim=(1, 3), keepdim=True) + 1e-6).sqrt().detach()
    normalised = (images - mean) / std
    lam = torch.distributions.Beta(cfg.alpha, cfg.alpha).sample((batch, 1, 1, 1)).to(images.device, images.dtype)
    order = torch.randperm(batch, generator=generator).to(images.device)
    return normalised * (lam * std + (1 - lam) * std[order]) + lam * mean + (1 - lam) * mean[order]


def mixup(images: Tensor, labels: Tensor, alpha: float, generator: torch.Generator | None = None
          ) -> tuple[Tensor, Tensor, Tensor, float]:
    """Blend each image with another from the batch: returns (mixed, labels, partner labels, λ).

    With `alpha` 0 (off) the batch is returned as it is (λ = 1), without drawing a partner.
    """
    if alpha <= 0:
        return images, labels, labels, 1.0
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    order = torch.randperm(len(images), generator=generator).to(images.device)
    return lam * images + (1 - lam) * images[order], labels, labels[order], lam
