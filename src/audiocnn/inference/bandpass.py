"""`--fmin/--fmax`: hear only a band of frequencies, before the frontend (a site's low rumble of traffic
or wind, or the high band where insects drown the calls a model is asked about).

A Butterworth filter (4th order, as second-order sections) runs over the recording's blocks as they
stream, its state carried from one block to the next, so a recording filtered in blocks is the same as
filtered whole (the tests compare them), and an hour takes no more memory than a block. It is causal:
a few milliseconds of delay at the band's edges, far below a window's length.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt, sosfilt_zi

from audiocnn.errors import OptionError

ORDER = 4


def checked_band(fmin: float | None, fmax: float | None, rate: int) -> None:
    """An `OptionError` naming the option when the band is empty or reaches past half the sample rate."""
    nyquist = rate / 2
    if fmax is not None and fmax >= nyquist:
        raise OptionError("fmax", f"must be below half the model's sample rate, {nyquist:g} Hz (got {fmax:g})")
    if fmin is not None and fmax is not None and fmin >= fmax:
        raise OptionError("fmin", f"must be below fmax {fmax:g} Hz (got {fmin:g})")


class Bandpass:
    """A band filter for one recording's blocks, in order (make a new one for the next recording)."""

    def __init__(self, rate: int, fmin: float | None, fmax: float | None) -> None:
        checked_band(fmin, fmax, rate)
        if fmin and fmax:
            self.sos = butter(ORDER, [fmin, fmax], btype="bandpass", output="sos", fs=rate)
        elif fmin:
            self.sos = butter(ORDER, fmin, btype="highpass", output="sos", fs=rate)
        else:
            self.sos = butter(ORDER, fmax, btype="lowpass", output="sos", fs=rate)
        self.state: np.ndarray | None = None

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.state is None:  # start as if the recording had been at its first sample's level: no click
            self.state = sosfilt_zi(self.sos) * (block[0] if len(block) else 0.0)
        filtered, self.state = sosfilt(self.sos, block, zi=self.state)
        return filtered.astype(np.float32)
