"""`predict --timeline`: what was heard when, drawn over the recording's spectrogram.

The top panel has one lane per label (the labels that reach the highest probability in any
window), coloured by that label's probability in each window; the bottom panel is the
spectrogram the windows were cut from, on the same time axis. Lanes rather than one text
label per window stay readable for a 5-second clip and for a 10-hour soundscape alike.

The spectrogram is collected while the file streams through prediction (no second read)
and averaged over groups of frames, so a long recording gives a picture of bounded size.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from audiocnn.features import Frontend, create_frontend
from audiocnn.plots import frequency_ticks, plt
from audiocnn.predict import FilePrediction

#: Spectrogram columns drawn at most; longer recordings average groups of frames.
MAX_COLUMNS = 2400
#: Label lanes drawn at most.
MAX_LANES = 8


class SpectrogramCollector:
    """Receives a recording's blocks in order and keeps a time-pooled log-mel image of them.

    It draws with its own plain log-mel frontend at the model's sample rate, whatever the
    model's features are: a multi-resolution frontend resizes every input to a fixed width,
    which would squash a long block into a few columns.
    """

    def __init__(self, sample_rate: int, expected_seconds: float, max_columns: int = MAX_COLUMNS) -> None:
        self.frontend: Frontend = create_frontend({"kind": "mel", "sample_rate": sample_rate})
        self.hop = self.frontend.params.hop_length
        self.frame_seconds = self.hop / sample_rate
        self.pool = max(1, math.ceil(expected_seconds / self.frame_seconds / max_columns))
        self._columns: list[np.ndarray] = []
        self._leftover: np.ndarray | None = None
        self.seconds = 0.0

    def __call__(self, block: np.ndarray) -> None:
        with torch.inference_mode():
            image = self.frontend(torch.from_numpy(block))[0, 0].numpy()
        # Centred framing adds one frame per block; drop it so block seams do not drift in time.
        image = image[:, : max(1, len(block) // self.hop)]
        self.seconds += len(block) / self.frontend.sample_rate
        if self._leftover is not None:
            image = np.concatenate([self._leftover, image], axis=1)
        whole = image.shape[1] // self.pool * self.pool
        if whole:
            self._columns.append(image[:, :whole].reshape(image.shape[0], -1, self.pool).mean(axis=2))
        self._leftover = image[:, whole:] if whole < image.shape[1] else None

    def image(self) -> np.ndarray:
        parts = list(self._columns)
        if self._leftover is not None:
            parts.append(self._leftover.mean(axis=1, keepdims=True))
        return np.concatenate(parts, axis=1)


def save_timeline(prediction: FilePrediction, spectrogram: SpectrogramCollector, out: Path,
                  *, lanes: int = MAX_LANES, denoised: bool = False) -> Path:
    """Write the label-lanes-over-spectrogram PNG for one file."""
    probs = prediction.probabilities
    shown = np.argsort(-probs.max(axis=0), kind="stable")[: min(lanes, probs.shape[1])][::-1]
    # Each window owns the stretch around its centre up to halfway to its neighbours' centres;
    # the first and last stretch reach the ends of the recording.
    centres = (prediction.starts + prediction.ends) / 2
    edges = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [max(prediction.duration, centres[-1])]])

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 2.2 + 0.32 * len(shown) + 3.2), sharex=True, constrained_layout=True,
        gridspec_kw={"height_ratios": [0.5 + 0.32 * len(shown), 3.2]},
    )
    lanes_artist = top.pcolormesh(edges, np.arange(len(shown) + 1) - 0.5, probs[:, shown].T, cmap="viridis",
                                  vmin=0, vmax=1)
    top.set_yticks(range(len(shown)), [prediction.labels[i] for i in shown])
    fig.colorbar(lanes_artist, ax=top, label="probability", pad=0.01)
    summary = ", ".join(f"{label} {p:.2f}" for label, p in prediction.top(prediction.summary, 3))
    top.set_title(f"{prediction.path.name} — whole file: {summary}", fontsize=11)

    image = spectrogram.image()
    frontend = spectrogram.frontend
    row_hz = frontend.row_frequencies()
    spec_artist = bottom.imshow(image, aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
                                extent=(0.0, spectrogram.seconds, -0.5, image.shape[0] - 0.5))
    if row_hz is not None:
        positions, names = frequency_ticks(np.asarray(row_hz))
        bottom.set_yticks(positions, names)
        bottom.set_ylabel("Frequency (Hz)")
    fig.colorbar(spec_artist, ax=bottom, label="dB", pad=0.01)
    bottom.set_xlabel("Time (s)")
    bottom.set_xlim(0, max(prediction.duration, spectrogram.seconds))
    pooled = f", averaged over {spectrogram.pool * spectrogram.frame_seconds:g} s per column" if spectrogram.pool > 1 else ""
    bottom.set_title(f"log-mel spectrogram{' after --denoise' if denoised else ''}{pooled}", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
