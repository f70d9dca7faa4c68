"""Axes a person reads: spectrogram images with time (s) and frequency (Hz) axes, and figures.

Rows of mel, gammatone and multi-resolution images are not linear in Hz, so the y axis is
drawn in row units with ticks placed at round frequencies (100 Hz, 1 kHz, ...) where those
frequencies actually fall. That keeps the image undistorted and the labels truthful.

Figures are made with matplotlib's object API (`Figure`), not pyplot: no backend is chosen
and no global state is kept, so figures can be drawn from several threads at once (as a
server would) and importing this package changes nothing in the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from audiocnn import atomic
from audiocnn.errors import ConfigError
from audiocnn.features import Frontend


def figure(**options: Any) -> Figure:
    """A new figure (constrained layout unless `layout` says otherwise), owned by the caller."""
    return Figure(**{"layout": "constrained", **options})


def save(fig: Figure, out: Path, dpi: int = 100) -> Path:
    """Write `fig` at `out` in the format its suffix names (.png, .svg, .pdf, ...; none: .png is added),
    folders created, atomically: a reader never sees half a picture. Returns the path written."""
    out = Path(out)
    if not out.suffix:
        out = out.with_suffix(".png")
    kind = out.suffix[1:].lower()
    if kind not in fig.canvas.get_supported_filetypes():
        raise ConfigError(f"{out}: cannot draw a .{kind} picture (use .png, .svg or .pdf)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replaced(out) as partial:
        fig.savefig(partial, dpi=dpi, format=kind)
    return out


_NICE_HZ = np.array([m * 10**e for e in range(1, 6) for m in (1, 2, 5)], dtype=float)


def format_hz(hz: float) -> str:
    """A tick label for a frequency: `500`, `2k`, `12.5k`."""
    return f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:g}"


def frequency_ticks(row_hz: np.ndarray, min_gap: float = 0.07) -> tuple[np.ndarray, list[str]]:
    """Row positions and labels for round frequencies, at least `min_gap` of the height apart."""
    rows = np.arange(len(row_hz))
    candidates = _NICE_HZ[(row_hz[0] <= _NICE_HZ) & (row_hz[-1] >= _NICE_HZ)]
    positions: list[float] = []
    labels: list[str] = []
    # Prefer the top-most labels first, which are the sparse end on mel/ERB axes.
    for hz in candidates[::-1]:
        pos = float(np.interp(hz, row_hz, rows))
        if all(abs(pos - p) >= min_gap * len(rows) for p in positions):
            positions.append(pos)
            labels.append(format_hz(hz))
    order = np.argsort(positions)
    return np.array(positions)[order], [labels[i] for i in order]


def draw_image(
    ax: Axes, image: np.ndarray, frontend: Frontend, n_samples: int, *, start: float = 0.0, cmap: str = "magma"
):
    """Draw one (rows, frames) plane on `ax` with labelled axes; returns the image artist.

    Linear-frequency rows get a plain Hz axis; mel/ERB rows get round-Hz ticks where those
    frequencies fall. Coefficient images (MFCC) get a colour range that ignores the first
    row, whose energy term would otherwise flatten every other coefficient to one colour.
    """
    times = start + frontend.frame_times(image.shape[1], n_samples)
    step = times[1] - times[0] if len(times) > 1 else n_samples / frontend.sample_rate
    row_hz = frontend.row_frequencies()
    linear = row_hz is not None and len(row_hz) > 2 and np.allclose(np.diff(row_hz), row_hz[1] - row_hz[0])
    if linear:
        half = (row_hz[1] - row_hz[0]) / 2
        rows = (row_hz[0] - half, row_hz[-1] + half)
    else:
        rows = (-0.5, image.shape[0] - 0.5)
    limits = np.percentile(image[1:], [1, 99]) if row_hz is None and image.shape[0] > 2 else (None, None)
    artist = ax.imshow(
        image, origin="lower", aspect="auto", extent=(times[0] - step / 2, times[-1] + step / 2, *rows),
        cmap=cmap, interpolation="nearest", vmin=limits[0], vmax=limits[1],
    )
    ax.set_xlabel("Time (s)")
    ax.set_ylabel(frontend.row_label)
    if linear:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda hz, _: format_hz(hz)))
    elif row_hz is not None:
        positions, labels = frequency_ticks(np.asarray(row_hz))
        ax.set_yticks(positions, labels)
    return artist
