"""Feature pictures: axes that tell the truth about time and frequency."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from audiocnn.features import create_frontend
from audiocnn.viz.axes import frequency_ticks
from audiocnn.viz.features import MAX_FIGURE_SECONDS, excerpt, feature_figure


def test_frequency_ticks_sit_where_those_frequencies_are():
    rows = create_frontend("mel").row_frequencies()
    positions, labels = frequency_ticks(rows)
    assert labels == sorted(labels, key=lambda s: float(s.rstrip("k")) * (1000 if s.endswith("k") else 1))
    for position, label in zip(positions, labels):
        hz = float(label.rstrip("k")) * (1000 if label.endswith("k") else 1)
        assert abs(np.interp(position, np.arange(len(rows)), rows) - hz) < 1e-6 * hz + 1e-9
    assert "1k" in labels and len(labels) >= 4
    gaps = np.diff(positions)
    assert gaps.min() >= 0.07 * len(rows) - 1e-9


@pytest.mark.slow
def test_feature_figure_writes_a_picture_per_channel(tmp_path, esc50_clip):
    mel = feature_figure(esc50_clip, create_frontend("mel"), tmp_path / "mel.png")
    multires = feature_figure(esc50_clip, create_frontend("multires"), tmp_path / "multires.png")
    one, three = mpimg.imread(mel), mpimg.imread(multires)
    assert one.shape[1] == three.shape[1] and three.shape[0] > 2.5 * one.shape[0]
    assert one[..., :3].std() > 0.1  # not blank


@pytest.mark.slow
def test_cli_draws_all_kinds_of_a_clip(cli, tmp_path, esc50_clip):
    result = cli("features", esc50_clip, "--kind", "all", "--out", tmp_path, "--duration", "2")
    assert result.code == 0, result.err
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == sorted(f"1-100032-A-0.{k}.png" for k in ("logspec", "mel", "mfcc", "gammatone", "multires", "pcen"))


def test_long_recordings_are_drawn_from_a_readable_excerpt():
    assert excerpt(3600.0, 0.0, None) == (MAX_FIGURE_SECONDS, f" (0–{MAX_FIGURE_SECONDS:g} s of 3600 s)")
    assert excerpt(3600.0, 600.0, 10.0) == (10.0, " (600–610 s of 3600 s)")
    assert excerpt(5.0, 0.0, None) == (None, "")
    assert excerpt(5.0, 2.0, None) == (None, " (2–5 s of 5 s)")
    assert excerpt(5.0, 0.0, 10.0) == (10.0, "")


def test_an_excerpt_has_its_own_time_axis(esc50_clip):
    import matplotlib.pyplot as plt
    import torch

    from audiocnn import audio
    from audiocnn.viz.axes import draw_image

    frontend = create_frontend("mel")
    wave = audio.load(esc50_clip, 16_000, offset=2.0, duration=1.0)
    image = frontend(torch.from_numpy(wave))[0, 0].numpy()
    fig, ax = plt.subplots()
    draw_image(ax, image, frontend, len(wave), start=2.0)
    left, right = ax.get_xlim()
    plt.close(fig)
    assert abs(left - 2.0) < 0.02 and abs(right - 3.0) < 0.03
