"""Spectral-gating noise reduction (noisereduce) before a recording is classified.

Field recordings carry wind, traffic and hiss that ESC-50's clips mostly lack. Spectral
gating estimates a noise floor per frequency and turns down what stays near it. We use the
non-stationary variant (the floor follows the recording with a 2 s time constant), which
needs no noise-only excerpt from the user. Streamed recordings are denoised block by block;
each block is long (a minute) next to the time constant, so the seams are short.

`strength` is noisereduce's `prop_decrease`: the share of the noise removed. Full removal
(1.0) leaves near-silent holes between events, an image the model never saw in training, and
cost 39 points of accuracy on clean ESC-50 clips; 0.5 (the default) cost nothing on clean
clips and helped at 0–5 dB SNR (BENCHMARKS.md, benchmarks/denoise.py).
"""

from __future__ import annotations

import numpy as np

#: noisereduce's STFT size; shorter pieces are zero-padded to it and cut back afterwards.
N_FFT = 1024
#: The share of the estimated noise removed by default (see the module docstring).
DEFAULT_STRENGTH = 0.5


def reduce_noise(waveform: np.ndarray, sample_rate: int, strength: float = DEFAULT_STRENGTH) -> np.ndarray:
    """The waveform with `strength` of its background gated out (same length, float32)."""
    import noisereduce

    if len(waveform) == 0:
        return waveform
    padded = np.pad(waveform, (0, max(0, 2 * N_FFT - len(waveform))))
    clean = noisereduce.reduce_noise(y=padded, sr=sample_rate, stationary=False, n_fft=N_FFT,
                                     prop_decrease=strength)
    return np.asarray(clean[: len(waveform)], dtype=np.float32)
