"""Feature images of audio files: what the CNN sees, one panel per channel (`audiocnn features`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from audiocnn import audio
from audiocnn.features import Frontend
from audiocnn.viz.axes import draw_image, figure, save


def plane_names(frontend: Frontend) -> list[str]:
    """Subtitles for the channels of a multi-channel image (the multires windows)."""
    wins = getattr(frontend.params, "win_ms", None)
    hops = getattr(frontend.params, "hop_ms", None)
    if frontend.out_channels > 1 and isinstance(wins, tuple) and isinstance(hops, tuple):
        return [f"window {w:g} ms, hop {h:g} ms" for w, h in zip(wins, hops)]
    return [f"channel {i + 1}" for i in range(frontend.out_channels)]


def save_feature_figure(
    image: np.ndarray, frontend: Frontend, n_samples: int, title: str, out: Path, *, start: float = 0.0
) -> Path:
    """Write a PNG of a (channels, rows, frames) feature image: one panel per channel.

    `start` (s) labels the time axis from where the excerpt begins in its recording.
    """
    channels = image.shape[0]
    fig = figure(figsize=(10, 3.6 * channels))
    axes = fig.subplots(channels, 1, squeeze=False)
    unit = frontend.value_label
    names = plane_names(frontend) if channels > 1 else [""]
    for plane, ax, name in zip(image, axes[:, 0], names):
        artist = draw_image(ax, plane, frontend, n_samples, start=start)
        fig.colorbar(artist, ax=ax, label=unit, pad=0.01)
        if name:
            ax.set_title(name, fontsize=10)
    fig.suptitle(title)
    return save(fig, out, dpi=100)


#: Without an explicit duration, longer recordings are drawn from their first this-many seconds.
MAX_FIGURE_SECONDS = 120.0


def excerpt(total: float, offset: float, duration: float | None) -> tuple[float | None, str]:
    """How much of a `total`-second recording to draw, and a title note naming the part."""
    if duration is None and total - offset > MAX_FIGURE_SECONDS:
        duration = MAX_FIGURE_SECONDS
    if offset <= 0 and (duration is None or offset + duration >= total):
        return duration, ""
    end = total if duration is None else min(total, offset + duration)
    return duration, f" ({offset:g}–{end:g} s of {total:g} s)"


def feature_figure(
    audio_path: Path, frontend: Frontend, out: Path, *, offset: float = 0.0, duration: float | None = None
) -> Path:
    """Load `audio_path` at the frontend's rate, compute its image and save it as a PNG.

    An hour-long recording would make an unreadable (and huge) picture, so without a
    `duration` at most MAX_FIGURE_SECONDS are drawn, and the title says which part.
    """
    import torch

    duration, part = excerpt(audio.info(audio_path).duration, offset, duration)
    waveform = audio.load(audio_path, frontend.sample_rate, offset=offset, duration=duration)
    with torch.inference_mode():
        image = frontend(torch.from_numpy(waveform))[0].numpy()
    title = f"{audio_path.name}{part}\n" + textwrap.fill(frontend.describe(), width=110)
    return save_feature_figure(image, frontend, len(waveform), title, out, start=offset)
