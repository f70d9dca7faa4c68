"""Confidence that means something: temperature scaling, the `unknown` threshold, and `unknown`
in every output format (issue 18)."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from audiocnn import bundle
from audiocnn.inference.formats import PredictionWriter
from audiocnn.inference.options import OutputOptions, PredictOptions
from audiocnn.inference.predictor import UNKNOWN, Predictor
from audiocnn.training.calibration import (
    DEFAULT_UNKNOWN_BELOW,
    KEEP_CORRECT,
    MIN_CORRECT_CLIPS,
    calibrate,
    fit_temperature,
    threshold_summary,
    unfitted_warning,
    unknown_threshold,
)
from conftest import SMOKE, TINY, TONE_HZ, tone_clip, uncalibrated_copy, write_tone


def _over_confident(n: int, scale: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits z that are calibrated by construction (labels drawn from softmax(z)), and the same
    logits made over-confident by `scale`: a model whose right temperature is `scale`."""
    rng = np.random.default_rng(seed)
    calibrated = torch.from_numpy(rng.normal(0, 1.5, size=(n, 10)))
    labels = torch.multinomial(calibrated.softmax(-1), 1, generator=torch.Generator().manual_seed(seed)).squeeze(1)
    return calibrated, calibrated * scale, labels


def test_temperature_scaling_lowers_the_nll_of_an_over_confident_model_on_held_out_data():
    _, fit_logits, fit_labels = _over_confident(3000, 4.0, seed=0)
    _, held_logits, held_labels = _over_confident(3000, 4.0, seed=1)
    temperature = fit_temperature(fit_logits, fit_labels)
    assert temperature == pytest.approx(4.0, rel=0.1)  # it finds the over-confidence it was given
    before = F.cross_entropy(held_logits, held_labels)
    after = F.cross_entropy(held_logits / temperature, held_labels)
    assert after < 0.6 * before
    calibration = calibrate(fit_logits.float(), fit_labels)
    assert calibration.nll_after < calibration.nll_before and calibration.ece_after < calibration.ece_before


def test_an_under_confident_model_gets_a_temperature_below_one():
    _, logits, labels = _over_confident(3000, 0.5, seed=2)
    assert fit_temperature(logits, labels) == pytest.approx(0.5, rel=0.1)


def test_the_unknown_threshold_keeps_the_stated_share_of_right_answers():
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet(np.ones(5) * 0.3, size=2000)
    labels = np.where(rng.random(2000) < 0.7, probabilities.argmax(axis=1), rng.integers(0, 5, 2000))
    threshold = unknown_threshold(probabilities, labels, KEEP_CORRECT)
    right = probabilities.argmax(axis=1) == labels
    kept = (probabilities.max(axis=1)[right] >= threshold).mean()
    assert KEEP_CORRECT <= kept <= KEEP_CORRECT + 0.01


def test_training_stores_a_calibration_fitted_on_validation_clips(tone_bundle):
    """The shared tone model (train --test-fold 1): its bundle carries the calibration and its
    metrics the test fold's calibration error, before and after."""
    loaded = bundle.load(tone_bundle)
    calibration = loaded.calibration
    assert calibration["fitted_on"] == "validation clips of the training folds"
    assert calibration["clips"] == loaded.metrics["n_val"] > 0
    assert 0.05 <= loaded.temperature <= 20 and 0 <= loaded.unknown_below <= 1
    assert calibration["nll_after"] <= calibration["nll_before"] + 1e-6
    assert set(loaded.metrics["test_ece"]) == {"uncalibrated", "calibrated"}


@pytest.fixture(scope="module")
def noise_then_tone(tmp_path_factory):
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("abstain") / "tone.wav"
    sf.write(path, np.concatenate([tone_clip(TONE_HZ["low"], 2.0, rng)]), 16_000)
    return path


def _written(fmt: str, prediction, can_abstain: bool = True) -> str:
    stream = io.StringIO()
    writer = PredictionWriter(stream, OutputOptions(format=fmt, top_k=2), can_abstain=can_abstain)
    writer.add(prediction)
    writer.close()
    return stream.getvalue()


def _softened(tone_bundle):
    """The tone model with a high temperature: no window is certain (float32 would round some to 1.0)."""
    model = bundle.load(tone_bundle)
    model.calibration = {"temperature": 20.0}
    return model


