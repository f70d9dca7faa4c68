"""Windows over a streamed signal: where they start, and how the last ones are padded.

Windows start every `hop` samples; a signal shorter than one window gives one zero-padded
window, and the last windows of a longer one are zero-padded too — zeros are what a short
ESC-50 clip is padded with in training, so the model has seen them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from audiocnn import audio


def window_count(n_samples: int, window: int, hop: int) -> int:
    """Windows that cover `n_samples`: one for a short clip, then one every `hop` until the end is reached."""
    return 1 + max(0, math.ceil((n_samples - window) / hop))


def windows(blocks: Iterable[np.ndarray], window: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start sample, `window` samples) for consecutive blocks of one signal.

    Windows are cut as soon as the buffer holds them; when the blocks end, the remaining
    windows (see `window_count`) are zero-padded. The buffer never holds more than one
    window plus one block, whatever the length of the signal.
    """
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = next_start = total = 0
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        total += len(block)
        while next_start + window <= buffer_start + len(buffer):
            offset = next_start - buffer_start
            yield next_start, buffer[offset : offset + window]
            next_start += hop
        drop = min(next_start - buffer_start, len(buffer))
        buffer, buffer_start = buffer[drop:], buffer_start + drop
    if total == 0:
        return
    for k in range(next_start // hop, window_count(total, window, hop)):
        start = k * hop
        yield start, audio.fix_length(buffer, window, start=max(0, start - buffer_start))
