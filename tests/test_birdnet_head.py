"""A head on BirdNET V2.4's embedding (issue 31): a recipe trains it, a bundle carries it, and the
commands that can run it do, while those that cannot say so in one line. Real BirdNET, real training."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from starlette.testclient import TestClient

from audiocnn import audio, bundle
from audiocnn.config import load_recipe
from audiocnn.errors import ConfigError
from audiocnn.features import birdnet_graph, create_frontend
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor
from conftest import REPO, TONE_HZ, tone_clip

BIRDNET_RECIPE = REPO / "recipes" / "birdnet.yaml"
#: birdnet.yaml on the `tones` folder dataset: one-second clips, a few seconds of training.
TONES = ["data.dataset=folder", "data.clip_seconds=1.0", "data.folds=4", "data.val_fraction=0.25", "train.epochs=3",
         "train.batch_size=8", "train.lr=1e-2", "train.precision=32-true"]
DOG = REPO / "examples" / "dog-bark.wav"
THUNDER = REPO / "examples" / "thunderstorm-thunder.flac"


@pytest.fixture(scope="module")
def head(tones, tmp_path_factory) -> Path:
    """A linear head on BirdNET trained on `tones` with fold 1 held out."""
    from audiocnn.training.cv import train_bundle

    path = tmp_path_factory.mktemp("birdnet-head") / "model"
    metrics = train_bundle(load_recipe(BIRDNET_RECIPE, TONES), tones, path, test_fold=1, progress=False)
    assert metrics["accuracy"] >= 0.9, f"the head did not learn the tones: {metrics}"
    return path


@pytest.mark.slow
def test_a_head_bundle_classifies_new_recordings_and_its_card_says_its_licence(head, tmp_path):
    shipped = bundle.load(head)
    assert shipped.labels == ["high", "low", "noise"] and not shipped.hears_images
    config = json.loads((head / "config.json").read_text())
    assert config["backbone"] == {"name": "birdnet-v2.4", "in_chans": 1024}
    assert "architecture" not in config  # no timm keys: timm cannot build it
    card = (head / "MODEL_CARD.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and "cannot" in card
    low = tmp_path / "low.wav"
    sf.write(low, tone_clip(TONE_HZ["low"], 3.0, np.random.default_rng(7)), 16_000)  # unseen, 3 windows of 1 s
    result = Predictor(shipped, PredictOptions(hop=1.0)).predict(low)
    assert result.probabilities.shape == (3, 3)
    assert result.top(result.summary, 1)[0][0] == "low"


def _reference(wave: np.ndarray, rate: int) -> np.ndarray:
    """What the frontend should give: BirdNET's own embeddings of the 3 s windows at 0, 1.5, 3 s, averaged."""
    heard = birdnet_graph.birdnet_input(wave, rate, rate / 2)
    starts = [0, 72_000, 144_000]
    windows = np.stack([audio.fix_length(heard[s:], birdnet_graph.WINDOW) for s in starts])
    return birdnet_graph.BirdNet(threads=1).embed(windows).mean(axis=0)


@pytest.mark.slow
def test_the_frontend_is_birdnets_embedding_averaged_over_its_windows():
    """A 5 s clip is three windows (the last zero-padded); the frontend gives their mean embedding,
    as BirdNET's graph computes it, and survives the copies and pickles a worker process makes."""
    wave = audio.fix_length(audio.load(THUNDER, 16_000), 80_000)
    frontend = create_frontend({"kind": "birdnet-v2.4"})
    with torch.inference_mode():
        image = frontend(torch.from_numpy(np.stack([wave, np.zeros_like(wave)])))
    assert image.shape == (2, 1024, 1, 1)
    np.testing.assert_allclose(image[0, :, 0, 0].numpy(), _reference(wave, 16_000), atol=1e-5)
    assert (image[0] - image[1]).abs().max() > 0.1  # thunder is not silence
    for twin in (copy.deepcopy(frontend), pickle.loads(pickle.dumps(frontend))):
        with torch.inference_mode():
            torch.testing.assert_close(twin(torch.from_numpy(wave[None])), image[:1])
    # a 1 s sound padded to 5 s: the windows at 1.5 and 3 s hold only the padding and are left out
    short = audio.fix_length(wave[:16_000], 80_000)
    with torch.inference_mode():
        alone = frontend(torch.from_numpy(short[None]))[0, :, 0, 0].numpy()
        padded = create_frontend({"kind": "birdnet-v2.4", "skip_silence": False})(torch.from_numpy(short[None]))
    first = birdnet_graph.birdnet_input(short, 16_000, 8_000)[: birdnet_graph.WINDOW]
    np.testing.assert_allclose(alone, birdnet_graph.BirdNet(threads=1).embed(first[None])[0], atol=1e-5)
    assert np.abs(padded[0, :, 0, 0].numpy() - alone).max() > 0.1  # with the silence in, another embedding


