"""Attributions: the sanity checks that make them worth trusting, the Python API and both commands.

The three sanity checks (Adebayo et al. 2018; Sundararajan et al. 2017) run on real models:
completeness on the bundled ESC-50 model and real clips, model randomisation against the
same architecture with fresh weights, and a tiny model trained on a synthetic task whose
classes differ only in one frequency band.
"""

from __future__ import annotations

import csv

import matplotlib.image as mpimg
import numpy as np
import pytest
import soundfile as sf
import timm
import torch
from scipy.stats import spearmanr

from audiocnn import bundle
from audiocnn.bundled import default_model
from audiocnn.explain import explain, grad_cam, integrated_gradients, last_feature_layer
from audiocnn.explain.dataset import class_attributions
from conftest import REPO, TONE_HZ

RATE = 16_000


@pytest.fixture(scope="module")
def esc50_model() -> bundle.Bundle:
    return bundle.load(default_model())


@pytest.mark.slow
@pytest.mark.parametrize("baseline, example", [("mean", "rooster-crow.ogg"), ("silence", "dog-bark.wav")])
def test_integrated_gradients_add_up_to_the_logit_difference(esc50_model, baseline, example):
    """Completeness: sum of attributions = logit(x) − logit(baseline), within 5% at the default steps."""
    for source in (REPO / "examples" / example,):
        result = explain(esc50_model, source, methods=("ig",), baseline=baseline)
        assert abs(result.logit_gap) > 0.5
        total = float(result.maps["ig"].sum())
        assert total == pytest.approx(result.logit_gap, rel=0.05), (source, baseline)
        assert abs(total - result.logit_gap - result.delta) < 1e-3 * max(1.0, abs(total))


@pytest.mark.slow
def test_attributions_of_a_randomised_model_differ_from_the_trained_ones(esc50_model, esc50_clip):
    trained = integrated_gradients(esc50_model, esc50_clip, steps=32)
    target = int(explain(esc50_model, esc50_clip, methods=("gradcam",)).target)
    randomised = bundle.load(default_model())
    torch.manual_seed(0)
    fresh = timm.create_model(esc50_model.recipe.model.backbone, num_classes=len(esc50_model.labels), in_chans=1)
    randomised.model.backbone.load_state_dict(fresh.state_dict())
    random_map = integrated_gradients(randomised, esc50_clip, target=target, steps=32)
    rho = spearmanr(trained.ravel(), random_map.ravel())[0]
    assert abs(rho) < 0.3, rho
    # The same trained model explained twice agrees with itself: the check can tell them apart.
    assert spearmanr(trained.ravel(), integrated_gradients(esc50_model, esc50_clip, steps=32).ravel())[0] > 0.99


@pytest.mark.parametrize("label", list(TONE_HZ))
@pytest.mark.slow
def test_a_tone_is_credited_in_its_own_band(tone_bundle, tones, label):
    """The tone classes differ from noise only by their tone: most evidence must sit in its band."""
    model = bundle.load(tone_bundle)
    rows = model.model.frontend.row_frequencies()
    band = (rows > TONE_HZ[label] / 1.3) & (rows < TONE_HZ[label] * 1.3)
    assert band.mean() < 0.2  # the band is a small part of the image
    for i in (0, 4):
        result = explain(model, tones / label / f"{label}{i}.wav", methods=("ig",))
        assert result.target_label == label
        evidence = np.clip(result.maps["ig"][0], 0, None).sum(axis=1)  # evidence for the label, per row
        share = evidence[band].sum() / evidence.sum()
        assert share > 0.4 and share > 2.5 * band.mean(), (label, i, round(float(share), 2))


@pytest.mark.slow
def test_grad_cam_runs_on_the_last_feature_map(esc50_model, esc50_clip):
    x = torch.randn(1, 1, 64, 126)
    resnet = timm.create_model("resnet18", in_chans=1).eval()
    assert last_feature_layer(resnet, x) is resnet.layer4
    cam = grad_cam(esc50_model, esc50_clip)
    assert cam.shape == explain(esc50_model, esc50_clip, methods=("gradcam",)).image.shape
    assert cam.min() >= 0 and cam.max() > 0


@pytest.mark.slow
def test_explain_writes_the_overlay_figure_and_arrays(cli, tmp_path):
    figure, arrays = tmp_path / "dog.png", tmp_path / "dog.npz"
    result = cli("explain", str(REPO / "examples" / "dog-bark.wav"), "--out", str(figure), "--npy", str(arrays),
                 "--steps", "16")
    assert result.code == 0, result.err
    assert "dog" in result.out and "completeness gap" in result.out
    height, width = mpimg.imread(figure).shape[:2]
    assert width > 1000 and height > 800  # three rows: spectrogram, IG, Grad-CAM
    saved = np.load(arrays)
    assert set(saved.files) == {"image", "ig", "gradcam"} and saved["ig"].shape == saved["image"].shape


