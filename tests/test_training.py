"""Training and cross-validation, end to end on real code: a real ESC-50 smoke run through the
CLI, a synthetic task a tiny model must learn, determinism, resume, cache, augmentation."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import lightning as L
import matplotlib.image as mpimg
import numpy as np
import pytest
import soundfile as sf
import torch

from audiocnn import bundle
from audiocnn.config import FreqMixStyleConfig, SpecAugmentConfig, load_recipe
from audiocnn.datasets import load_dataset, make_splits
from audiocnn.datasets.images import cache_key, clip_images
from audiocnn.features import create_frontend
from audiocnn.training.augment import freq_mixstyle, mixup, spec_augment
from audiocnn.training.cv import run_cv, split_data, train_bundle
from audiocnn.training.fit import fit_split
from audiocnn.training.prepare import prepare
from conftest import SMOKE, TEST_BACKBONE, TINY, TONE_LABELS


@pytest.mark.slow
def test_cv_smoke_on_real_esc50_writes_every_report(cli, esc50_root, tmp_path):
    run = tmp_path / "run"
    # One training thread, not smoke.yaml's two: beside another busy process (the other worker of
    # `make test`) two threads spin against each other, and the fits took several times as long.
    args = ("cv", SMOKE, "--data-root", esc50_root, "--out", run, "--folds", "1,2", "--set", "data.limit_per_class=1",
            "--set", "train.threads=1", "--cache-dir", tmp_path / "cache", "--no-progress")
    result = cli(*args)
    assert result.code == 0, result.err
    assert "over 2 fold(s)" in result.out
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) >= {"mean_accuracy", "std_accuracy", "folds"}
    assert [f["fold"] for f in summary["folds"]] == [1, 2] and all(0 <= f["accuracy"] <= 1 for f in summary["folds"])
    for fold in ("fold1", "fold2"):
        metrics = json.loads((run / fold / "metrics.json").read_text())
        assert metrics["n_test"] == 50 and {"accuracy", "macro_f1"} <= set(metrics)
        assert metrics["test_fold"] == int(fold.removeprefix("fold"))
        with (run / fold / "predictions.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 50 and len(rows[0]) == 5 + 50
        assert abs(sum(float(rows[0][c]) for c in list(rows[0])[5:]) - 1) < 1e-2
        assert (run / fold / "logs" / "version_0" / "metrics.csv").is_file()
        assert list((run / fold / "tensorboard" / "version_0").glob("events.*"))
        fold_model = bundle.load(run / fold / "model")  # the fold's model, as a bundle
        assert fold_model.metrics["accuracy"] == metrics["accuracy"] and len(fold_model.labels) == 50
    assert "| fold | accuracy | macro-F1 |" in (run / "summary.md").read_text()
    assert mpimg.imread(run / "confusion.png").shape[0] > 500
    # Rerunning resumes: finished folds are not trained again, nor are their images made.
    stamp = (run / "fold1" / "metrics.json").stat().st_mtime_ns
    again = [*args[:-2], tmp_path / "empty-cache", "--no-progress"]
    assert cli(*again).code == 0 and (run / "fold1" / "metrics.json").stat().st_mtime_ns == stamp
    assert not list((tmp_path / "empty-cache").glob("**/*.*"))


def test_a_tiny_model_learns_a_synthetic_task(tone_bundle):
    """The shared tone model (conftest) was trained with fold 1 held out: it must name those clips."""
    metrics = bundle.load(tone_bundle).metrics
    assert metrics["test_fold"] == 1 and metrics["n_test"] == 12 and metrics["epochs"] == 8
    assert metrics["accuracy"] >= 0.9, metrics
    with (tone_bundle / "training" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and {row["label"] for row in rows} == set(TONE_LABELS)


@pytest.mark.slow
def test_deterministic_training_repeats_exactly_and_leaves_the_thread_count_alone(tones, tmp_path):
    # The fits run on one thread (two spin against the other worker of `make test`, several times
    # slower), so this process is set to another count for the test: the one each fit must restore.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        recipe = load_recipe(SMOKE, [*TINY, "train.epochs=1", "train.deterministic=true"])
        outputs = []
        for name in ("a", "b"):
            train_bundle(recipe, tones, tmp_path / name, test_fold=1, progress=False)
            outputs.append((tmp_path / name / "training" / "predictions.csv").read_text())
            assert torch.get_num_threads() == 2  # train.threads holds for the fit only
    finally:
        torch.set_num_threads(threads)
    assert outputs[0] == outputs[1]


def test_trained_bundle_classifies_audio(tone_bundle, tones):
    loaded = bundle.load(tone_bundle)
    assert loaded.labels == list(TONE_LABELS)
    wave = torch.from_numpy(sf.read(tones / "low" / "low3.wav", dtype="float32")[0])
    with torch.inference_mode():
        assert loaded.labels[int(loaded.model(wave[None]).argmax())] == "low"


class Kill(L.Callback):
    """Stops a run dead as it starts its second epoch, after the first one's checkpoint."""

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch == 1:
            raise RuntimeError("killed")