@pytest.mark.slow
def test_the_temperature_divides_the_logits(tone_bundle, noise_then_tone):
    plain = Predictor(bundle.load(tone_bundle), PredictOptions(runtime="torch")).predict(noise_then_tone)
    soft = Predictor(_softened(tone_bundle), PredictOptions(runtime="torch")).predict(noise_then_tone)
    expected = torch.from_numpy(soft.logits / 20.0).softmax(-1).numpy()
    np.testing.assert_allclose(soft.probabilities, expected, atol=1e-6)
    assert soft.probabilities.max() < plain.probabilities.max()
    np.testing.assert_array_equal(soft.probabilities.argmax(axis=1), plain.probabilities.argmax(axis=1))


@pytest.mark.slow
def test_unknown_comes_first_with_the_guesses_after_it_in_every_format(tone_bundle, noise_then_tone):
    model = _softened(tone_bundle)
    sure = Predictor(model, PredictOptions(runtime="torch", unknown_below=0.0)).predict(noise_then_tone)
    unsure = Predictor(model, PredictOptions(runtime="torch", unknown_below=1.0)).predict(noise_then_tone)  # nothing is that sure
    guesses = sure.top(sure.summary, 2)
    assert unsure.top(unsure.summary, 2) == [(UNKNOWN, None), *guesses] and UNKNOWN not in dict(guesses)

    table = _written("table", unsure)
    assert f"whole file  {UNKNOWN}  {guesses[0][0]} {guesses[0][1]:.2f}" in table
    assert all(f"  {UNKNOWN}  " in line for line in table.splitlines()[2:] if line.strip())  # every window

    rows = list(csv.reader(io.StringIO(_written("csv", unsure))))
    assert rows[0][4:] == ["label_1", "probability_1", "label_2", "probability_2", "label_3", "probability_3"]
    assert all(row[4] == UNKNOWN and row[5] == "" and row[6] for row in rows[1:])

    document = json.loads(_written("json", unsure))["files"][0]
    assert document["summary"][0] == {"label": UNKNOWN, "probability": None}
    assert document["summary"][1]["label"] == guesses[0][0]
    assert all(window["top"][0]["label"] == UNKNOWN for window in document["windows"])

    raven = list(csv.DictReader(io.StringIO(_written("raven", unsure)), delimiter="\t"))
    first = [row for row in raven if row["Rank"] == "1"]
    assert first and all(row["Label"] == UNKNOWN and row["Confidence"] == "" for row in first)

    answered = json.loads(_written("json", sure, can_abstain=False))["files"][0]
    assert all(entry["label"] != UNKNOWN for entry in answered["summary"])


def test_min_confidence_still_drops_weak_labels_of_an_unknown_window(tone_bundle, noise_then_tone):
    model = _softened(tone_bundle)
    prediction = Predictor(model, PredictOptions(runtime="torch", unknown_below=1.0)).predict(noise_then_tone)
    row = prediction.probabilities[0]
    assert prediction.top(row, 3, min_confidence=1.01) == []  # no label left: the window is not listed
    kept = prediction.top(row, 3, min_confidence=float(np.sort(row)[-2]) + 1e-6)
    assert [label for label, _ in kept] == [UNKNOWN, prediction.labels[int(row.argmax())]]


@pytest.mark.slow
def test_calibrate_command_refits_what_training_stored(cli, tone_bundle, tones, tmp_path):
    """`audiocnn calibrate` on an uncalibrated copy finds the same validation clips training used,
    so it stores the same calibration."""
    copy = uncalibrated_copy(tone_bundle, tmp_path / "model")
    assert bundle.load(copy).calibration == {}
    result = cli("calibrate", "--model", copy, "--data-root", tones, "--no-progress")
    assert result.code == 0, result.err
    assert "temperature" in result.out and "validation clips" in result.out
    refitted, trained = bundle.load(copy).calibration, bundle.load(tone_bundle).calibration
    for key in ("temperature", "unknown_below", "clips", "nll_before"):
        assert refitted[key] == pytest.approx(trained[key], abs=1e-3), key


@pytest.mark.slow
def test_calibrate_refuses_a_dataset_without_the_models_labels(cli, tone_bundle, tmp_path):
    other = tmp_path / "other"
    for label in ("bark", "meow"):
        for i in range(12):
            write_tone(other / label / f"{label}{i}.wav", seconds=1.0, freq=300.0 + 50 * i)
    result = cli("calibrate", "--model", uncalibrated_copy(tone_bundle, tmp_path / "model"), "--data-root", other,
                 "--no-progress")
    assert result.code == 1 and "Traceback" not in result.err
    assert "are not among the model's labels" in result.err


def test_an_unknown_threshold_outside_0_1_is_one_error_line(cli, tone_bundle, noise_then_tone):
    result = cli("predict", noise_then_tone, "--model", tone_bundle, "--unknown-below", "2", "--no-progress")
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err.strip() == "audiocnn: error: --unknown-below: should be less than or equal to 1 (got 2.0)"


