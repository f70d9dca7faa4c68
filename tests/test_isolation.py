"""One item never stops the work: any exception from one file becomes one line naming it, the rest
finishes, and the exit code is non-zero with a count.

A real WAV holding MP3 frames with a Latin-1 tag made PyAV raise UnicodeDecodeError, and `predict`
on a folder of 548 recordings died writing nothing: the per-file handlers caught only our own
errors. Here one call inside real code raises an exception nothing foresees (`faults`), for one
file only, in each place where work is done item by item.
"""

from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import pytest

from audiocnn.config import load_recipe
from audiocnn.datasets.recipe import limited_dataset
from audiocnn.errors import AudiocnnWarning, DatasetError
from conftest import SMOKE, TINY, write_tone
from faults import MARKER, environment, inject

INTERNAL = "internal error (InjectedFault: injected fault in "


def _recordings(folder: Path) -> list[Path]:
    """Three short recordings, the middle one the file the fault hits."""
    folder.mkdir(parents=True, exist_ok=True)
    return [write_tone(folder / f"{name}.wav", freq=freq) for name, freq in
            (("a", 440.0), (f"{MARKER}", 880.0), ("c", 1760.0))]


def _one_internal_error(err: str, logs: Path, where: str) -> None:
    """Exactly one error line, for the marked file, naming the fault and a log that holds its traceback."""
    errors = [line for line in err.splitlines() if line.startswith("audiocnn: error:")]
    assert len(errors) == 1, err
    assert f"{MARKER}.wav: {INTERNAL}{where})" in errors[0] and "Traceback" not in err
    log = Path(errors[0].rsplit("; traceback in ", 1)[1])
    assert log.parent == logs and "Traceback (most recent call last)" in log.read_text()
    assert "InjectedFault" in log.read_text()


@pytest.fixture
def logs(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "logs"
    monkeypatch.setenv("AUDIOCNN_LOG_DIR", str(folder))
    return folder


@pytest.mark.parametrize("target, where, extra", [
    ("audiocnn.inference.predictor:Predictor.predict", "Predictor.predict", []),  # while classifying
    ("audiocnn.inference.files:FolderSink.add", "FolderSink.add", []),  # while writing its result
    # while drawing its timeline, before its result: no result, so the next run tries it again
    ("audiocnn.viz.timeline:save_timeline", "save_timeline", ["--timeline"]),
])
@pytest.mark.slow
def test_predict_reports_an_unexpected_failure_and_classifies_the_rest(cli, tmp_path, logs, monkeypatch, target,
                                                                       where, extra):
    folder = tmp_path / "recordings"
    _recordings(folder)
    inject(monkeypatch, target)
    extra = [*extra, tmp_path / "timelines"] if extra else []
    result = cli("predict", folder, "--format", "csv", "--out-dir", tmp_path / "out", "--no-progress", *extra)
    assert result.code == 1
    _one_internal_error(result.err, logs, where)
    assert "2 file(s) classified, 1 failed" in result.err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a.audiocnn.csv", "c.audiocnn.csv"]


@pytest.mark.slow
def test_predict_with_workers_reports_an_unexpected_failure_in_a_worker_and_classifies_the_rest(cli, tmp_path, logs,
                                                                                               monkeypatch):
    """Worker processes are spawned: the fault is planted in each through sitecustomize. The command
    itself runs in this process (unpatched: only the workers classify), which spares a third start of
    torch."""
    folder = tmp_path / "recordings"
    _recordings(folder)
    env = environment(tmp_path / "faults", "audiocnn.inference.predictor:Predictor.predict")
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])  # the spawned workers' (and AUDIOCNN_LOG_DIR, from `logs`)
    out = tmp_path / "table.csv"
    result = cli("predict", folder, "--workers", "2", "--format", "csv", "--out", out, "--no-progress")
    assert result.code == 1, result.err
    _one_internal_error(result.err, logs, "Predictor.predict")
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {Path(row["path"]).name for row in rows} == {"a.wav", "c.wav"}


