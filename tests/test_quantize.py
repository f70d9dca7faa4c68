"""`audiocnn quantize` and `predict --runtime int8`: an 8-bit copy of a real (tiny) model."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from audiocnn import bundle
from audiocnn.datasets import make_splits
from audiocnn.errors import BundleError, ConfigError, OptionError
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor
from audiocnn.inference.quantize import INT8_GRAPH, INT8_INFO, calibration_clips, int8_graph, quantize
from conftest import TONE_LABELS, uncalibrated_copy
from test_bundle import never_hangs, replace_with


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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_int8_needs_its_own_graph_made_from_these_weights(quantized, tmp_path):
    plain = Path(shutil.copytree(quantized, tmp_path / "plain"))
    (plain / INT8_GRAPH).unlink()
    with pytest.raises(ConfigError, match="has no 8-bit model yet; make one with `audiocnn quantize"):
        Predictor(bundle.load(plain), PredictOptions(runtime="int8"))
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
    light_prediction = Predictor(light, PredictOptions(runtime="int8")).predict(clip)
    full_prediction = Predictor(bundle.load(quantized), PredictOptions(runtime="int8")).predict(clip)
    np.testing.assert_array_equal(light_prediction.probabilities, full_prediction.probabilities)


@pytest.mark.slow
def test_int8_refuses_other_windows_and_a_changed_graph(quantized, tmp_path):
    with pytest.raises(OptionError, match="^window: .* takes 1 s windows only .got 0.5."):
        Predictor(bundle.load(quantized), PredictOptions(window=0.5, runtime="int8"))
    broken = Path(shutil.copytree(quantized, tmp_path / "broken"))
    (broken / INT8_GRAPH).write_bytes(b"not a graph")
    with pytest.raises(BundleError, match="is not the graph .*int8.json describes"):
        Predictor(bundle.load(broken), PredictOptions(runtime="int8"))
    assert not list(quantized.glob("*.partial"))  # quantize left nothing half-written behind


# ----------------------------------------------------------------------------- any number of clips


def _audiocnn(*args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`audiocnn ARGS` as a user runs it: its own process, its exit code and both streams."""
    return subprocess.run([sys.executable, "-m", "audiocnn", *(str(a) for a in args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_quantize_takes_every_clip_a_small_dataset_has_and_says_how_many(cli, tones, tone_bundle, tmp_path):
    """The tone dataset holds 36 clips outside the held-out fold: fewer than the default 256 and not a
    multiple of the calibrator's 16, which raised `ValueError ... inhomogeneous shape` (every small
    annotated dataset did). A prime count below the old minimum of 8 works too."""
    path = uncalibrated_copy(tone_bundle, tmp_path / "model")
    done = cli("quantize", "--model", path, "--data-root", tones, "--no-progress", "--cache-dir", tmp_path / "c")
    assert done.code == 0, done.err
    assert "Traceback" not in done.err and "audiocnn: warning" not in done.err
    assert f"{path / INT8_GRAPH}: calibrated on 36 clips (of 256 asked: all the usable clips" in done.out
    assert json.loads((path / INT8_INFO).read_text())["calibration_clips"] == 36
    info = quantize(bundle.load(path), tones, n_clips=5, progress=False)
    assert info["calibration_clips"] == 5 and 0 <= info["top1_agreement_on_calibration"] <= 1
    Predictor(bundle.load(path, backbone=False), PredictOptions(runtime="int8"))  # the graph and its record belong together


@pytest.mark.slow
@pytest.mark.filterwarnings("default::audiocnn.errors.AudiocnnWarning")  # shown as the CLI shows it
def test_an_unreadable_calibration_clip_is_a_warning_and_none_readable_is_one_error(cli, tones, tone_bundle, tmp_path):
    """Each clip is read on its own: a bad one is one warning line naming it (errors.item_failure) and
    the others calibrate; with none readable, quantize says so in one line and writes nothing."""
    data = Path(shutil.copytree(tones, tmp_path / "tones"))
    path = uncalibrated_copy(tone_bundle, tmp_path / "model")
    clips = calibration_clips(bundle.load(path), data, 256)
    clips[0].path.write_bytes(b"RIFF\x00\x00\x00\x00not a wav file")
    done = cli("quantize", "--model", path, "--data-root", data, "--no-progress", "--cache-dir", tmp_path / "c")
    assert done.code == 0, done.err
    warnings = [line for line in done.err.splitlines() if line.startswith("audiocnn: warning:")]
    assert len(warnings) == 1 and str(clips[0].path) in warnings[0] and "left out of the calibration" in warnings[0]
    assert "calibrated on 35 clips" in done.out
    for clip in clips:
        clip.path.write_bytes(b"")
    fresh = uncalibrated_copy(tone_bundle, tmp_path / "fresh")
    none = cli("quantize", "--model", fresh, "--data-root", data, "--no-progress", "--cache-dir", tmp_path / "c")
    assert none.code == 1 and "Traceback" not in none.err
    errors = [line for line in none.err.splitlines() if line.startswith("audiocnn: error:")]
    assert errors == [f"audiocnn: error: {data}: none of its 36 calibration clips could be read; the 8-bit graph "
                      "needs at least one clip of the model's training data"]
    assert not (fresh / INT8_GRAPH).exists() and not (fresh / INT8_INFO).exists()


# ----------------------------------------------------------------------------- int8.json is untrusted


def _record(path: Path, change) -> None:  # noqa: ANN001 - a function of the record
    info = json.loads((path / INT8_INFO).read_text())
    change(info)
    (path / INT8_INFO).write_text(json.dumps(info))


@pytest.mark.parametrize("breakage, message", [
    (lambda p: (p / INT8_INFO).write_bytes(b"{" + b" " * (1 << 20) + b"}"), "larger than any int8 record file"),
    (lambda p: (p / INT8_INFO).write_bytes(b"\x08\x09\xff\xfe protobuf"), "not UTF-8 text"),
    (lambda p: (p / INT8_INFO).write_text("{not json"), "not valid JSON"),
    (lambda p: (p / INT8_INFO).write_text("[" * 100_000 + "]" * 100_000), "not valid JSON (RecursionError"),
    (lambda p: (p / INT8_INFO).write_text("[]"), "should be a valid dictionary"),
    (lambda p: ((p / INT8_INFO).unlink(), (p / INT8_INFO).symlink_to(p / "gone.json")), "int8.json: is a broken link"),
    (lambda p: _record(p, lambda r: r.pop("weights_sha256")), "int8.json: weights_sha256: missing"),
    (lambda p: _record(p, lambda r: r.update(graph_sha256=7)), "int8.json: graph_sha256: should be a valid string"),
    (lambda p: _record(p, lambda r: r.update(input_shape="1x64x32")), "int8.json: input_shape: should be a valid list"),
    (lambda p: _record(p, lambda r: r.update(input_shape=[1, -64, 32])), "int8.json: input_shape.1: should be greater"),
    (lambda p: _record(p, lambda r: r.update(top1_agreement_on_calibration=float("nan"))), "should be a finite number"),
    (lambda p: replace_with(p / INT8_INFO, "pipe"), "int8.json: is a named pipe, not a regular file"),
    (lambda p: replace_with(p / INT8_GRAPH, "pipe"), "model.int8.onnx: is a named pipe, not a regular file"),
    (lambda p: replace_with(p / INT8_GRAPH, "device"), "model.int8.onnx: is a device, not a regular file"),
    (lambda p: replace_with(p / "model.safetensors", "pipe"), "model.safetensors: is a named pipe, not a regular file"),
])
@pytest.mark.slow
def test_a_broken_int8_record_or_graph_is_one_bundle_error_naming_it(quantized, tmp_path, breakage, message):
    """int8.json comes with a downloaded bundle like config.json, and is read the same way; no file of the
    8-bit model is opened unless it is a regular file (the weights are only hashed: a pipe there hung)."""
    path = Path(shutil.copytree(quantized, tmp_path / "b"))
    breakage(path)
    stack = contextlib.ExitStack()
    for name in (INT8_INFO, INT8_GRAPH, "model.safetensors"):
        if stat.S_ISFIFO(os.lstat(path / name).st_mode):
            stack.enter_context(never_hangs(path / name))
    with stack, pytest.raises(BundleError) as caught:
        Predictor(bundle.load(path, backbone=False), PredictOptions(runtime="int8"))
    assert message in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.slow
def test_predict_int8_with_a_graph_where_its_record_was_is_one_error_line(quantized, tones, tmp_path):
    """What `export --out BUNDLE/int8.json` left behind before it was refused: a traceback from predict."""
    path = Path(shutil.copytree(quantized, tmp_path / "b"))
    (path / INT8_INFO).write_bytes((path / INT8_GRAPH).read_bytes())
    done = _audiocnn("predict", next((tones / "high").glob("*.wav")), "--model", path, "--runtime", "int8",
                     "--no-progress")
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"audiocnn: error: {path / INT8_INFO}: ") and done.stderr.count("\n") == 1
    # a graph over 1 MB is refused for its size, a smaller one (the tests' model) for its bytes
    assert "larger than any int8 record file (1048576 at most)" in done.stderr or "not UTF-8 text" in done.stderr