# ----------------------------------------------------------------------------- too few clips to fit a threshold


def _confident(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of `n` validation clips that a model gets right, most of them with near certainty."""
    rng = np.random.default_rng(seed)
    labels = torch.from_numpy(rng.integers(0, 3, n))
    logits = torch.from_numpy(rng.normal(0, 1, (n, 3))).float()
    logits[torch.arange(n), labels] += torch.from_numpy(rng.uniform(2, 9, n)).float()
    return logits, labels


def test_a_threshold_is_fitted_only_from_enough_right_answers():
    """22 right answers, all fairly sure, once set `unknown` below 0.95 without a word: the 5th percentile
    of so few is the least sure of them. Below MIN_CORRECT_CLIPS it stays off and the record says so."""
    few = calibrate(*_confident(22, seed=0))
    assert few.unknown_below == DEFAULT_UNKNOWN_BELOW == 0 and not few.unknown_fitted
    assert few.correct_clips == few.clips == 22
    assert threshold_summary(few.to_dict()) == ("`unknown` off (threshold 0): 22 of 22 validation clips classified "
                                                f"right, fewer than the {MIN_CORRECT_CLIPS} a threshold needs")
    logits, labels = _confident(200, seed=1)
    right = int((logits.argmax(1) == labels).sum())
    enough = calibrate(logits, labels)
    assert enough.unknown_fitted and enough.correct_clips == right >= MIN_CORRECT_CLIPS
    assert 0.5 < enough.unknown_below < 1
    assert threshold_summary(enough.to_dict()) == (f"`unknown` below {enough.unknown_below:.2f}: kept 95% of the "
                                                   f"{right} validation clips classified right (of 200)")
    assert unfitted_warning({"a": enough.to_dict()}) is None
    assert "a: 22 of 22 validation clips classified right" in unfitted_warning({"a": few.to_dict(), "b": None})


@pytest.mark.slow
def test_calibrate_says_what_set_the_threshold_and_warns_when_too_few_did(cli, tone_bundle, tones, tmp_path):
    """`audiocnn calibrate` on the tone model (9 validation clips): the threshold line and one warning."""
    copy = uncalibrated_copy(tone_bundle, tmp_path / "model")
    done = cli("calibrate", "--model", copy, "--data-root", tones, "--no-progress", "--cache-dir", tmp_path / "cache")
    assert done.code == 0, done.err
    assert "`unknown` off (threshold 0): 9 of 9 validation clips classified right, fewer than the 50" in done.out
    assert done.err.splitlines() == [
        f"audiocnn: warning: `unknown` threshold not fitted ({copy}: 9 of 9 validation clips classified right; a "
        "threshold needs at least 50): `unknown` is off. Set one with `predict --unknown-below P`, or train with more "
        "validation clips (data.val_fraction) and run `audiocnn calibrate`"]
    assert bundle.load(copy).calibration["unknown_fitted"] is False and bundle.load(copy).unknown_below == 0


@pytest.mark.slow
def test_train_and_cv_print_each_models_threshold_and_warn_when_it_is_not_fitted(cli, tones, tmp_path):
    options = [arg for item in [*TINY, "train.epochs=1"] for arg in ("--set", item)]
    trained = cli("train", SMOKE, "--data-root", tones, "--out", tmp_path / "model", "--test-fold", "1",
                  "--no-progress", "--cache-dir", tmp_path / "cache", *options)
    assert trained.code == 0, trained.err
    assert re.search(r"^`unknown` off \(threshold 0\): \d of 9 validation clips classified right, fewer than the 50 a "
                     r"threshold needs$", trained.out, re.M), trained.out
    assert [line for line in trained.err.splitlines() if "warning" in line] == [
        line for line in trained.err.splitlines() if line.startswith("audiocnn: warning: `unknown` threshold not fitted")
    ] and trained.err.count("audiocnn: warning:") == 1
    run = tmp_path / "run"
    done = cli("cv", SMOKE, "--data-root", tones, "--out", run, "--folds", "1,2", "--no-progress",
               "--cache-dir", tmp_path / "cache", *options)
    assert done.code == 0, done.err
    assert re.search(r"^fold 1: `unknown` off .*\nfold 2: `unknown` off ", done.out, re.M), done.out
    assert done.err.count("audiocnn: warning: `unknown` threshold not fitted (fold 1: ") == 1
    assert "## When each fold's model says `unknown`" in (run / "summary.md").read_text()
    assert [fold["unknown_below"] for fold in json.loads((run / "summary.json").read_text())["folds"]] == [0, 0]
