"""`audiocnn quantize` and `predict --runtime int8`: an 8-bit copy of a real (tiny) model."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from audiocnn import bundle
from audiocnn.datasets import make_splits
from audiocnn.errors import BundleError, ConfigError
from audiocnn.inference.predictor import Predictor
from audiocnn.inference.quantize import INT8_GRAPH, INT8_INFO, calibration_clips, int8_graph
from conftest import TONE_LABELS, uncalibrated_copy


@pytest.fixture(scope="module")
def quantized(tones, tone_bundle, tmp_path_factory) -> Path:
    """A copy of the shared tone model (held-out fold 1), quantized with 16 calibration clips of its training folds
    (without its temperature, which saturates the probabilities this compares at 4 decimals)."""
    from audiocnn.cli import main

    path = uncalibrated_copy(tone_bundle, tmp_path_factory.mktemp("model") / "tones")
    assert main(["quantize", "--model", str(path), "--data-root", str(tones), "--clips", "16", "--no-progress"]) == 0
    return path


def test_calibration_clips_are_stratified_and_never_from_the_held_out_fold(quantized, tones):
    model = bundle.load(quantized)
    clips = calibration_clips(model, tones, 12)
    assert len(clips) == 12 and all(c.fold != 1 for c in clips)
    assert sorted({c.label for c in clips}) == list(TONE_LABELS)
    assert all(abs(sum(c.label == label for c in clips) - 4) <= 1 for label in TONE_LABELS)
    assert calibration_clips(model, tones, 12) == clips  # seeded


def test_calibration_on_gtzan_filtered_never_uses_its_fixed_test_list(quantized, gtzan_root, gtzan_splits_dir):
    """A split with no folds (GTZAN's artist-filtered lists): its test clips are the ones held out."""
    from dataclasses import replace

    from audiocnn.datasets import load_dataset
    from conftest import GENRES

    model = bundle.load(quantized)
    data = replace(model.recipe.data, dataset="gtzan", split="filtered", splits_dir=str(gtzan_splits_dir))
    gtzan_model = replace(model, recipe=replace(model.recipe, data=data), labels=GENRES, metrics={"split": "filtered"})
    (split,) = make_splits(load_dataset("gtzan", gtzan_root, split="filtered", splits_dir=gtzan_splits_dir))
    clips = calibration_clips(gtzan_model, gtzan_root, 100)
    assert len(clips) == 100 and {c.label for c in clips} == set(GENRES)
    assert not {c.path for c in clips} & {c.path for c in split.test}
    with pytest.raises(ConfigError, match="fold3"):
        calibration_clips(replace(gtzan_model, metrics={"split": "fold3"}), gtzan_root, 10)


def test_the_8_bit_model_is_small_and_agrees_with_the_float_one(quantized, tones, cli):
    info = json.loads((quantized / INT8_INFO).read_text())
    assert info["calibration_clips"] == 16 and info["top1_agreement_on_calibration"] >= 0.9
    assert (quantized / INT8_GRAPH).stat().st_size < 0.5 * (quantized / "model.safetensors").stat().st_size
    files = sorted(str(p) for p in (tones / "low").glob("*.wav"))[:4] + sorted(str(p) for p in (tones / "high").glob("*.wav"))[:4]
    tables = {}
    for runtime in ("torch", "int8"):
        result = cli("predict", *files, "--model", str(quantized), "--runtime", runtime, "--format", "csv",
                     "--top-k", "1", "--no-progress")
        assert result.code == 0, result.err
        tables[runtime] = {(r["path"], r["window"]): r for r in csv.DictReader(io.StringIO(result.out))}
    assert tables["torch"].keys() == tables["int8"].keys() and len(tables["int8"]) >= 8
    agree = [tables["torch"][k]["label_1"] == tables["int8"][k]["label_1"] for k in tables["torch"]]
    assert np.mean(agree) >= 0.85
    probabilities = [abs(float(tables["torch"][k]["probability_1"]) - float(tables["int8"][k]["probability_1"]))
                     for k in tables["torch"]]
    assert 0 < max(probabilities) < 0.2  # 8-bit: close to the float model, but not the same computation


def test_int8_needs_its_own_graph_made_from_these_weights(quantized, tmp_path):
    plain = Path(shutil.copytree(quantized, tmp_path / "plain"))
    (plain / INT8_GRAPH).unlink()
    with pytest.raises(ConfigError, match="has no 8-bit model yet; make one with `audiocnn quantize"):
        Predictor(bundle.load(plain), runtime="int8")
    retrained = Path(shutil.copytree(quantized, tmp_path / "retrained"))
    weights = load_file(str(retrained / "model.safetensors"))
    first = next(iter(weights))
    weights[first] = weights[first] + 0.01
    save_file(weights, str(retrained / "model.safetensors"))
    with pytest.raises(BundleError, match="was made from other weights"):
        int8_graph(bundle.load(retrained))


def test_a_bundle_loaded_without_its_backbone_refuses_to_run_it(quantized, tones):
    import torch

    light = bundle.load(quantized, backbone=False)
    with pytest.raises(BundleError, match="loaded without its backbone"):
        light.model(torch.zeros(1, 16_000))
    clip = sorted((tones / "high").glob("*.wav"))[0]
    light_prediction = Predictor(light, runtime="int8").predict(clip)
    full_prediction = Predictor(bundle.load(quantized), runtime="int8").predict(clip)
    np.testing.assert_array_equal(light_prediction.probabilities, full_prediction.probabilities)


def test_int8_refuses_other_windows_and_a_changed_graph(quantized, tmp_path):
    with pytest.raises(ConfigError, match="takes 1 s windows only .got --window 0.5"):
        Predictor(bundle.load(quantized), window_seconds=0.5, runtime="int8")
    broken = Path(shutil.copytree(quantized, tmp_path / "broken"))
    (broken / INT8_GRAPH).write_bytes(b"not a graph")
    with pytest.raises(BundleError, match="is not the graph .*int8.json describes"):
        Predictor(bundle.load(broken), runtime="int8")
    assert not list(quantized.glob("*.partial"))  # quantize left nothing half-written behind
