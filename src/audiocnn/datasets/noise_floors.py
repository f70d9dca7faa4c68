"""Noise floors: recordings of nothing but a recorder's, a room's or the mains' steady noise, made from a seed.

A field recording is mostly noise floor. A model trained on ESC-50 alone has never been told
that a quiet steady hiss is no sound at all: the bundled model gave a class (mostly `crickets`)
to 82.5% of noise-only windows (BENCHMARKS.md, "Noise floors"). Shown such windows as outliers
(`train.outliers.noise_floors`), a model learns to be unsure about them, so `unknown` catches them.

The kinds, each at a level in dBFS (RMS; 0 dBFS is a full-scale sine's):
- white, pink (1/f) and brown (1/f²) noise;
- recorder self-noise: white noise through a gentle high shelf (hiss);
- room tone: brown and pink noise below 2 kHz, the rumble and air of a quiet room;
- mains hum at 50 or 60 Hz with odd harmonics, over faint hiss;
- digital silence.

Nothing is downloaded; the same seed gives the same samples everywhere (numpy's PCG64).
`benchmarks/noise_floors.py` checks models on floors of another seed and on kinds never trained on.
"""

from __future__ import annotations

import numpy as np

#: What `floor` can make.
KINDS = ("white", "pink", "brown", "self-noise", "room tone", "hum 50 Hz", "hum 60 Hz", "digital silence")
#: The levels training floors are drawn from (dBFS): a loud hiss to below a good recorder's own noise.
LEVEL_RANGE_DBFS = (-95.0, -25.0)


def coloured(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise: white, pink (power falling as 1/f) or brown (1/f²), shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    spectrum *= {"white": 1.0, "pink": f ** -0.5, "brown": f ** -1.0}[kind]
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise ** 2))


def at_level(signal: np.ndarray, dbfs: float) -> np.ndarray:
    """`signal` scaled to an RMS of `dbfs` (0 dBFS: a full-scale sine's RMS, 1/√2); silence stays silence."""
    rms = np.sqrt(np.mean(signal ** 2))
    scale = 10 ** (dbfs / 20) / np.sqrt(2) / rms if rms > 0 else 0.0
    return (signal * scale).astype(np.float32)


def floor(kind: str, dbfs: float, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples at `rate` of one kind of floor (`KINDS`) at `dbfs`."""
    if kind in ("white", "pink", "brown"):
        return at_level(coloured(kind, n, rng), dbfs)
    if kind == "self-noise":
        shelf = 1 + 3 * np.fft.rfftfreq(n, 1 / rate) / (rate / 2)
        return at_level(np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * shelf, n), dbfs)
    if kind == "room tone":
        low = np.fft.rfft(coloured("brown", n, rng) + 0.5 * coloured("pink", n, rng))
        low[np.fft.rfftfreq(n, 1 / rate) > 2_000] = 0
        return at_level(np.fft.irfft(low, n), dbfs)
    if kind.startswith("hum"):
        mains = int(kind.split()[1])
        t = np.arange(n) / rate + rng.uniform(0, 1)  # a random phase
        hum = sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 3, 5, 7))
        return at_level(hum, dbfs) + floor("self-noise", dbfs - 25, n, rate, rng)
    if kind == "digital silence":
        return np.zeros(n, np.float32)
    raise ValueError(f"unknown noise floor {kind!r} (known: {', '.join(KINDS)})")


def training_floors(count: int, n: int, rate: int, seed: int) -> np.ndarray:
    """(count, n) windows for outlier exposure: every kind in turn, each at a level drawn from
    `LEVEL_RANGE_DBFS`."""
    rng = np.random.default_rng([seed, 31])  # not the benchmark's stream (a plain seed)
    levels = rng.uniform(*LEVEL_RANGE_DBFS, size=count)
    return np.stack([floor(KINDS[i % len(KINDS)], levels[i], n, rate, rng) for i in range(count)]) if count else \
        np.zeros((0, n), np.float32)
