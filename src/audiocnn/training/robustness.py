"""Accuracy on audio that is not ESC-50's: quieter, noisier, band-limited.

ESC-50 clips are clean, close-miked, loud and full-band; a user's recorder is none of these.
So every test fold is also scored after what a real recording does to a clip (`CONDITIONS`):
played 20 dB quieter (the images are in absolute dB, so level alone can move a prediction),
mixed with recorded-like background noise at 10 and 0 dB SNR, and band-limited to 4 kHz, as a
phone call, a cheap recorder or a low-bitrate codec leaves it (an 8th-order Butterworth
low-pass, zero phase).

The noise imitates an outdoor recorder's background rather than white noise: pink (1/f)
noise whose level drifts slowly (±3 dB, like wind and distant traffic), plus a weak mains
hum (50 Hz and two harmonics, 20 dB under the noise). SNR is the ratio of the clip's mean
power to the noise's over the whole clip. Each clip's noise is seeded by its file name, so
every model (every variant of a study) is judged on exactly the same mixtures, and the
comparison stays paired.

A condition added later is scored on its own (`save_fold` fills in what a fold's file lacks),
so resuming an old run adds the new column without retraining or rescoring the rest.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt

from audiocnn import atomic
from audiocnn.datasets.base import Clip
from audiocnn.datasets.images import clip_waves
from audiocnn.models.classifier import AudioClassifier

#: condition -> what it does to a clip (the column heading in reports)
CONDITIONS: dict[str, str] = {"quiet": "20 dB quieter", "snr10": "noise at 10 dB SNR", "snr0": "noise at 0 dB SNR",
                              "band4k": "band-limited to 4 kHz"}
FILE = "robustness.json"


def recorded_like_noise(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Pink noise with a slow ±3 dB level drift and a faint 50 Hz hum; unit mean power."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum[1:] /= np.sqrt(freqs[1:])  # 1/f power
    spectrum[0] = 0
    pink = np.fft.irfft(spectrum, n)
    t = np.arange(n) / rate
    drift = 10 ** (3 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi)) / 20)
    noise = pink / pink.std() * drift
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
    noise = noise + hum / hum.std() * 10 ** (-20 / 20)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def mix(clip: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`clip` plus `noise` (unit power) scaled to `snr_db` below the clip's mean power."""
    power = float(np.mean(clip**2))
    return (clip + noise * np.sqrt(power / 10 ** (snr_db / 10))).astype(np.float32)


def band_limit(clip: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray:
    """`clip` through a steep low-pass at `cutoff_hz`: nothing of note is left above it."""
    sos = butter(8, cutoff_hz, fs=rate, output="sos")
    return sosfiltfilt(sos, clip).astype(np.float32)


def degrade(clip: np.ndarray, condition: str, noise: np.ndarray, rate: int) -> np.ndarray:
    """One of `CONDITIONS` applied to a clip at `rate`; `noise` is the clip's own `recorded_like_noise`."""
    if condition == "quiet":
        return (clip * np.float32(0.1)).astype(np.float32)
    if condition.startswith("snr"):
        return mix(clip, noise, float(condition.removeprefix("snr")))
    if condition == "band4k":
        return band_limit(clip, rate, 4000.0)
    raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")


def clip_noise(path: Path, n: int, rate: int, segment: str = "") -> np.ndarray:
    """The noise of one clip, the same for every model: seeded by the file's name (and `Clip.segment`,
    so clips cut from one recording get their own noise; a whole file's noise is unchanged)."""
    return recorded_like_noise(n, rate, np.random.default_rng(zlib.crc32((path.name + segment).encode())))


def evaluate(model: AudioClassifier, clips: list[Clip], labels: list[str], clip_seconds: float,
             *, conditions: tuple[str, ...] = ("clean", *CONDITIONS), batch_size: int = 32) -> dict[str, float]:
    """Accuracy on `clips` under each of `conditions`: `clean` (as they are) and `CONDITIONS`."""
    rate = model.frontend.sample_rate
    waves = clip_waves(clips, rate, clip_seconds, progress=False)
    truth = np.array([labels.index(clip.label) for clip in clips])
    noises = [clip_noise(clip.path, waves.shape[1], rate, clip.segment) for clip in clips]
    model = model.eval()
    accuracy = {}
    for condition in conditions:
        inputs = waves if condition == "clean" else np.stack([degrade(w, condition, n, rate) for w, n in zip(waves, noises)])
        with torch.inference_mode():
            predicted = torch.cat([model(torch.from_numpy(inputs[i : i + batch_size])).argmax(-1)
                                   for i in range(0, len(inputs), batch_size)]).numpy()
        accuracy[condition] = float((predicted == truth).mean())
    return accuracy


def scored(fold_dir: Path) -> dict[str, float]:
    """A fold's `robustness.json` ({} if it has none, or one that a kill left empty or cut short:
    its conditions are then scored again from the fold's model)."""
    path = fold_dir / FILE
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def missing(fold_dir: Path) -> tuple[str, ...]:
    """The conditions (`clean` among them) a fold has not been scored on yet."""
    done = scored(fold_dir)
    return tuple(c for c in ("clean", *CONDITIONS) if c not in done)


def save_fold(fold_dir: Path, model: AudioClassifier, clips: list[Clip], labels: list[str],
              clip_seconds: float) -> dict[str, float]:
    """Score a fold's model on its test clips under the conditions it lacks; kept in FOLD/robustness.json."""
    accuracy = scored(fold_dir)
    todo = missing(fold_dir)
    if todo:
        accuracy |= evaluate(model, clips, labels, clip_seconds, conditions=todo)
        accuracy = {c: accuracy[c] for c in ("clean", *CONDITIONS) if c in accuracy}  # a fixed column order
        atomic.write_text(fold_dir / FILE, json.dumps(accuracy, indent=2) + "\n")  # a kill never leaves half one
    return accuracy
