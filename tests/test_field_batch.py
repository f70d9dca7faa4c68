"""The field workflow of `audiocnn predict`: the formats audio tools read (each parsed back),
merged detections, review snippets, one result per recording that survives a SIGKILL, workers
and shards that give the same results as one run, and the part of a long file that is needed.

A real model (conftest's tone model: noise, a 400 Hz and a 2.5 kHz tone) on real files."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiocnn import bundle
from audiocnn.inference.detections import detections
from audiocnn.inference.formats import KALEIDOSCOPE_COLUMNS, RAVEN_COLUMNS
from audiocnn.inference.inputs import InputFile, collect, shard
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor
from audiocnn.inference.tables import read_audacity, read_csv, read_raven
from conftest import REPO, TONE_HZ, noise_clip, tone_clip, uncalibrated_copy

RATE = 16_000
#: A recording name with everything that can break a table or act on a spreadsheet.
AWKWARD = "=1+2, \"quoted\"\tand 'tabbed' – café"


@pytest.fixture(scope="module")
def tone_model(tone_bundle, tmp_path_factory) -> Path:
    """The shared tone model without calibration (no window turns `unknown`: the tests compare labels)."""
    return uncalibrated_copy(tone_bundle, tmp_path_factory.mktemp("uncalibrated") / "model")


@pytest.fixture(scope="module")
def predictor(tone_model) -> Predictor:
    return Predictor(bundle.load(tone_model), PredictOptions(runtime="torch"))


def _recording(path: Path, parts: list[tuple[str, float]], seed: int) -> Path:
    """Consecutive parts (`low`, `high` tone or `noise`, seconds) as one recording."""
    rng = np.random.default_rng(seed)
    wave = [tone_clip(TONE_HZ[kind], seconds, rng) if kind in TONE_HZ else noise_clip(seconds, rng)
            for kind, seconds in parts]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.concatenate(wave), RATE)
    return path


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    """A field collection: two sites, nested, awkward names, 10 recordings of 3-6 s."""
    root = tmp_path_factory.mktemp("collection")
    plans = [[("low", 3.0), ("high", 3.0)], [("noise", 2.0), ("high", 2.5)], [("high", 3.0)],
             [("low", 2.0), ("noise", 2.0)], [("noise", 3.0)]]
    for i in range(10):
        site = "site-a" if i < 5 else "site-b/deep"
        name = AWKWARD if i == 3 else f"rec{i:02d}"
        _recording(root / site / f"{name}.wav", plans[i % 5], seed=i)
    return root


@pytest.fixture(scope="module")
def low_then_high(tmp_path_factory) -> Path:
    return _recording(tmp_path_factory.mktemp("one") / f"{AWKWARD}.wav", [("low", 3.0), ("high", 3.5)], seed=7)


# ----------------------------------------------------------------------------- formats


@pytest.mark.slow
def test_every_format_reads_back_with_the_names_and_times_it_was_given(cli, tone_model, predictor, low_then_high,
                                                                       tmp_path):
    truth = predictor.predict(low_then_high)
    expected = [(round(d.start, 3), round(d.end, 3), d.label, round(d.confidence, 4))
                for d in detections(truth, 2)]
    assert len(expected) == 2 * len(truth.starts)

    def run(fmt: str) -> Path:
        out = tmp_path / f"out.{fmt}"
        result = cli("predict", low_then_high, "--model", tone_model, "--runtime", "torch", "--top-k", 2,
                     "--format", fmt, "--out", out, "--no-progress")
        assert result.code == 0, result.err
        return out

    raven = read_raven(run("raven"))
    assert [(float(r["Begin Time (s)"]), float(r["End Time (s)"]), r["Label"], float(r["Confidence"]))
            for r in raven] == expected
    assert {r["Begin Path"] for r in raven} == {str(low_then_high)}
    assert [int(r["Selection"]) for r in raven] == list(range(1, len(raven) + 1))
    # Raven reads tab-separated lines without quoting: every line has every column
    lines = run("raven").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == RAVEN_COLUMNS and {len(line.split("\t")) for line in lines} == {len(RAVEN_COLUMNS)}

    audacity = read_audacity(run("audacity"))
    assert [(round(s, 3), round(e, 3), text) for s, e, text in audacity] == [
        (s, e, f"{label} {conf:.4f}") for s, e, label, conf in expected]

    kaleidoscope = read_csv(run("kaleidoscope"))
    assert list(kaleidoscope[0]) == KALEIDOSCOPE_COLUMNS
    assert {(r["INDIR"], r["FOLDER"], r["IN FILE"]) for r in kaleidoscope} == {
        (str(low_then_high.parent), "", low_then_high.name)}
    assert [(float(r["OFFSET"]), round(float(r["OFFSET"]) + float(r["DURATION"]), 3), r["AUTO ID*"],
             float(r["CONFIDENCE"])) for r in kaleidoscope] == expected
    # the leading `=` is kept from a spreadsheet by a `'`, which the csv module shows as written
    raw = list(csv.reader(io.StringIO(run("kaleidoscope").read_text(encoding="utf-8"), newline="")))
    assert raw[1][2].startswith("'=") and raw[1][2][1:] == low_then_high.name

    scores = read_csv(run("scores"))
    assert list(scores[0])[3:] == truth.labels and len(scores) == len(truth.starts)
    np.testing.assert_allclose([[float(r[label]) for label in truth.labels] for r in scores], truth.probabilities,
                               atol=5e-7)
    assert {r["file"] for r in scores} == {str(low_then_high)}


@pytest.mark.slow
def test_merge_consecutive_joins_a_labels_windows_into_one_detection(cli, tone_model, low_then_high, tmp_path):
    out = tmp_path / "merged.txt"
    args = ["predict", low_then_high, "--model", tone_model, "--runtime", "torch", "--top-k", 1, "--format", "raven",
            "--no-progress"]
    assert cli(*args, "--out", tmp_path / "plain.txt").code == 0
    assert cli(*args, "--merge-consecutive", "--out", out).code == 0
    plain, merged = read_raven(tmp_path / "plain.txt"), read_raven(out)
    assert len(plain) == 12  # 6.5 s in 1 s windows every 0.5 s
    assert [r["Label"] for r in merged] == ["low", "high"]
    low, high = merged
    assert float(low["Begin Time (s)"]) == 0.0 and 2.0 <= float(low["End Time (s)"]) <= 3.5
    assert 2.5 <= float(high["Begin Time (s)"]) <= 3.0 and float(high["End Time (s)"]) == 6.5
    # each merged detection keeps the highest probability of its windows
    for row in merged:
        inside = [float(r["Confidence"]) for r in plain if r["Label"] == row["Label"]]
        assert float(row["Confidence"]) == max(inside)
    # the label track of Audacity merges the same way
    assert cli(*args[:-3], "--format", "audacity", "--merge-consecutive", "--out", tmp_path / "a.txt").code == 0
    assert [text.split()[0] for _, _, text in read_audacity(tmp_path / "a.txt")] == ["low", "high"]


@pytest.mark.slow
def test_snippets_are_the_detected_audio_capped_per_label_and_not_written_twice(cli, tone_model, collection,
                                                                               tmp_path):
    out = tmp_path / "snippets"
    args = ["predict", collection, "--model", tone_model, "--runtime", "torch", "--format", "csv", "--out",
            tmp_path / "r.csv", "--snippets", out, "--snippets-per-label", 3, "--min-confidence", 0.6,
            "--no-progress"]
    refused = cli(*args, "--merge-consecutive")
    assert refused.code == 1 and "--merge-consecutive: joins detections" in refused.err  # detections only
    assert "the csv format lists windows" in refused.err
    assert cli(*args).code == 0
    folders = sorted(p.name for p in out.iterdir())
    assert set(folders) <= {"high", "low", "noise"} and "low" in folders and "high" in folders
    written = {p.relative_to(out) for p in out.rglob("*.wav")}
    for label in folders:
        assert 1 <= len(list((out / label).glob("*.wav"))) <= 3
    for snippet in written:
        source, times, confidence = snippet.name.removesuffix(".wav").split("__")[-3:]
        start, end = (float(t) for t in times.removesuffix("s").split("-"))
        assert float(confidence) >= 0.6 and end > start
        # it is the recording's audio at those times
        recording = next(p for p in collection.rglob("*.wav") if p.name == source)
        clip, rate = sf.read(out / snippet, dtype="float32")
        original, _ = sf.read(recording, dtype="float32", start=round(start * rate), stop=round(end * rate))
        np.testing.assert_allclose(clip, original, atol=1 / 32768)
    assert cli(*args).code == 0  # a second run: the cap is already reached, nothing new
    assert {p.relative_to(out) for p in out.rglob("*.wav")} == written


# ----------------------------------------------------------------------------- batch runs


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_out_dir_mirrors_the_tree_and_skips_finished_recordings(cli, tone_model, collection, tmp_path):
    out = tmp_path / "results"
    args = ["predict", collection, "--model", tone_model, "--runtime", "torch", "--format", "raven",
            "--out-dir", out, "--no-progress"]
    first = cli(*args)
    assert first.code == 0 and "10 file(s) classified" in first.err
    results = _tree(out)
    assert sorted(results) == sorted(
        str(p.relative_to(collection).with_name(p.stem + ".audiocnn.selections.txt"))
        for p in collection.rglob("*.wav"))
    again = cli(*args)
    assert again.code == 0 and "0 file(s) classified, 0 failed, 10 done before (skipped)" in again.err
    assert _tree(out) == results
    redo = cli(*args, "--no-skip-existing")
    assert "10 file(s) classified" in redo.err and _tree(out) == results
    # Audacity's label tracks name no recording: one per file, so several need --out-dir
    assert cli("predict", collection, "--model", tone_model, "--format", "audacity").code != 0


@pytest.mark.slow
def test_a_run_killed_mid_batch_resumes_without_losing_or_redoing_a_recording(cli, tone_model, collection, tmp_path):
    out = tmp_path / "results"
    command = ["-m", "audiocnn", "predict", str(collection), "--model", str(tone_model), "--runtime", "torch",
               "--format", "csv", "--out-dir", str(out), "--no-progress"]
    killed = subprocess.run([sys.executable, str(REPO / "tests" / "kill_at.py"), f"before:{out}/*.audiocnn.csv:4",
                             "--", *command[2:]], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    finished = sorted(p.name for p in out.rglob("*.audiocnn.csv"))
    assert len(finished) == 3  # the fourth was written whole under its temporary name, never put in place
    resumed = cli(*command[2:])  # the rerun in this process: only the kill needs a process of its own
    assert resumed.code == 0, resumed.err
    assert "7 file(s) classified, 0 failed, 3 done before (skipped)" in resumed.err
    straight = tmp_path / "straight"
    assert cli(*command[2:-2], str(straight), "--no-progress").code == 0
    assert _tree(out) == _tree(straight)


@pytest.mark.slow
def test_two_workers_and_two_shards_merged_give_what_one_run_gives(cli, tone_model, collection, tmp_path):
    base = ["predict", collection, "--model", tone_model, "--format", "csv", "--no-progress", "--top-k", 2]
    assert cli(*base, "--out", tmp_path / "one.csv").code == 0
    assert cli(*base, "--workers", 2, "--out", tmp_path / "two.csv").code == 0
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()

    for k in (1, 2):
        assert cli(*base, "--shard", f"{k}/2", "--out", tmp_path / f"shard{k}.csv").code == 0
    shards = [read_csv(tmp_path / f"shard{k}.csv") for k in (1, 2)]
    assert all(shards) and not {r["path"] for r in shards[0]} & {r["path"] for r in shards[1]}
    merged = cli("merge", tmp_path / "shard1.csv", tmp_path / "shard2.csv", "--out", tmp_path / "merged.csv")
    assert merged.code == 0, merged.err
    assert (tmp_path / "merged.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()

    # Raven: selections are numbered again; per-recording tables of --out-dir merge the same way
    raven = [*base[:4], "--format", "raven", "--no-progress"]
    assert cli(*raven, "--out", tmp_path / "one.txt").code == 0
    for k in (1, 2):
        assert cli(*raven, "--shard", f"{k}/2", "--out-dir", tmp_path / "dir").code == 0
    assert cli("merge", tmp_path / "dir", "--out", tmp_path / "merged.txt").code == 0
    assert (tmp_path / "merged.txt").read_bytes() == (tmp_path / "one.txt").read_bytes()
    # joined into a table inside the folder, twice: the earlier joined table is not joined again
    inside = tmp_path / "dir" / "all.audiocnn.selections.txt"
    for _ in range(2):
        assert cli("merge", tmp_path / "dir", "--out", inside).code == 0
        assert inside.read_bytes() == (tmp_path / "one.txt").read_bytes()
    # a table given by name is never written over
    refused = cli("merge", tmp_path / "shard1.csv", tmp_path / "shard2.csv", "--out", tmp_path / "shard1.csv")
    assert refused.code == 1 and "shard1.csv" in refused.err


def test_shards_split_a_collection_deterministically_whatever_its_order():
    items = [InputFile(Path(f"/data/site{i % 3}/rec{i}.wav"), Path("/data")) for i in range(200)]
    parts = [shard(items, k, 4) for k in range(1, 5)]
    assert sorted(p.path for part in parts for p in part) == sorted(p.path for p in items)  # each in one shard
    assert all(25 <= len(part) <= 75 for part in parts)
    assert shard(list(reversed(items)), 2, 4) == list(reversed(parts[1]))


@pytest.mark.slow
def test_offset_and_duration_classify_only_that_part_at_its_times(cli, tone_model, predictor, low_then_high,
                                                                  tmp_path):
    part = Predictor(predictor.bundle, PredictOptions(runtime="torch", offset=3.0, duration=2.0)).predict(low_then_high)
    audio, _ = sf.read(low_then_high, dtype="float32")
    cut = tmp_path / "cut.wav"
    sf.write(cut, audio[3 * RATE : 5 * RATE], RATE)
    alone = predictor.predict(cut)
    np.testing.assert_allclose(part.starts, alone.starts + 3.0)
    np.testing.assert_allclose(part.probabilities, alone.probabilities, atol=1e-5)
    assert part.duration == 2.0 and {label for label, _ in part.top(part.summary, 1)} == {"high"}
    result = cli("predict", low_then_high, "--model", tone_model, "--runtime", "torch", "--format", "json",
                 "--offset", 3, "--duration", 2, "--no-progress")
    document = json.loads(result.out)["files"][0]
    assert document["offset_s"] == 3.0 and document["windows"][0]["start_s"] == 3.0
    past = cli("predict", low_then_high, "--model", tone_model, "--offset", 60, "--no-progress")
    assert past.code == 1 and "past the end" in past.err


def test_inputs_keep_the_folder_they_were_found_in(collection):
    found = collect([collection, collection / "site-a" / "rec00.wav"])
    assert found[0].root == collection and found[-1].root == collection / "site-a"
    assert str(found[0].relative).startswith("site-a/")
    assert len(found) == 11


@pytest.mark.slow
def test_a_reviewed_audacity_track_of_ours_trains_as_the_labels_it_shows(cli, tone_model, low_then_high, tmp_path):
    from audiocnn.datasets import load_dataset

    field = tmp_path / "field"
    field.mkdir()
    recording = field / "dawn.wav"
    recording.write_bytes(low_then_high.read_bytes())
    result = cli("predict", recording, "--model", tone_model, "--runtime", "torch", "--format", "audacity",
                 "--top-k", 1, "--merge-consecutive", "--out", field / "dawn.txt", "--no-progress")
    assert result.code == 0, result.err
    assert [text.split()[0] for _, _, text in read_audacity(field / "dawn.txt")] == ["low", "high"]
    (field / "dusk.wav").write_bytes(recording.read_bytes())  # a second recording: two folds need two
    (field / "dusk.txt").write_bytes((field / "dawn.txt").read_bytes())
    dataset = load_dataset("annotations", field, clip_seconds=1.0, n_folds=2)
    assert sorted({clip.label for clip in dataset.clips}) == ["high", "low"]  # not "low 0.9731"
    assert not dataset.problems
    # unreviewed results (predict --out-dir into the recordings' own folder) are not annotations
    assert cli("predict", field, "--model", tone_model, "--runtime", "torch", "--format", "raven", "--top-k", 3,
               "--out-dir", field, "--no-progress").code == 0
    assert (field / "dawn.audiocnn.selections.txt").is_file()
    assert len(load_dataset("annotations", field, clip_seconds=1.0, n_folds=2).clips) == len(dataset.clips)


@pytest.mark.slow
def test_a_model_the_workers_cannot_run_is_one_clear_error(cli, tone_model, collection):
    result = cli("predict", collection, "--model", tone_model, "--runtime", "int8", "--workers", 2, "--format", "csv",
                 "--no-progress")
    assert result.code == 1 and result.err.count("audiocnn: error:") == 1, result.err
    assert "quantize" in result.err and "Traceback" not in result.err


def test_a_label_cannot_lead_a_snippet_out_of_its_folder():
    from audiocnn.inference.snippets import label_folder

    assert [label_folder(label) for label in ("..", ".", "a/../../b", "c:\\x", "", "dog")] == [
        "_..", "_.", "a_.._.._b", "c:_x", "_", "dog"]
