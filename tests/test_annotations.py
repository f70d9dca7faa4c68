"""Training from annotations: long recordings made here from real ESC-50 clips with noise between
them, annotated with Raven selection tables and Audacity label files, read into clips of the
recipe's length whose audio is the annotated sound; negatives, folds by recording, problems by
file:line, `audiocnn data info annotations`, and a short training run."""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiocnn.config import load_recipe
from audiocnn.datasets import load_dataset, make_splits
from audiocnn.datasets.annotated import clip_starts, find_selections
from audiocnn.datasets.base import Clip, group_of
from audiocnn.datasets.images import cache_key, clip_waves
from audiocnn.datasets.recipe import recipe_dataset
from audiocnn.datasets.report import check
from audiocnn.errors import DatasetError
from conftest import SMOKE, TEST_BACKBONE

RATE = 16_000
SECONDS = 60.0
#: Where each recording holds its four 5 s ESC-50 clips (s): free time in between for negatives.
EVENT_TIMES = (5.0, 20.0, 35.0, 50.0)
DOGS = ["1-100032-A-0", "1-110389-A-0", "1-30226-A-0", "1-30344-A-0", "1-32318-A-0", "1-59513-A-0",
        "1-85362-A-0", "1-97392-A-0"]
ROOSTERS = ["1-26806-A-1", "1-27724-A-1", "1-34119-A-1", "1-34119-B-1", "1-39923-A-1", "1-40730-A-1",
            "1-43382-A-1", "1-44831-A-1"]
NOISE_RMS = 0.002
#: Where the four recordings lie under the root, as the groups of their clips.
RECORDINGS = ("site1/rec0.wav", "site1/rec1.wav", "site1/rec2.wav", "site2/rec3.wav")
RAVEN_HEADER = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)"


def source(name: str, esc50_root: Path) -> np.ndarray:
    return sf.read(esc50_root / "audio" / f"{name}.flac", dtype="float32")[0]


