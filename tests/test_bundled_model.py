"""The model that ships in the package: present, small, documented, and right on the examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audiocnn import bundle
from audiocnn.bundled import bundled_models, default_model
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (REPO / "examples").iterdir() if p.suffix in {".wav", ".flac", ".ogg"})


@pytest.fixture(scope="module")
def shipped() -> bundle.Bundle:
    return bundle.load(default_model())


def test_the_bundled_model_is_small_and_has_a_model_card(shipped):
    size = sum(p.stat().st_size for p in default_model().iterdir())
    assert size <= 25 * 2**20
    card = (default_model() / "MODEL_CARD.md").read_text()
    for needed in ("ESC-50", "CC BY-NC", "non-commercial", "cpu.yaml", "5-fold"):
        assert needed in card
    assert len(shipped.labels) == 50 and shipped.metrics["split"] == "all-data"


def test_timm_reads_the_bundled_cnn_from_its_folder(shipped):
    import timm
    import torch

    cnn = timm.create_model(f"local-dir:{default_model()}", pretrained=True).eval()
    assert cnn.pretrained_cfg["label_names"] == shipped.labels and cnn.pretrained_cfg["input_size"] == (1, 128, 251)
    image = torch.randn(2, 1, 128, 251)
    with torch.inference_mode():
        torch.testing.assert_close(cnn(image), shipped.model.backbone(image))


@pytest.mark.slow
def test_the_bundled_model_names_the_example_sounds_or_says_unknown(shipped):
    """Each example is named `<ESC-50 class>-<what>.ext`. What a user reads is the answer: the class,
    or `unknown` (the guesses after it) where the model abstains.

    Issue 5 wants all 8 right. The model shown outliers and noise floors (issue 31) answers 5 right
    (chainsaw, dog, hen, rooster, thunderstorm), says `unknown` to the crackling fire (first guess
    crackling_fire) and answers two wrong: the cat, heard as a crying baby (ESC-50's own most frequent
    confusion), and the cow, heard as a creaking door (0.57). The model before it answered 4 right,
    said `unknown` to the cow (first guess cow), the fire and the hen, and heard the cat as a crying
    baby. This guards that no other example is answered wrong, and that the best guess stays right
    on the 6 it gets.
    """
    predictor = Predictor(shipped)
    answered_wrong, top1_wrong = {}, {}
    for path in EXAMPLES:
        expected = path.stem.split("-")[0]
        assert expected in shipped.labels, f"{path.name}: not named after an ESC-50 class"
        prediction = predictor.predict(path)
        answer = prediction.top(prediction.summary, 1)[0][0]
        best = prediction.labels[int(prediction.summary.argmax())]
        if answer not in (expected, "unknown"):
            answered_wrong[path.name] = answer
        if best != expected:
            top1_wrong[path.name] = best
    assert set(answered_wrong) <= {"cat-meow.flac", "cow-moo.wav"}, answered_wrong
    assert set(top1_wrong) <= {"cat-meow.flac", "cow-moo.wav"}, top1_wrong


@pytest.mark.slow
def test_predict_without_model_uses_the_bundled_one(cli):
    dog = REPO / "examples" / "dog-bark.wav"
    result = cli("predict", dog, "--top-k", "1", "--format", "csv")
    assert result.code == 0, result.err
    assert result.out.splitlines()[1].split(",")[4] == "dog"


@pytest.mark.slow
def test_the_bundled_8_bit_model_belongs_to_its_weights_and_names_the_examples_alike(shipped):
    """`predict --runtime int8` on the bundled model: the same whole-file top-1 as the float model.

    8 bits move probabilities by a few hundredths, so a near tie may flip. Where the float model
    leads by 0.05 or more the labels must agree; in a near tie, int8 must pick one of the two.
    """
    from audiocnn.inference.quantize import int8_graph

    assert int8_graph(shipped).stat().st_size < 5 * 2**20
    float_model, eight_bit = Predictor(shipped, PredictOptions(runtime="torch")), Predictor(shipped, PredictOptions(runtime="int8"))
    for path in EXAMPLES:
        p = float_model.predict(path).summary
        first, second = np.argsort(-p)[:2]
        chosen = eight_bit.predict(path).summary.argmax()
        if p[first] - p[second] >= 0.05:
            assert chosen == first, path.name
        else:
            assert chosen in (first, second), path.name


def test_a_bundled_model_is_named_by_its_folder_unless_a_folder_of_that_name_is_here(tmp_path, monkeypatch):
    from audiocnn.bundled import bundled_models, model_path

    names = list(bundled_models())
    assert names[0] == default_model().name  # the default first
    assert model_path(names[0]) == default_model()
    monkeypatch.chdir(tmp_path)
    (tmp_path / names[0]).mkdir()  # the user's own folder of that name wins
    assert model_path(names[0]) == Path(names[0])
    assert model_path("no-such-model") == Path("no-such-model")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(bundled_models()))
def test_every_bundled_model_hears_noise_floors_as_no_sound(name, tmp_path):
    """Issue 31: a quiet steady noise floor was `crickets` 0.9-0.99 to the model before these, and a
    field recording is mostly noise floor. Every kind of made floor, from a loud hiss (-30 dBFS) to below
    a good recorder's self-noise (-90 dBFS), drawn from a seed the training floors never used, must come
    out `unknown` at the shipped threshold: no window given a class."""
    import soundfile as sf

    from audiocnn.datasets.noise_floors import KINDS, floor

    rate, rng = 16_000, np.random.default_rng(31_031)
    predictor = Predictor(bundle.load(bundled_models()[name]))
    given = {}
    for kind in KINDS:
        for level in (-30.0, -60.0, -90.0):
            path = tmp_path / f"{kind} {level:.0f} dBFS.wav"
            sf.write(path, floor(kind, level, 5 * rate, rate, rng), rate, subtype="FLOAT")
            prediction = predictor.predict(path)
            answers = [prediction.top(p, 1)[0][0] for p in prediction.probabilities]
            given.update({f"{path.stem} window {i}": a for i, a in enumerate(answers) if a != "unknown"})
    assert not given, given


@pytest.mark.slow
def test_the_second_bundled_model_is_the_cnn_with_birdnet_and_says_its_licence(cli):
    """`--model esc50-ensemble`: the default CNN and a head on BirdNET V2.4 as one model, named like a folder."""
    second = bundled_models()["esc50-ensemble"]
    ensemble = bundle.load(second)
    assert [m.model.frontend.kind for m in ensemble.members] == ["mel", "birdnet-v2.4"]
    card = (second / "MODEL_CARD.md").read_text()
    for needed in ("CC BY-NC-SA 4.0", "non-commercial", "out-of-domain", "cannot"):
        assert needed in card, needed
    result = cli("predict", REPO / "examples" / "dog-bark.wav", "--model", "esc50-ensemble", "--format", "csv",
                 "--top-k", "1", "--no-progress")
    assert result.code == 0, result.err
    assert result.out.splitlines()[1].split(",")[4] == "dog"