@pytest.mark.slow
def test_features_reports_an_unexpected_failure_and_draws_the_rest(cli, tmp_path, logs, monkeypatch):
    folder = tmp_path / "recordings"
    _recordings(folder)
    inject(monkeypatch, "audiocnn.viz.features:feature_figure")
    result = cli("features", folder, "--kind", "mel", "--out", tmp_path / "pictures")
    assert result.code == 1
    _one_internal_error(result.err, logs, "feature_figure")
    assert "2 file(s) drawn, 1 failed" in result.err
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == ["a.mel.png", "c.mel.png"]


def test_a_command_that_fails_unexpectedly_says_so_in_one_line(cli, tmp_path, logs, monkeypatch):
    """Outside any per-item loop (here: loading the model), a bug is one line too, never a traceback."""
    write_tone(tmp_path / "a.wav")
    inject(monkeypatch, "audiocnn.cli.common:load_model", marker="None")
    result = cli("predict", tmp_path / "a.wav")
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err.startswith("audiocnn: error: audiocnn predict: internal error (InjectedFault: ")


def _tones_with_one_unreadable(tones: Path, folder: Path) -> Path:
    """A copy of the tones dataset whose `high/high3.wav` is a file no decoder can open."""
    shutil.copytree(tones, folder)
    (folder / "high" / "high3.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot audio at all")
    return folder


def test_training_refuses_unreadable_files_up_front_and_trains_on_the_rest_when_allowed(tones, tmp_path):
    """Before, a bad file surfaced after every other clip was decoded; now the header check lists it
    before any work, and `--allow-incomplete` trains without it, saying so."""
    root = _tones_with_one_unreadable(tones, tmp_path / "tones")
    recipe = load_recipe(SMOKE, TINY)
    with pytest.raises(DatasetError, match=r"1 problem\(s\) in the folder dataset \(.*high3\.wav: not a readable"):
        limited_dataset(recipe, root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = limited_dataset(recipe, root, allow_incomplete=True)
    assert len(dataset.clips) == 47 and all(clip.path.name != "high3.wav" for clip in dataset.clips)
    assert [w for w in caught if issubclass(w.category, AudiocnnWarning) and "47 usable clips" in str(w.message)]


def test_training_lists_a_file_whose_header_raises_anything(tones, tmp_path, logs, monkeypatch):
    inject(monkeypatch, "audiocnn.audio:info", marker="noise7.wav")
    with pytest.raises(DatasetError, match=r"noise7\.wav: internal error \(InjectedFault: injected fault in info\)"):
        limited_dataset(load_recipe(SMOKE, TINY), tones)


@pytest.mark.slow
def test_explain_dataset_leaves_out_an_unreadable_file_and_explains_the_rest(cli, tone_bundle, tones, tmp_path,
                                                                             logs, monkeypatch):
    """The tone model held out fold 1; one of that fold's files fails in any way, the rest are explained."""
    from audiocnn import bundle
    from audiocnn.datasets.recipe import recipe_dataset

    fold1 = [clip for clip in recipe_dataset(bundle.load(tone_bundle).recipe, tones).clips if clip.fold == 1]
    marker = fold1[0].path.name
    inject(monkeypatch, "audiocnn.audio:info", marker=marker)
    result = cli("explain-dataset", "--model", tone_bundle, "--data-root", tones, "--fold", "1", "--out",
                 tmp_path / "explained", "--steps", "4", "--no-progress")
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if line.startswith("audiocnn: error:")]
    assert len(errors) == 1 and f"{marker}: {INTERNAL}info)" in errors[0]
    assert "1 file(s) could not be read and were left out" in result.err
    assert f"{len(fold1) - 1} clips" in result.out and (tmp_path / "explained" / "classes").is_dir()


def test_data_info_lists_a_file_whose_header_raises_anything_and_checks_the_rest(cli, tones, logs, monkeypatch):
    inject(monkeypatch, "audiocnn.audio:info", marker="noise7.wav")
    result = cli("data", "info", "folder", "--root", tones)
    assert result.code == 1 and "Traceback" not in result.err + result.out
    assert "1 problem(s):" in result.out and "noise7.wav: internal error (InjectedFault: injected fault in info)" in \
        result.out
    assert "48 clips, 3 classes" in result.out