@pytest.mark.slow
def test_a_killed_fold_resumes_from_its_last_checkpoint(tones, tmp_path):
    recipe = load_recipe(SMOKE, [*TINY, "train.epochs=2"])  # one thread: see the ESC-50 smoke run
    run = tmp_path / "run"
    prepared = prepare(recipe, tones, None, progress=False)
    fold1 = make_splits(prepared.dataset, val_fraction=recipe.data.val_fraction, seed=recipe.data.seed)[0]
    with pytest.raises(RuntimeError, match="killed"):
        fit_split(recipe, create_frontend(recipe.frontend), split_data(fold1, prepared),
                  len(prepared.dataset.classes), run / "fold1", progress=False, callbacks=[Kill()])
    assert (run / "fold1" / "checkpoints" / "last.ckpt").is_file()
    assert not (run / "fold1" / "metrics.json").exists()

    run_cv(recipe, tones, run, folds=[1], progress=False)  # the same command again

    def trained_epochs(attempt: int) -> list[str]:
        with (run / "fold1" / "logs" / f"version_{attempt}" / "metrics.csv").open() as handle:
            return [row["epoch"] for row in csv.DictReader(handle) if row.get("val_acc")]

    assert trained_epochs(0) == ["0"] and trained_epochs(1) == ["1"]  # epoch 0 was not trained again
    assert json.loads((run / "fold1" / "metrics.json").read_text())["epochs"] == 2


class NoImprovementAfterEpoch0(L.Callback):
    """Reports validation accuracy 1 for the first epoch and 0 after it: the best epoch stays epoch 0,
    whatever the model learned (a tiny one may score 0 after its first epoch, a tie the next epoch wins)."""

    def on_validation_end(self, trainer, module) -> None:  # after the epoch's metrics; checkpoints run last
        trainer.callback_metrics["val_acc"] = torch.tensor(1.0 if trainer.current_epoch == 0 else 0.0)


@pytest.mark.slow
def test_last_checkpoint_is_the_final_epoch_even_when_validation_stops_improving(tones, tmp_path):
    """When validation accuracy peaks early, best.ckpt stays there but last.ckpt must be the last epoch."""
    recipe = load_recipe(SMOKE, [*TINY, "train.epochs=3"])
    prepared = prepare(recipe, tones, None, progress=False)
    fold1 = make_splits(prepared.dataset, val_fraction=recipe.data.val_fraction, seed=recipe.data.seed)[0]
    result = fit_split(recipe, create_frontend(recipe.frontend), split_data(fold1, prepared),
                       len(prepared.dataset.classes), tmp_path, progress=False, callbacks=[NoImprovementAfterEpoch0()])
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["epoch"] == 0  # the scenario: validation never improved after epoch 0
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["epoch"] == recipe.train.epochs - 1
    final = result.model.backbone.state_dict()
    for name, tensor in saved["state_dict"].items():
        torch.testing.assert_close(tensor.float(), final[name.removeprefix("backbone.")].float())


@pytest.mark.slow
def test_a_run_folder_refuses_a_changed_recipe_and_folds_of_an_older_training(tones, tmp_path):
    from audiocnn.errors import ConfigError

    recipe = load_recipe(SMOKE, [*TINY, "train.epochs=1"])
    run_cv(recipe, tones, tmp_path, folds=[1], progress=False)
    with pytest.raises(ConfigError, match="started with a different recipe"):
        run_cv(load_recipe(SMOKE, [*TINY, "train.epochs=2"]), tones, tmp_path, folds=[1], progress=False)
    metrics = tmp_path / "fold1" / "metrics.json"
    assert json.loads(metrics.read_text())["training_scheme"] == 2
    older = {k: v for k, v in json.loads(metrics.read_text()).items() if k != "training_scheme"}
    metrics.write_text(json.dumps(older))  # as written before the optimizer changed
    with pytest.raises(ConfigError, match="fold1 were trained by an older audiocnn"):
        run_cv(recipe, tones, tmp_path, folds=[2], progress=False)
    assert not (tmp_path / "fold2").exists()
    assert run_cv(recipe, tones, tmp_path, folds=[1], progress=False)["folds"][0]["fold"] == 1  # reports still