def events(k: int) -> list[tuple[float, str, str]]:
    """(time, label, ESC-50 clip) of recording k's four events: dog, rooster, dog, rooster."""
    return [(t, "dog" if i % 2 == 0 else "rooster", (DOGS if i % 2 == 0 else ROOSTERS)[2 * k + i // 2])
            for i, t in enumerate(EVENT_TIMES)]


def write_recording(path: Path, k: int, esc50_root: Path) -> Path:
    """60 s of quiet noise with recording k's four clips pasted in at EVENT_TIMES (float WAV: exact)."""
    wave = NOISE_RMS * np.random.default_rng(k).standard_normal(int(SECONDS * RATE)).astype(np.float32)
    for t, _, name in events(k):
        clip = source(name, esc50_root)
        start = int(t * RATE)
        wave[start : start + len(clip)] = clip
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, RATE, subtype="FLOAT")
    return path


def raven_rows(rows: list[tuple[float, float, str]], label_column: str = "Annotation") -> str:
    """A Raven table as Raven writes it: every selection in its Waveform and its Spectrogram view."""
    lines = [f"{RAVEN_HEADER}\t{label_column}"]
    for n, (begin, end, label) in enumerate(rows, start=1):
        for view in ("Waveform 1", "Spectrogram 1"):
            lines.append(f"{n}\t{view}\t1\t{begin:.6f}\t{end:.6f}\t0.0\t8000.0\t{label}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def annotated(esc50_root, tmp_path_factory) -> Path:
    """Four annotated 60 s recordings, one per way of writing the table:

    - rec0: Raven table beside it (`rec0.Table.1.selections.txt`, label column `Annotation`);
    - rec1: Raven table `rec1.txt` with the labels in `Species`;
    - rec2: Audacity labels `rec2.txt`, with the frequency lines Audacity writes;
    - rec3 (another folder): a Raven table elsewhere naming it by a Windows `Begin Path`, with
      times of a file sequence that started 1000 s earlier (`File Offset (s)` within the file).
    """
    root = tmp_path_factory.mktemp("annotated")
    for k, name in enumerate(RECORDINGS):
        write_recording(root / name, k, esc50_root)
    rows = {k: [(t, t + 5.0, label) for t, label, _ in events(k)] for k in range(4)}
    (root / "site1" / "rec0.Table.1.selections.txt").write_text(raven_rows(rows[0]))
    (root / "site1" / "rec1.txt").write_text(raven_rows(rows[1], "Species"))
    audacity = "".join(f"{b:.6f}\t{e:.6f}\t{label}\n\\\t150.000000\t7000.000000\n" for b, e, label in rows[2])
    (root / "site1" / "rec2.txt").write_text(audacity)
    sequence = ["Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tBegin Path\tFile Offset (s)\tSpecies"]
    sequence += [f"{n}\tSpectrogram 1\t1\t{1000 + b:.3f}\t{1000 + e:.3f}\tC:\\Users\\ann\\field\\rec3.wav\t{b:.3f}\t{label}"
                 for n, (b, e, label) in enumerate(rows[3], start=1)]
    (root / "tables").mkdir()
    (root / "tables" / "field season.selections.txt").write_text("\n".join(sequence) + "\n")
    (root / "README.txt").write_text("Recordings of the 2024 season.\nAnnotated by Ann.\n")  # not a table
    return root


# ----------------------------------------------------------------------------- clips from selections


def test_selections_become_clips_whose_audio_is_the_annotated_sound(annotated, esc50_root):
    dataset = load_dataset("annotations", annotated, clip_seconds=5.0, n_folds=2)
    assert dataset.name == "annotations" and dataset.classes == ["dog", "rooster"]
    assert not dataset.problems  # the README is not a table, the second view of each selection is no copy
    assert len(dataset.clips) == 16
    for k, name in enumerate(RECORDINGS):
        clips = sorted((c for c in dataset.clips if c.group == name), key=lambda c: c.start_s)
        assert [(c.start_s, c.label) for c in clips] == [(t, label) for t, label, _ in events(k)], name
        assert all(c.path == annotated / name and c.duration_s == 5.0 for c in clips)
        waves = clip_waves(clips, RATE, 5.0, progress=False)
        assert waves.shape == (4, 5 * RATE)
        for wave, (_, _, clip_name) in zip(waves, events(k)):  # the recording's audio there is the pasted clip
            np.testing.assert_array_equal(wave, source(clip_name, esc50_root))


def test_short_clips_cover_a_long_selection_and_long_ones_are_centred(annotated, esc50_root):
    two = load_dataset("annotations", annotated, clip_seconds=2.0, n_folds=2)
    rec0 = sorted((c for c in two.clips if c.group == RECORDINGS[0]), key=lambda c: c.start_s)
    # each 5 s selection: ceil(5 / 2) = 3 clips of 2 s, from its begin to its end
    assert [c.start_s for c in rec0] == [s for t in EVENT_TIMES for s in (t, t + 1.5, t + 3.0)]
    waves = clip_waves(rec0[:3], RATE, 2.0, progress=False)
    assert waves.shape == (3, 2 * RATE)
    dog = source(events(0)[0][2], esc50_root)
    for wave, offset in zip(waves, (0.0, 1.5, 3.0)):
        np.testing.assert_array_equal(wave, dog[int(offset * RATE) : int((offset + 2) * RATE)])
    eight = load_dataset("annotations", annotated, clip_seconds=8.0, n_folds=2)
    assert sorted(c.start_s for c in eight.clips if c.group == RECORDINGS[0]) == [t - 1.5 for t in EVENT_TIMES]
    (wave,) = clip_waves([c for c in eight.clips if c.group == RECORDINGS[0] and c.start_s == 3.5], RATE, 8.0,
                         progress=False)
    assert len(wave) == 8 * RATE
    np.testing.assert_array_equal(wave[int(1.5 * RATE) : int(6.5 * RATE)], dog)  # the dog in the middle


def test_clips_stay_inside_the_recording():
    assert clip_starts(0.5, 2.0, 60.0, 5.0) == [0.0]  # centred would start at -1.25 s
    assert clip_starts(58.0, 59.5, 60.0, 5.0) == [55.0]  # ... or end past 60 s
    assert clip_starts(1.0, 2.0, 3.0, 5.0) == [0.0]  # a recording shorter than a clip: all of it
    assert clip_starts(10.0, 20.0, 60.0, 5.0) == [10.0, 15.0]  # exactly two clips long
    assert clip_starts(10.0, 21.0, 60.0, 5.0) == [10.0, 13.0, 16.0]  # a bit longer: three, overlapping


# ----------------------------------------------------------------------------- negatives


def test_negatives_come_from_unannotated_time_repeatably(annotated):
    dataset = load_dataset("annotations", annotated, clip_seconds=2.0, n_folds=2, negatives=5, seed=3)
    assert dataset.classes == ["background", "dog", "rooster"]
    negatives = [c for c in dataset.clips if c.label == "background"]
    assert len(negatives) == 5 * 4
    for name in RECORDINGS:
        spans = sorted((c.start_s, c.start_s + c.duration_s) for c in negatives if c.group == name)
        assert len(spans) == 5
        assert all(begin >= 0 and end <= SECONDS for begin, end in spans)
        assert all(a_end <= b_begin for (_, a_end), (b_begin, _) in zip(spans, spans[1:]))  # nor each other
        for begin, end in spans:
            assert all(end <= t or begin >= t + 5.0 for t in EVENT_TIMES), (name, begin, end)
    waves = clip_waves(negatives, RATE, 2.0, progress=False)
    assert np.sqrt((waves**2).mean(axis=1)).max() < 2 * NOISE_RMS  # only the noise between the events

    def starts(**options) -> list[tuple[str, float]]:
        d = load_dataset("annotations", annotated, clip_seconds=2.0, n_folds=2, negatives=5, **options)
        return [(c.group, c.start_s) for c in d.clips if c.label == "background"]

    assert starts(seed=3) == [(c.group, c.start_s) for c in negatives]
    assert starts(seed=4) != starts(seed=3)
    named = load_dataset("annotations", annotated, clip_seconds=2.0, n_folds=2, negatives=2, negative_label="quiet")
    assert named.classes == ["dog", "quiet", "rooster"]


def test_a_recordings_negatives_do_not_change_when_another_recording_is_added(annotated, tmp_path, esc50_root):
    root = Path(shutil.copytree(annotated, tmp_path / "more"))
    write_recording(root / "site3" / "rec4.wav", 0, esc50_root)
    (root / "site3" / "rec4.txt").write_text("5\t10\tdog\n")

    def negatives(at: Path) -> list[tuple[str, float]]:
        d = load_dataset("annotations", at, clip_seconds=2.0, n_folds=2, negatives=5)
        return [(c.group, c.start_s) for c in d.clips if c.label == "background" and c.group in RECORDINGS]

    assert negatives(root) == negatives(annotated)


def test_negatives_are_fewer_when_fewer_fit(tmp_path, esc50_root):
    root = tmp_path / "short"
    recording = write_recording(root / "a.wav", 0, esc50_root)
    # selections leave 5 s free at 0-5 s and 55-60 s only: two 5 s clips at most
    (root / "a.txt").write_text("".join(f"{t}\t{t + 5}\tdog\n" for t in (5, 15, 25, 35, 45)) + "10\t15\tcat\n"
                                "20\t25\tcat\n30\t35\tcat\n40\t45\tcat\n50\t55\tcat\n")
    (root / "b.txt").write_text("1\t2\tdog\n")
    sf.write(root / "b.wav", sf.read(recording, frames=10 * RATE)[0], RATE)
    dataset = load_dataset("annotations", root, clip_seconds=5.0, n_folds=2, negatives=10)
    assert sorted(c.start_s for c in dataset.clips if c.group == "a.wav" and c.label == "background") == [0.0, 55.0]


# ----------------------------------------------------------------------------- folds by recording


def test_a_recording_never_spans_folds_or_sides_of_a_split(annotated):
    dataset = load_dataset("annotations", annotated, clip_seconds=2.0, n_folds=4, negatives=3)
    assert dataset.folds == [1, 2, 3, 4]
    assert {c.group for c in dataset.clips} == set(RECORDINGS)
    for name in RECORDINGS:
        assert len({c.fold for c in dataset.clips if c.group == name}) == 1
    for split in make_splits(dataset, val_fraction=0.3):
        train, val, test = ({group_of(c) for c in part} for part in (split.train, split.val, split.test))
        assert not train & val and not (train | val) & test and val
    report = check(dataset)
    assert report.ok and not report.warnings, (report.problems, report.warnings)  # no duplicates among parts


def test_more_folds_than_recordings_is_a_clear_error(annotated):
    with pytest.raises(DatasetError, match="5 folds need at least 5 annotated recordings .* found 4"):
        load_dataset("annotations", annotated, n_folds=5)


# ----------------------------------------------------------------------------- bad tables


@pytest.fixture
def faulty(tmp_path, esc50_root) -> Path:
    """Two good recordings, one with a Raven table full of mistakes, and tables that cannot be used."""
    root = tmp_path / "faulty"
    for k in range(2):
        write_recording(root / f"rec{k}.wav", k, esc50_root)
    good = [f"{n}\tSpectrogram 1\t1\t{t:.3f}\t{t + 5:.3f}\t0\t8000\t{label}"
            for n, (t, label, _) in enumerate(events(0), start=1)]
    bad = ["5\tSpectrogram 1\t1\t12.0\t11.0\t0\t8000\tdog",  # line 6: end before begin
           "6\tSpectrogram 1\t1\t12.0\t12.0\t0\t8000\tdog",  # 7: empty selection
           "7\tSpectrogram 1\t1\tabc\t13.0\t0\t8000\tdog",  # 8: not a time
           "8\tSpectrogram 1\t1\t13.0\tnan\t0\t8000\tdog",  # 9: not a number
           "9\tSpectrogram 1\t1\t14.0\t15.0\t0\t8000\t ",  # 10: empty label
           "10\tSpectrogram 1\t1\t57.0\t63.0\t0\t8000\trooster",  # 11: past the end: clamped
           "11\tSpectrogram 1\t1\t70.0\t72.0\t0\t8000\trooster"]  # 12: after the end: left out
    (root / "rec0.Table.1.selections.txt").write_text(
        "\n".join([f"{RAVEN_HEADER}\tAnnotation", *good, *bad]) + "\n")
    (root / "rec1.txt").write_text("5\t10\tdog\n20\t25\trooster\nlate\t40\tdog\n50\t55\n")
    (root / "named.selections.txt").write_text(f"{RAVEN_HEADER}\tBegin File\tLabel\n"
                                               "1\tSpectrogram 1\t1\t1.0\t2.0\t0\t8000\tgone.wav\tdog\n")
    (root / "nolabel.selections.txt").write_text(f"{RAVEN_HEADER}\tBegin File\tNotes\n"
                                                 "1\tSpectrogram 1\t1\t1.0\t2.0\t0\t8000\trec1.wav\tloud\n")
    (root / "orphan.txt").write_text("1.0\t2.0\tdog\n")  # Audacity labels, but for which recording?
    return root


def test_bad_rows_are_problems_naming_file_and_line_not_crashes(faulty):
    dataset = load_dataset("annotations", faulty, n_folds=2)
    table, labels = faulty / "rec0.Table.1.selections.txt", faulty / "rec1.txt"
    expected = [
        f"{table}:6: end 11 s is not after begin 12 s",
        f"{table}:7: end 12 s is not after begin 12 s",
        f"{table}:8: begin time 'abc' is not a number of seconds",
        f"{table}:9: end time 'nan' is not a number of seconds",
        f"{table}:10: empty label (Annotation)",
        f"{table}:11: selection ends at 63 s, past the end of rec0.wav (60.000 s); clamped to it",
        f"{table}:12: selection 70-72 s starts after the end of rec0.wav (60.000 s); left out",
        f"{labels}:3: begin time 'late' is not a number of seconds",
        f"{labels}:4: empty label",
        f"{faulty / 'named.selections.txt'}:2: recording gone.wav not found",
        f"{faulty / 'named.selections.txt'}: no usable selections in this table",
        f"{faulty / 'nolabel.selections.txt'}: no label column (looked for Annotation, Label, Species, Class, "
        "Sound Type; found: Selection, View, Channel, Begin Time (s), End Time (s), Low Freq (Hz), High Freq (Hz), "
        "Begin File, Notes); name it with data.label_column (--label-column)",
        f"{faulty / 'orphan.txt'}: an Audacity label file, but no recording beside it with its name "
        "(orphan.wav or another audio format)",
    ]
    assert sorted(dataset.problems) == sorted(expected)
    # the good rows are still clips: rec0's four, the clamped one (57-60 s: one clip, inside the file), rec1's two
    rec0 = sorted((c.start_s, c.label) for c in dataset.clips if c.group == "rec0.wav")
    assert rec0 == [(5.0, "dog"), (20.0, "rooster"), (35.0, "dog"), (50.0, "rooster"), (55.0, "rooster")]
    assert sorted((c.start_s, c.label) for c in dataset.clips if c.group == "rec1.wav") == [(5.0, "dog"),
                                                                                           (20.0, "rooster")]
    # a label column named in the recipe: that table's rows count, tables without the column are problems
    selections, problems = find_selections(faulty, label_column="Notes")
    assert [(s.recording.name, s.label) for s in selections if s.where.startswith(str(faulty / "nolabel"))] == \
        [("rec1.wav", "loud")]
    assert f"{table}: no label column 'Notes' (found: Selection, View, Channel, Begin Time (s), End Time (s), " \
        "Low Freq (Hz), High Freq (Hz), Annotation)" in problems


def test_a_folder_without_usable_tables_is_one_clear_error(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    result = cli("data", "info", "annotations", "--root", tmp_path / "empty")
    assert result.code == 1 and "no selection tables found" in result.err and "Traceback" not in result.err
    (tmp_path / "one").mkdir()
    sf.write(tmp_path / "one" / "a.wav", np.zeros(RATE), RATE)
    (tmp_path / "one" / "a.txt").write_text("3\t2\tdog\n")
    with pytest.raises(DatasetError, match=r"none of the selections could be used \(.*a.txt:1: end 2 s is not after"):
        load_dataset("annotations", tmp_path / "one")


def test_the_same_part_listed_twice_is_a_duplicate_but_parts_of_one_file_are_not(annotated, tmp_path):
    dataset = load_dataset("annotations", annotated, clip_seconds=5.0, n_folds=2)
    twice = replace(dataset, clips=[*dataset.clips, dataset.clips[0]])
    (problem,) = check(twice, check_audio=False).problems
    clip = dataset.clips[0]
    assert problem == f"{clip.path.resolve()}@{clip.start_s!r}s+5.0s: listed 2 times"


# ----------------------------------------------------------------------------- CLI and recipes


def test_data_info_annotations_reports_folds_classes_and_problems(cli, annotated, faulty):
    result = cli("data", "info", "annotations", "--root", annotated, "--folds", "2", "--clip-seconds", "2",
                 "--negatives", "3")
    assert result.code == 0, result.err
    assert f"annotations at {annotated}: 60 clips, 3 classes" in result.out  # 16 x 3 + 4 x 3
    assert re.search(r"^background +12$", result.out, re.M) and re.search(r"^dog +24$", result.out, re.M)
    assert re.search(r"^ +1 +\d+$", result.out, re.M) and re.search(r"^ +2 +\d+$", result.out, re.M)
    assert "no problems found" in result.out
    bad = cli("data", "info", "annotations", "--root", faulty, "--folds", "2")
    assert bad.code == 1 and "13 problem(s):" in bad.out and "rec0.Table.1.selections.txt:6: end 11 s" in bad.out
    refused = cli("data", "info", "esc50", "--root", annotated, "--negatives", "2")
    assert refused.code == 1 and "esc50: does not take negatives" in refused.err


def test_recipe_options_reach_the_annotations_loader(annotated):
    recipe = load_recipe(SMOKE, ["data.dataset=annotations", "data.clip_seconds=2.5", "data.folds=2",
                                 "data.negatives=1", "data.negative_label=quiet"])
    dataset = recipe_dataset(recipe, annotated)
    assert dataset.classes == ["dog", "quiet", "rooster"] and dataset.folds == [1, 2]
    assert {c.duration_s for c in dataset.clips} == {2.5}
    with pytest.raises(DatasetError, match="esc50: does not take negatives"):
        recipe_dataset(load_recipe(SMOKE, ["data.negatives=2"]), annotated)


def test_whole_file_cache_keys_are_unchanged_and_parts_have_their_own(esc50_clip):
    """Users' feature caches of whole-file datasets must stay valid: the key is computed as it always was."""
    frontend = {"kind": "mel"}
    stat = esc50_clip.stat()
    old = hashlib.sha256(b'{"frontend": {"kind": "mel"}, "seconds": 5.0}')
    old.update(f"{esc50_clip.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    assert cache_key([Clip(esc50_clip, "dog")], frontend, 5.0) == old.hexdigest()[:24]
    parts = [Clip(esc50_clip, "dog", start_s=s, duration_s=1.0) for s in (0.0, 1.0)]
    keys = {cache_key([c], frontend, 5.0) for c in [Clip(esc50_clip, "dog"), *parts]}
    assert len(keys) == 3


# ----------------------------------------------------------------------------- training


@pytest.mark.slow
def test_a_model_trains_on_annotated_recordings(cli, annotated, tmp_path):
    """A short real run: `train --test-fold 1` on the clips and negatives of the annotated recordings."""
    overrides = ["data.dataset=annotations", "data.clip_seconds=1.0", "data.folds=2", "data.negatives=4",
                 "data.val_fraction=0.3", "data.limit_per_class=null", f"model.backbone={TEST_BACKBONE}", "train.epochs=1",
                 "train.batch_size=8", "train.mixup=0", "train.select=last", "train.precision=32-true"]
    result = cli("train", SMOKE, "--data-root", annotated, "--out", tmp_path / "model", "--test-fold", "1",
                 "--cache-dir", tmp_path / "cache", "--no-progress", *[a for o in overrides for a in ("--set", o)])
    assert result.code == 0, result.err
    with (tmp_path / "model" / "training" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    dataset = load_dataset("annotations", annotated, clip_seconds=1.0, n_folds=2, negatives=4)
    test = [c for c in dataset.clips if c.fold == 1]
    assert len(rows) == len(test) > 0
    assert {(row["path"], float(row["start_s"]), row["label"]) for row in rows} == \
        {(str(c.path), c.start_s, c.label) for c in test}
    assert {row["duration_s"] for row in rows} == {"1.0"}
    # int8 calibration reads clips of the model's own dataset, never from the fold it was tested on
    from audiocnn import bundle
    from audiocnn.inference.quantize import calibration_clips

    picked = calibration_clips(bundle.load(tmp_path / "model"), annotated, 24)
    assert len(picked) == 24 and all(c.fold != 1 and c.duration_s == 1.0 for c in picked)
    assert len({c.key for c in picked}) == 24