@pytest.mark.slow
def test_explain_picks_the_most_confident_window_of_a_long_file(esc50_model, esc50_clip, tmp_path, monkeypatch):
    from audiocnn.inference import runtimes

    def no_export(*args, **kwargs):
        raise AssertionError("explain exported an ONNX graph into the user's cache")

    monkeypatch.setattr(runtimes, "export_onnx", no_export)
    rng = np.random.default_rng(0)
    dog, rate = sf.read(esc50_clip, dtype="float32")
    long = tmp_path / "quiet_then_dog.wav"
    sf.write(long, np.concatenate([0.001 * rng.standard_normal(12 * rate).astype(np.float32), dog]), rate)
    result = explain(esc50_model, long, methods=("gradcam",))
    assert result.start >= 10.0 and result.target_label == "dog"
    assert explain(esc50_model, long, methods=("gradcam",), start=2.0).start == 2.0


@pytest.mark.slow
def test_the_figure_format_follows_the_out_suffix(cli, tone_bundle, tones, tmp_path):
    clip = tones / "low" / "low1.wav"
    svg = cli("explain", clip, "--model", tone_bundle, "--method", "gradcam", "--out", tmp_path / "low.svg")
    assert svg.code == 0, svg.err
    assert (tmp_path / "low.svg").read_text()[:200].lstrip().startswith(("<?xml", "<svg"))
    bare = cli("explain", clip, "--model", tone_bundle, "--method", "gradcam", "--out", tmp_path / "low")
    assert bare.code == 0 and (tmp_path / "low.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "low.png" in bare.out
    sound = cli("explain", clip, "--model", tone_bundle, "--method", "gradcam", "--out", tmp_path / "x.flac")
    assert sound.code == 1 and "x.flac: cannot draw a .flac picture" in sound.err and "Traceback" not in sound.err
    assert not (tmp_path / "x.flac").exists()


@pytest.mark.slow
def test_explain_rejects_bad_targets_and_starts(cli, tmp_path):
    clip = str(REPO / "examples" / "dog-bark.wav")
    unknown = cli("explain", clip, "--target", "dgo", "--out", str(tmp_path / "x.png"))
    assert unknown.code == 1 and "'dgo' is not one of the model's 50 labels" in unknown.err
    late = cli("explain", clip, "--start", "30", "--out", str(tmp_path / "x.png"))
    assert late.code == 1 and "error: --start: 30 s is not within" in late.err and "0.90 s long" in late.err
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), RATE)
    bad = cli("explain", str(empty), "--out", str(tmp_path / "x.png"))
    assert bad.code == 1 and "empty.wav" in bad.err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_explain_dataset_finds_each_tone_where_its_energy_is(cli, tones, tone_bundle, tmp_path):
    """Class means over a test fold: the low tone's evidence peaks near 400 Hz, the high one's near 2.5 kHz."""
    model_dir = tone_bundle
    items = class_attributions(bundle.load(model_dir), tones, fold=1, steps=16, progress=False)
    rows = bundle.load(model_dir).model.frontend.row_frequencies()
    for item in (i for i in items if i.label in TONE_HZ):
        peak = rows[int(np.argmax(item.profile))]
        assert TONE_HZ[item.label] / 1.5 < peak < TONE_HZ[item.label] * 1.5, (item.label, peak)
    out = tmp_path / "explained"
    result = cli("explain-dataset", "--model", str(model_dir), "--data-root", str(tones), "--fold", "1",
                 "--out", str(out), "--steps", "8", "--no-progress")
    assert result.code == 0, result.err
    assert sorted(p.name for p in (out / "classes").glob("*.png")) == ["high.png", "low.png", "noise.png"]
    assert mpimg.imread(out / "grid.png").shape[1] > 400
    with (out / "profiles.csv").open() as handle:
        table = {row["label"]: row for row in csv.DictReader(handle)}
    assert set(table) == {"high", "low", "noise"} and int(table["low"]["n_clips"]) >= 2
    assert np.load(out / "attributions.npz")["attribution"].shape[0] == 3
    missing = cli("explain-dataset", "--model", str(model_dir), "--data-root", str(tones), "--fold", "9",
                  "--out", str(out))
    assert missing.code == 1 and "fold 9 is not held out" in missing.err
    seen = cli("explain-dataset", "--model", str(default_model()), "--data-root", str(tones), "--fold", "1",
               "--out", str(out))  # trained on all folds: its fold-1 picture would show what it memorised
    assert seen.code == 1 and "split 'all-data'" in seen.err and "not held out" in seen.err


@pytest.mark.slow
def test_explain_gives_the_same_calibrated_probabilities_as_predict():
    """The page shows a window's label from predict beside its explanation: both must say the same figure."""
    from audiocnn import bundle
    from audiocnn.bundled import default_model
    from audiocnn.explain import explain
    from audiocnn.inference.options import PredictOptions
    from audiocnn.inference.predictor import Predictor

    shipped = bundle.load(default_model())
    assert shipped.temperature != 1.0  # a calibrated model, or this test shows nothing
    clip = REPO / "examples" / "dog-bark.wav"
    predicted = Predictor(shipped, PredictOptions(runtime="torch")).predict(clip).probabilities[0]
    explained = explain(shipped, clip, methods=("gradcam",)).probabilities
    assert explained == pytest.approx(predicted, abs=1e-4)
