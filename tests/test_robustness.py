"""Robustness conditions: what they do to a clip, and that a fold's clean score matches its test score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audiocnn import bundle
from audiocnn.config import load_recipe
from audiocnn.datasets.recipe import recipe_dataset
from audiocnn.training.cv import run_cv
from audiocnn.training.robustness import CONDITIONS, clip_noise, degrade, evaluate, recorded_like_noise
from conftest import SMOKE, TINY

RATE = 16_000


def power_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2))


def test_each_condition_does_what_its_name_says():
    rng = np.random.default_rng(1)
    clip = (0.2 * np.sin(2 * np.pi * 440 * np.arange(5 * RATE) / RATE)).astype(np.float32)
    noise = recorded_like_noise(len(clip), RATE, rng)
    assert power_db(noise) == pytest.approx(0.0, abs=0.01)
    assert power_db(clip) - power_db(degrade(clip, "quiet", noise, RATE)) == pytest.approx(20.0, abs=0.01)
    for condition in ("snr10", "snr0"):
        added = degrade(clip, condition, noise, RATE) - clip
        assert power_db(clip) - power_db(added) == pytest.approx(float(condition[3:]), abs=0.01)
    # pink: an octave up has about 3 dB less power per Hz
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / RATE)
    band = lambda lo: spectrum[(freqs >= lo) & (freqs < 2 * lo)].mean()  # noqa: E731
    assert 10 * np.log10(band(1000) / band(2000)) == pytest.approx(3.0, abs=1.0)
    high = (0.2 * np.sin(2 * np.pi * 5000 * np.arange(5 * RATE) / RATE)).astype(np.float32)
    assert power_db(degrade(clip, "band4k", noise, RATE)) == pytest.approx(power_db(clip), abs=0.1)  # 440 Hz passes
    assert power_db(high) - power_db(degrade(high, "band4k", noise, RATE)) > 30  # 5 kHz is gone
    with pytest.raises(ValueError, match="unknown condition"):
        degrade(clip, "reverb", noise, RATE)


def test_noise_is_the_same_for_every_model_and_different_per_clip(tmp_path):
    a, b = Path("1-100032-A-0.flac"), Path("1-100038-A-14.flac")
    assert np.array_equal(clip_noise(a, 8000, RATE), clip_noise(a, 8000, RATE))
    assert not np.allclose(clip_noise(a, 8000, RATE), clip_noise(b, 8000, RATE))


@pytest.mark.slow
def test_a_folds_clean_score_is_its_test_accuracy_and_every_condition_is_scored(tones, tmp_path):
    recipe = load_recipe(SMOKE, [*TINY, "train.epochs=1"])
    run_cv(recipe, tones, tmp_path / "run", folds=[1], progress=False)
    fold = tmp_path / "run" / "fold1"
    scored = json.loads((fold / "robustness.json").read_text())
    assert set(scored) == {"clean", *CONDITIONS}
    metrics = json.loads((fold / "metrics.json").read_text())
    n_test = metrics["n_test"]
    assert abs(scored["clean"] - metrics["accuracy"]) <= 1 / n_test + 1e-9  # same clips, same model
    model = bundle.load(fold / "model")
    clips = [c for c in recipe_dataset(recipe, tones).clips if c.fold == 1]  # the folds training used
    assert evaluate(model.model, clips, model.labels, recipe.data.clip_seconds) == scored  # deterministic
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["robustness"] == scored
    assert "noise at 0 dB SNR" in (tmp_path / "run" / "summary.md").read_text()
    for left_by_a_kill in ("", '{"clean": 0.5, "qui'):  # an empty record, or one cut short
        (fold / "robustness.json").write_text(left_by_a_kill)
        run_cv(recipe, tones, tmp_path / "run", folds=[1], progress=False)  # the same command again
        assert json.loads((fold / "robustness.json").read_text()) == scored  # scored again from the saved model
    assert sorted(p.name for p in fold.iterdir() if "partial" in p.name) == []


def test_a_summary_shows_only_the_conditions_every_fold_was_scored_on(tmp_path):
    from audiocnn.training.reports import fold_robustness

    folds = [tmp_path / "fold1", tmp_path / "fold2"]
    for fold, scores in zip(folds, ({"clean": 0.8, "snr0": 0.4, "band4k": 0.6}, {"clean": 0.6, "snr0": 0.2})):
        fold.mkdir()
        (fold / "robustness.json").write_text(json.dumps(scores))
    assert fold_robustness(folds) == pytest.approx({"clean": 0.7, "snr0": 0.3})  # fold 2 predates band4k
    assert fold_robustness([*folds, tmp_path / "fold3"]) == {}  # a fold never scored