@pytest.mark.slow
@pytest.mark.parametrize("tap", sorted(birdnet_graph.TAPS))
def test_birdnets_last_layers_in_torch_give_litert_s_embedding(tap):
    """The fine-tunable tail (BirdNET's own weights, built from its graph) turns the tap's activations
    into the embedding LiteRT computes, window by window; the frontend lays a clip's windows side by
    side and the head takes them apart again."""
    from audiocnn.models.birdnet_tail import BirdNetTail
    from audiocnn.models.factory import create

    wave = audio.fix_length(audio.load(THUNDER, 16_000), 80_000)  # 3 windows of 3 s
    windows = np.stack([audio.fix_length(birdnet_graph.birdnet_input(wave, 16_000, 8_000)[s:], birdnet_graph.WINDOW)
                        for s in (0, 72_000, 144_000)])
    net = birdnet_graph.BirdNet(threads=1, tap=tap)
    embeddings, activations = net.embed(windows), net.activations(windows)
    assert activations.shape == (3, 3, 8, 192)
    tail = BirdNetTail(tap)
    with torch.inference_mode():
        np.testing.assert_allclose(tail(torch.from_numpy(activations)).numpy(), embeddings, atol=1e-4)
    frontend = create_frontend({"kind": "birdnet-v2.4", "tap": tap})
    head = create("birdnet-v2.4", 3, frontend.out_channels, tap=tap)
    with torch.inference_mode():
        image = frontend(torch.from_numpy(wave[None]))
        assert image.shape == (1, 192, 3, 24) == (1, *frontend.image_shape(len(wave)))
        np.testing.assert_allclose(head.forward_features(image)[0].numpy(), embeddings.mean(axis=0), atol=1e-4)
    assert sum(p.numel() for p in head.tail.parameters()) > 2_000_000 and all(p.requires_grad for p in head.parameters())


@pytest.mark.slow
def test_what_cannot_run_on_a_head_says_so_in_one_line(head, cli, tmp_path):
    for command in (["explain", str(DOG), "--model", str(head), "--out", str(tmp_path / "x.png")],
                    ["export", "--model", str(head), "--out", str(tmp_path / "x.onnx")],
                    ["quantize", "--model", str(head), "--data-root", str(tmp_path)]):
        result = cli(*command)
        assert result.code == 1, command
        assert result.err.count("\n") == 1 and "head on birdnet-v2.4's embedding" in result.err, result.err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_head_is_served(head):
    from audiocnn.serve import ServeSettings, create_app

    settings = ServeSettings(model=head, runtime="torch")
    with TestClient(create_app(settings)) as client:
        files = [("file", (DOG.name, DOG.read_bytes(), "application/octet-stream"))]
        answer = client.post("/v1/predict", files=files)
        assert answer.status_code == 200, answer.text
        assert answer.json()["files"][0]["summary"][0]["label"] in {"high", "low", "noise"}
        refused = client.post("/v1/explain", files=files)
        assert 400 <= refused.status_code < 500 and "head on birdnet-v2.4's embedding" in refused.json()["error"]


@pytest.mark.parametrize(("recipe", "overrides", "problem"), [
    (None, ["model.backbone=birdnet-v2.4"], "go together"),
    (None, ["frontend.kind=birdnet-v2.4"], "go together"),
    (None, ["model.head=mlp"], "model.head is for a head"),
    (BIRDNET_RECIPE, ["train.specaugment.freq_masks=2"], "train.specaugment masks spectrogram rows"),
    (BIRDNET_RECIPE, ["train.freq_mixstyle.p=0.5"], "train.freq_mixstyle mixes"),
])
def test_a_recipe_that_cannot_mean_anything_for_birdnet_is_one_config_error(recipe, overrides, problem):
    with pytest.raises(ConfigError, match=problem):
        load_recipe(recipe, overrides)


def test_birdnet_heads_start_from_random_weights():
    from audiocnn.models.factory import create

    with pytest.raises(ConfigError, match="model.weights: birdnet-v2.4 is frozen"):
        create("birdnet-v2.4", 3, 1024, "imagenet")
    mlp = create("birdnet-v2.4", 3, 1024, head="mlp")
    assert mlp(torch.randn(2, 1024, 1, 1)).shape == (2, 3) and mlp.num_features == 512
