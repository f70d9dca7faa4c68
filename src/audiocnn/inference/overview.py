"""A recording's log-mel overview, collected while it streams through prediction.

`predict --timeline` draws labels over the spectrogram of the whole recording. Reading the
file a second time would double the cost of an hour-long file, so the blocks the predictor
reads are passed to a `SpectrogramCollector` as they go by; it averages groups of frames, so
a long recording gives an image of bounded size (`MAX_COLUMNS`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from audiocnn.features import Frontend, create_frontend

#: Spectrogram columns kept at most; longer recordings average groups of frames.
MAX_COLUMNS = 2400


class SpectrogramCollector:
    """Receives a recording's blocks in order and keeps a time-pooled log-mel image of them.

    It draws with its own plain log-mel frontend at the model's sample rate, whatever the
    model's features are: a multi-resolution frontend resizes every input to a fixed width,
    which would squash a long block into a few columns.
    """

    def __init__(self, sample_rate: int, expected_seconds: float, max_columns: int = MAX_COLUMNS, *,
                 start: float = 0.0) -> None:
        self.frontend: Frontend = create_frontend({"kind": "mel", "sample_rate": sample_rate})
        self.hop = self.frontend.params.hop_length
        self.frame_seconds = self.hop / sample_rate
        self.pool = max(1, math.ceil(expected_seconds / self.frame_seconds / max_columns))
        self._columns: list[np.ndarray] = []
        self._leftover: np.ndarray | None = None
        self.seconds = 0.0  # collected so far
        self.start = start  # where in the recording its first block begins (a stretch drawn in detail)

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
        """The overview so far: (bands, columns) dB, the last partial column averaged."""
        parts = list(self._columns)
        if self._leftover is not None:
            parts.append(self._leftover.mean(axis=1, keepdims=True))
        return np.concatenate(parts, axis=1)
