"""`predict --timeline`: what was heard when, drawn over the recording's spectrogram.

The top panel has one lane per label (the labels that reach the highest probability in any
window), coloured by that label's probability in each window; the bottom panel is the
spectrogram the windows were cut from, on the same time axis. Lanes rather than one text
label per window stay readable for a 5-second clip and for a 10-hour soundscape alike.

The spectrogram is collected while the file streams through prediction (no second read;
`inference.overview`), so a long recording gives a picture of bounded size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from audiocnn.inference.overview import SpectrogramCollector
from audiocnn.inference.predictor import FilePrediction
from audiocnn.viz.axes import figure, frequency_ticks, save

#: Label lanes drawn at most.
MAX_LANES = 8


def save_timeline(prediction: FilePrediction, spectrogram: SpectrogramCollector, out: Path,
                  *, lanes: int = MAX_LANES, denoised: bool = False) -> Path:
    """Write the label-lanes-over-spectrogram PNG for one file."""
    return save(timeline_figure(prediction, spectrogram, lanes=lanes, denoised=denoised), out, dpi=100)


def timeline_figure(prediction: FilePrediction, spectrogram: SpectrogramCollector, *, lanes: int = MAX_LANES,
                    denoised: bool = False, width: float = 12.0, span: tuple[float, float] | None = None) -> Figure:
    """Label lanes (the `lanes` labels that reach the highest probability, the highest on top) over the
    spectrogram, on one time axis in seconds; `width` in inches (a phone's page asks for a narrow one,
    so that its text is drawn at a size it can read, not shrunk). `span`: draw only these seconds (the
    spectrogram then holds that stretch, `spectrogram.start` on), with the lanes of the labels heard there."""
    probs = prediction.probabilities
    inside = ((prediction.ends > span[0]) & (prediction.starts < span[1])) if span else np.ones(len(probs), bool)
    heard = probs[inside] if inside.any() else probs
    shown = np.argsort(-heard.max(axis=0), kind="stable")[: min(lanes, probs.shape[1])][::-1]
    # Each window owns the stretch around its centre up to halfway to its neighbours' centres;
    # the first and last stretch reach the ends of the recording.
    centres = (prediction.starts + prediction.ends) / 2
    edges = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [max(prediction.duration, centres[-1])]])

    fig = figure(figsize=(width, 2.2 + 0.32 * len(shown) + 3.2))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [0.5 + 0.32 * len(shown), 3.2]})
    lanes_artist = top.pcolormesh(edges, np.arange(len(shown) + 1) - 0.5, probs[:, shown].T, cmap="viridis",
                                  vmin=0, vmax=1)
    top.set_yticks(range(len(shown)), [prediction.labels[i] for i in shown])
    fig.colorbar(lanes_artist, ax=top, label="probability", pad=0.01)
    narrow = width < 8  # a phone's: the summary on a line of its own, its first two labels only
    summary = ", ".join(label if p is None else f"{label} {p:.2f}"
                        for label, p in prediction.top(prediction.summary, 2 if narrow else 3))
    what = f"{span[0]:.1f}–{span[1]:.1f} s of {prediction.duration:.1f} s" if span else f"whole file: {summary}"
    top.set_title(f"{prediction.path.name}{chr(10) if narrow else ' — '}{what}", fontsize=11)

    image = spectrogram.image()
    frontend = spectrogram.frontend
    row_hz = frontend.row_frequencies()
    spec_artist = bottom.imshow(image, aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
                                extent=(spectrogram.start, spectrogram.start + spectrogram.seconds, -0.5,
                                        image.shape[0] - 0.5))
    if row_hz is not None:
        positions, names = frequency_ticks(np.asarray(row_hz))
        bottom.set_yticks(positions, names)
        bottom.set_ylabel("Frequency (Hz)")
    fig.colorbar(spec_artist, ax=bottom, label="dB", pad=0.01)
    bottom.set_xlabel("Time (s)")
    bottom.set_xlim(*(span or (0, max(prediction.duration, spectrogram.seconds))))
    pooled = f", averaged over {spectrogram.pool * spectrogram.frame_seconds:g} s per column" if spectrogram.pool > 1 else ""
    bottom.set_title(f"log-mel spectrogram{' after --denoise' if denoised else ''}{pooled}", fontsize=9)
    return fig


def timeline_path(target: Path, audio_path: Path, n_files: int) -> Path:
    """`target` itself for one file and a .png target; else `target/<name>.timeline.png`."""
    if target.suffix.lower() == ".png" and n_files == 1:
        return target
    return target / f"{audio_path.stem}.timeline.png"
