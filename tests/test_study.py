"""`audiocnn study`: variants of one recipe through the same folds, compared by paired differences."""

from __future__ import annotations

import csv
import json
import math
import shutil

import matplotlib.image as mpimg
import pytest
import yaml

from audiocnn.config import load_recipe
from audiocnn.errors import ConfigError
from audiocnn.training.study import collect, load_study, paired_difference, run_study
from conftest import SMOKE, TINY


@pytest.fixture
def tiny_base(tmp_path):
    """smoke.yaml with the TINY overrides, written out as a base recipe a study can name. One training
    thread: two spin against the other worker of `make test`, and the fits took several times as long."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(load_recipe(SMOKE, [*TINY, "train.epochs=1"]).to_dict()))
    return path


def test_paired_difference_is_the_mean_with_a_t_interval():
    variant = {1: 0.80, 2: 0.85, 3: 0.90}
    reference = {1: 0.78, 2: 0.80, 3: 0.86, 4: 0.99}  # fold 4 is not shared: left out
    d = paired_difference(variant, reference)
    diffs = [0.02, 0.05, 0.04]
    sd = math.sqrt(sum((x - 0.11 / 3) ** 2 for x in diffs) / 2)
    assert d["n"] == 3 and d["mean"] == pytest.approx(0.11 / 3)
    assert d["high"] - d["mean"] == pytest.approx(4.302653 * sd / math.sqrt(3), rel=1e-5)  # t(0.975, 2 df)
    assert math.isnan(paired_difference({1: 0.5}, {1: 0.4})["low"])


def test_a_study_file_is_checked_before_anything_runs(tiny_base, tmp_path):
    def study(text: str):
        path = tmp_path / "study.yaml"
        path.write_text(text)
        return load_study(path)

    with pytest.raises(ConfigError, match="needs `base: RECIPE.yaml`"):
        study("variants: {a: {}}")
    with pytest.raises(ConfigError, match="variant typo: train: unknown key.*mixupp"):
        study(f"base: {tiny_base.name}\nvariants: {{base: {{}}, typo: {{train.mixupp: 0.1}}}}")
    with pytest.raises(ConfigError, match="must be letters"):
        study(f"base: {tiny_base.name}\nvariants: {{'a/b': {{}}}}")
    with pytest.raises(ConfigError, match="unknown key.*repeats"):
        study(f"base: {tiny_base.name}\nrepeats: 2\nvariants: {{base: {{}}}}")
    loaded = study(f"base: {tiny_base.name}\nvariants:\n  base: {{}}\n  logspec: {{frontend: {{kind: logspec}}}}\n"
                   f"  no-aug: {{train.specaugment.freq_masks: 0, train.specaugment.time_masks: 0}}\n")
    assert loaded.reference == "base"
    assert loaded.variants["logspec"].frontend == {"kind": "logspec"}  # the section was replaced
    assert loaded.variants["no-aug"].train.specaugment.freq_masks == 0
    assert loaded.variants["no-aug"].train.specaugment.freq_width == loaded.variants["base"].train.specaugment.freq_width


@pytest.mark.slow
def test_a_two_variant_study_runs_end_to_end_and_resumes(cli, tones, tiny_base, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(f"base: {tiny_base.name}\nfolds: [1, 2]\n"
                     "variants:\n  base: {}\n  mel16: {frontend.n_mels: 16, train.lr: 0.001}\n")
    out = tmp_path / "out"
    result = cli("study", str(study), "--data-root", str(tones), "--out", str(out), "--no-progress")
    assert result.code == 0, result.err
    with (out / "study.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["variant"] for r in rows] == ["base", "mel16"]
    assert rows[0]["difference"] == "–" and rows[1]["folds"] == "2"
    assert rows[1]["difference"].count("[") == 1  # mean [low, high]
    assert "frontend.n_mels=16" in (out / "study.md").read_text()
    assert mpimg.imread(out / "study.png").shape[1] >= 600
    for variant in ("base", "mel16"):
        assert sorted(p.parent.name for p in (out / variant).glob("fold*/metrics.json")) == ["fold1", "fold2"]
    report = (out / "study.md").read_text()
    assert ("| variant | clean | 20 dB quieter | noise at 10 dB SNR | noise at 0 dB SNR | band-limited to 4 kHz |"
            in report)
    assert rows[1]["noise at 0 dB SNR"].count("±") == 1  # mean (paired difference ± half-width)
    stamp = (out / "mel16" / "fold2" / "metrics.json").stat().st_mtime_ns
    scored = (out / "mel16" / "fold2" / "robustness.json").read_text()
    (out / "mel16" / "fold2" / "robustness.json").unlink()  # as for a fold run before robustness existed
    again = cli("study", str(study), "--data-root", str(tones), "--out", str(out), "--no-progress")
    assert again.code == 0 and (out / "mel16" / "fold2" / "metrics.json").stat().st_mtime_ns == stamp
    assert (out / "mel16" / "fold2" / "robustness.json").read_text() == scored  # rescored from the saved model
    older = {k: v for k, v in json.loads(scored).items() if k != "band4k"} | {"quiet": 0.125}
    (out / "mel16" / "fold2" / "robustness.json").write_text(json.dumps(older))  # as before band4k existed
    assert cli("study", str(study), "--data-root", str(tones), "--out", str(out), "--no-progress").code == 0
    filled = json.loads((out / "mel16" / "fold2" / "robustness.json").read_text())
    assert filled == older | {"band4k": json.loads(scored)["band4k"]}  # only the new condition was scored
    assert list(filled) == list(json.loads(scored))  # in the usual column order
    shutil.rmtree(out / "mel16" / "fold2")
    partial = cli("study", str(study), "--data-root", str(tones), "--out", str(out), "--report-only")
    assert partial.code == 0 and not (out / "mel16" / "fold2").exists()  # nothing was trained
    assert "| mel16 | frontend.n_mels=16, train.lr=0.001 | 1 |" in (out / "study.md").read_text()


def _study_with_two_variants(tiny_base, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(f"base: {tiny_base.name}\nvariants:\n  base: {{}}\n  lr: {{train.lr: 0.01}}\n")
    return load_study(study)


def test_a_shared_out_with_another_recipe_is_refused_before_any_training(tiny_base, tones, tmp_path):
    study = _study_with_two_variants(tiny_base, tmp_path)
    out = tmp_path / "out"
    (out / "lr").mkdir(parents=True)
    other = study.variants["lr"].to_dict()
    other["train"]["lr"] = 0.5
    (out / "lr" / "recipe.json").write_text(json.dumps(other))
    with pytest.raises(ConfigError, match="out/lr: holds runs of another recipe than variant lr"):
        run_study(study, tones, out, progress=False)
    assert not (out / "base").exists()  # refused before the first variant trained


def test_the_report_counts_only_the_folds_asked_for(tiny_base, tmp_path):
    study = _study_with_two_variants(tiny_base, tmp_path)
    out = tmp_path / "out"
    for variant, accuracies in {"base": [0.5, 0.6, 0.7], "lr": [0.6, 0.7, 0.2]}.items():
        for k, accuracy in enumerate(accuracies, 1):
            (out / variant / f"fold{k}").mkdir(parents=True)
            (out / variant / f"fold{k}" / "metrics.json").write_text(
                json.dumps({"split": f"fold{k}", "accuracy": accuracy, "macro_f1": accuracy}))
    (out / "lr" / "fold1" / "robustness.json").write_text(json.dumps({"clean": 0.6, "snr0": 0.3}))
    base, lr = collect(study, out, folds=[1, 2])
    assert lr.accuracy == {1: 0.6, 2: 0.7} and lr.difference["mean"] == pytest.approx(0.1)
    assert lr.robustness == {}  # fold 2 was not scored: no mean over some folds only
    assert len(collect(study, out)[1].accuracy) == 3