def test_feature_cache_is_reused_and_keyed_by_settings(tones, tmp_path):
    clips = load_dataset("folder", tones).clips[:6]
    frontend = create_frontend({"kind": "mel", "n_mels": 32})
    first = clip_images(clips, frontend, 1.0, tmp_path, progress=False)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1
    torch.testing.assert_close(clip_images(clips, frontend, 1.0, tmp_path, progress=False), first)
    assert cache_key(clips, frontend.config(), 1.0) != cache_key(clips, {**frontend.config(), "n_mels": 64}, 1.0)
    assert cache_key(clips, frontend.config(), 1.0) != cache_key(clips, frontend.config(), 2.0)
    torch.testing.assert_close(clip_images(clips, frontend, 1.0, None, progress=False), first)
    from audiocnn.errors import AudiocnnWarning

    def npy(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()

    # cut short by a kill; garbage; valid arrays of the wrong shape or type (copied in by hand, another
    # version's layout), which gave a traceback deep in training on every run
    for damage in (files[0].read_bytes()[:100], b"not an array at all", npy(first.numpy()[:5]),
                   npy(first.numpy()[:, :, :-1]), npy(first.numpy().astype(np.float64)), npy(np.zeros(3, np.float32))):
        files[0].write_bytes(damage)
        with pytest.warns(AudiocnnWarning, match="unreadable feature-cache entry"):
            again = clip_images(clips, frontend, 1.0, tmp_path, progress=False)
        torch.testing.assert_close(again, first)
        torch.testing.assert_close(torch.from_numpy(np.load(files[0])), first)  # and the entry is whole again


def test_spec_augment_masks_bands_within_limits():
    images = torch.ones(64, 1, 40, 100)
    cfg = SpecAugmentConfig(freq_masks=2, freq_width=5, time_masks=1, time_width=10)
    masked = spec_augment(images, cfg, torch.Generator().manual_seed(0))
    zero_rows = (masked == 0).all(dim=3).sum(dim=(1, 2))  # rows fully masked per image
    zero_cols = (masked == 0).all(dim=2).sum(dim=(1, 2))
    assert zero_rows.max() <= 10 and zero_cols.max() <= 10 and zero_rows.sum() > 0 and zero_cols.sum() > 0
    assert torch.equal(spec_augment(images, SpecAugmentConfig()), images)


def test_freq_mixstyle_swaps_per_band_colouring_and_keeps_the_content():
    # Two recordings of one pattern through different "microphones": per-row gain and offset.
    torch.manual_seed(0)
    content = torch.randn(1, 1, 8, 50)
    gains, offsets = torch.linspace(0.5, 2.0, 8).view(1, 1, 8, 1), torch.linspace(-1, 1, 8).view(1, 1, 8, 1)
    images = torch.cat([content, content * gains + offsets])
    mixed = freq_mixstyle(images, FreqMixStyleConfig(p=1.0, alpha=0.3), torch.Generator().manual_seed(1))
    # Each output is the same content under a colouring between the two devices': its per-row
    # standardisation equals the content's, and its per-row means lie between the two inputs'.
    def standardised(x):
        return (x - x.mean(dim=(1, 3), keepdim=True)) / x.std(dim=(1, 3), keepdim=True, correction=0)
    torch.testing.assert_close(standardised(mixed), standardised(images), atol=1e-3, rtol=1e-3)
    means, row_means = mixed.mean(dim=3), images.mean(dim=3)
    low, high = row_means.min(dim=0).values, row_means.max(dim=0).values
    assert ((means >= low - 1e-4) & (means <= high + 1e-4)).all()
    assert not torch.allclose(mixed, images, atol=1e-3)  # something was mixed (seeded: a partner was drawn)
    # Off (p 0) and a skipped batch return the images untouched.
    assert freq_mixstyle(images, FreqMixStyleConfig()) is images
    assert freq_mixstyle(images, FreqMixStyleConfig(p=1e-9)) is images


def test_mixup_blends_pairs_with_their_labels():
    torch.manual_seed(0)
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    labels = torch.tensor([0, 1, 2, 3])
    mixed, a, b, lam = mixup(images, labels, alpha=0.4)
    assert 0 <= lam <= 1 and torch.equal(a, labels)
    torch.testing.assert_close(mixed[:, 0, 0, 0], lam * labels.float() + (1 - lam) * b.float())


@pytest.mark.parametrize("damage", ["header", "frames"])
def test_a_corrupt_clip_stops_training_with_one_clear_line(cli, tones, tmp_path, damage):
    """A file whose header cannot be read is refused before any clip is decoded (every header is
    checked up front); one whose header is fine but whose audio is not (a FLAC that loses sync
    half-way) stops training when its clips are read, with one line too."""
    data = tmp_path / "data"
    for label in ("high", "low"):
        (data / label).mkdir(parents=True)
        for wav in sorted((tones / label).glob("*.wav"))[:6]:
            (data / label / wav.name).write_bytes(wav.read_bytes())
    bad = data / "low" / "low0.wav"
    if damage == "header":
        bad.write_bytes(b"RIFF....WAVEnot really")
    else:
        wave, rate = sf.read(bad, dtype="float32")
        bad.unlink()
        bad = bad.with_suffix(".flac")
        sf.write(bad, wave, rate)
        frames = bytearray(bad.read_bytes())
        for i in range(len(frames) // 3, len(frames), 7):
            frames[i] ^= 0xFF
        bad.write_bytes(bytes(frames))
    result = cli("cv", SMOKE, "--data-root", data, "--out", tmp_path / "run", "--cache-dir", tmp_path / "cache",
                 "--no-progress", *[arg for item in TINY for arg in ("--set", item)])
    assert result.code == 1 and "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("audiocnn: error:")]
    assert len(errors) == 1 and bad.name in errors[0], result.err
    if damage == "header":
        assert "1 problem(s) in the folder dataset" in errors[0]
        assert "--allow-incomplete to train on the 11 usable clips" in errors[0]
    else:
        assert "1 of 12 clips cannot be read" in errors[0] and "lost sync" in errors[0]


@pytest.mark.slow
def test_train_all_data_via_cli_writes_a_bundle(cli, tones, tmp_path):
    result = cli("train", SMOKE, "--data-root", tones, "--out", tmp_path / "model", "--all-data", "--no-progress",
                 "--cache-dir", tmp_path / "cache", *[arg for item in [*TINY, "train.epochs=1"] for arg in ("--set", item)])
    assert result.code == 0, result.err
    assert f"bundle saved to {tmp_path / 'model'}" in result.out
    loaded = bundle.load(tmp_path / "model")
    assert loaded.labels == list(TONE_LABELS) and loaded.recipe.model.backbone == TEST_BACKBONE
    assert "test_fold" not in loaded.metrics and loaded.metrics["split"] == "all-data"


def test_dataset_options_in_a_recipe_reach_the_loader_or_are_refused(esc50_root, tmp_path):
    from audiocnn.errors import DatasetError
    from audiocnn.training.prepare import prepare

    with pytest.raises(DatasetError, match="esc50: does not take n_folds"):
        prepare(load_recipe(SMOKE, ["data.folds=3"]), esc50_root, None, progress=False)
    with pytest.raises(DatasetError, match="split list not found"):
        prepare(load_recipe(SMOKE, ["data.dataset=gtzan", "data.split=filtered", f"data.splits_dir={tmp_path}"]),
                _tiny_gtzan(tmp_path), None, progress=False)


def _tiny_gtzan(root: Path) -> Path:
    for genre in ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"):
        (root / "genres" / genre).mkdir(parents=True)
        sf.write(root / "genres" / genre / f"{genre}.00000.wav", np.zeros(160, dtype=np.float32), 16_000)
    return root


class _Planted:
    """Unpickling this runs code: it writes the marker file a test then looks for."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.slow
def test_a_checkpoint_planted_in_a_run_folder_is_refused_not_run(tones, tmp_path):
    """Resuming reads last.ckpt and best.ckpt back: a pickle with code in it must never run."""
    from audiocnn.errors import ConfigError

    recipe = load_recipe(SMOKE, [*TINY, "train.epochs=2", "train.select=best-val"])
    prepared = prepare(recipe, tones, None, progress=False)
    fold1 = make_splits(prepared.dataset, val_fraction=recipe.data.val_fraction, seed=recipe.data.seed)[0]

    def fit() -> None:
        fit_split(recipe, create_frontend(recipe.frontend), split_data(fold1, prepared),
                  len(prepared.dataset.classes), tmp_path / "fold1", progress=False)

    fit()  # finished: resuming it trains nothing, then reads best.ckpt back (select: best-val)
    marker = tmp_path / "pwned"
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = tmp_path / "fold1" / "checkpoints" / name
        saved = checkpoint.read_bytes()
        torch.save({"state_dict": _Planted(marker), "epoch": 1}, checkpoint)  # as a checkpoint is written
        with pytest.raises(ConfigError, match=f"{name}: not a checkpoint audiocnn wrote"):
            fit()
        assert not marker.exists()
        checkpoint.write_bytes(saved)


@pytest.mark.slow
def test_training_that_diverges_stops_with_one_line_naming_the_epoch(cli, tones, tmp_path):
    """A loss that is no longer a number would train on and report a useless model's accuracy."""
    result = cli("cv", SMOKE, "--data-root", tones, "--out", tmp_path / "run", "--folds", "1", "--no-progress",
                 *[arg for item in [*TINY, "train.epochs=2", "train.optimizer=sgd", "train.lr=1e30"]
                   for arg in ("--set", item)])
    assert result.code == 1 and "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("audiocnn: error:")]
    assert len(errors) == 1 and "training diverged in epoch 1: the loss is nan" in errors[0], result.err
    assert not (tmp_path / "run" / "fold1" / "metrics.json").exists()


@pytest.mark.filterwarnings("default::audiocnn.errors.AudiocnnWarning")  # shown as the CLI shows it
@pytest.mark.slow
def test_a_dataset_with_problems_is_refused_or_trained_with_a_warning(cli, tones, tmp_path):
    """A CSV row without a label used to be dropped without a word; now training names it."""
    listing = tmp_path / "clips.csv"
    rows = [f"{wav},{wav.parent.name}" for wav in sorted(tones.rglob("*.wav"))]
    rows[5] = rows[5].split(",")[0] + ","  # an empty label
    listing.write_text("path,label\n" + "\n".join(rows) + "\n")
    options = [arg for item in [*TINY, "data.dataset=csv", "train.epochs=1"] for arg in ("--set", item)]
    refused = cli("cv", SMOKE, "--data-root", listing, "--out", tmp_path / "run", "--folds", "1", "--no-progress",
                  *options)
    assert refused.code == 1 and not (tmp_path / "run" / "fold1").exists()
    assert "1 problem(s) in the csv dataset (" in refused.err and "clips.csv:7: empty label" in refused.err
    assert "--allow-incomplete" in refused.err
    allowed = cli("cv", SMOKE, "--data-root", listing, "--out", tmp_path / "run", "--folds", "1", "--no-progress",
                  "--allow-incomplete", *options)
    assert allowed.code == 0, allowed.err
    warnings = [line for line in allowed.err.splitlines()
                if line.startswith("audiocnn: warning:") and "`unknown` threshold not fitted" not in line]
    assert len(warnings) == 1 and "training on the 47 usable clips" in warnings[0]


@pytest.mark.slow
def test_a_partly_extracted_esc50_is_refused_before_training(cli, esc50_root, tmp_path):
    partial = tmp_path / "esc50"
    (partial / "meta").mkdir(parents=True)
    (partial / "audio").mkdir()
    (partial / "meta" / "esc50.csv").write_bytes((esc50_root / "meta" / "esc50.csv").read_bytes())
    for clip in sorted((esc50_root / "audio").iterdir())[:1200]:  # as an interrupted extraction leaves it
        (partial / "audio" / clip.name).symlink_to(clip)
    result = cli("cv", SMOKE, "--data-root", partial, "--out", tmp_path / "run", "--no-progress")
    assert result.code == 1 and "800 problem(s) in the esc50 dataset" in result.err and "missing audio file" in result.err
    assert not list((tmp_path / "run").glob("fold*"))


@pytest.mark.slow
def test_a_run_folder_whose_first_attempt_failed_before_training_takes_a_corrected_recipe(tones, tmp_path):
    from audiocnn.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown backbone 'resnet9000'"):
        run_cv(load_recipe(SMOKE, [*TINY, "model.backbone=resnet9000"]), tones, tmp_path, folds=[1], progress=False)
    assert (tmp_path / "recipe.json").is_file()  # written, but no fold trained
    corrected = load_recipe(SMOKE, [*TINY, "train.epochs=1"])
    assert run_cv(corrected, tones, tmp_path, folds=[1], progress=False)["folds"][0]["fold"] == 1
    assert json.loads((tmp_path / "recipe.json").read_text())["model"]["backbone"] == TEST_BACKBONE
