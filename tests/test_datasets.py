"""Datasets: the real ESC-50 with its official folds, tiny synthetic datasets in the official
UrbanSound8K / GTZAN / folder / CSV layouts, leakage-free splits, and `audiocnn data info`."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiocnn.datasets import load_dataset, make_splits
from audiocnn.datasets.base import group_of
from audiocnn.errors import DatasetError
from conftest import tiny_wav

TINY = np.full(160, 0.1, dtype=np.float32)  # 10 ms at 16 kHz: real files, instant to write


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def assert_leak_free(splits, allowed_test_overlap: frozenset[str] = frozenset()) -> None:
    """No source group on two sides of a split (but for overlaps the official folds contain)."""
    for split in splits:
        train, val, test = ({group_of(c) for c in part} for part in (split.train, split.val, split.test))
        assert not train & val, split.name
        assert (train | val) & test <= allowed_test_overlap, split.name
        paths = [c.path for c in (*split.train, *split.val, *split.test)]
        assert len(paths) == len(set(paths))


# ----------------------------------------------------------------------------- ESC-50 (real)


def test_esc50_has_five_folds_of_400_and_fifty_classes_of_40(esc50_root):
    dataset = load_dataset("esc50", esc50_root)
    assert len(dataset.clips) == 2000 and dataset.folds == [1, 2, 3, 4, 5]
    assert len(dataset.classes) == 50 and dataset.classes[0] == "dog" and dataset.classes[49] == "hand_saw"
    for fold in dataset.folds:
        assert sum(c.fold == fold for c in dataset.clips) == 400
    for label in dataset.classes:
        assert sum(c.label == label for c in dataset.clips) == 40
    assert not dataset.problems


@pytest.mark.slow
def test_esc50_splits_take_val_from_training_folds_only(esc50_root):
    splits = make_splits(load_dataset("esc50", esc50_root), val_fraction=0.1, seed=0)
    assert [s.name for s in splits] == [f"fold{k}" for k in range(1, 6)]
    for k, split in enumerate(splits, start=1):
        assert {c.fold for c in split.test} == {k}
        assert k not in {c.fold for c in (*split.train, *split.val)}
        assert len(split.test) == 400 and len(split.train) + len(split.val) == 1600
        assert 120 <= len(split.val) <= 200
        assert len({c.label for c in split.val}) == 50  # stratified
    # Official ESC-50 folds put four freesound sources in two folds each (under two labels).
    assert_leak_free(splits, frozenset({"esc50:131943", "esc50:134049", "esc50:209698", "esc50:234879"}))
    # The same seed, the same validation clips (one fold's holdout: each fold's costs sklearn 0.6 s).
    from audiocnn.datasets.base import holdout

    again = holdout([c for c in load_dataset("esc50", esc50_root).clips if c.fold != 1], 0.1, seed=0)[1]
    assert [c.path for c in again] == [c.path for c in splits[0].val]


@pytest.mark.slow
def test_data_info_esc50_prints_folds_and_classes(cli, esc50_root):
    result = cli("data", "info", "esc50", "--root", esc50_root)
    assert result.code == 0, result.err
    assert "2000 clips, 50 classes" in result.out
    for fold in range(1, 6):
        assert f"   {fold}    400" in result.out
    assert re.search(r"^dog +40$", result.out, re.M) and re.search(r"^hand_saw +40$", result.out, re.M)
    # The official metadata reuses four freesound recordings for two classes each, in two folds.
    assert "4 warning(s)" in result.out and "(clock_alarm, clock_tick) is in folds [2, 3]" in result.out
    assert "no problems found" in result.out


# ----------------------------------------------------------------------------- synthetic layouts


def make_esc50(root: Path, rows: list[list[object]]) -> Path:
    for i, row in enumerate(rows):
        tiny_wav(root / "audio" / str(row[0]), value=(i + 1) / (len(rows) + 1))
    return write_csv(root / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows)


def test_data_info_reports_missing_unknown_and_duplicate_files(cli, tmp_path):
    root = tmp_path / "esc"
    make_esc50(root, [
        ["1-1-A-0.wav", 1, 0, "dog", True, 1, "A"],
        ["2-2-A-0.wav", 2, 0, "dog", True, 2, "A"],
        ["2-3-A-1.wav", 2, 1, "rooster", True, 3, "A"],
    ])
    (root / "audio" / "2-3-A-1.wav").write_bytes((root / "audio" / "1-1-A-0.wav").read_bytes())
    with (root / "meta" / "esc50.csv").open("a") as handle:
        handle.write("1-9-A-0.wav,1,0,dog,True,9,A\n1-8-A-3.wav,1,3,unicorn,False,8,A\n")
    result = cli("data", "info", "esc50", "--root", root)
    assert result.code == 1
    assert "missing audio file audio/1-9-A-0.wav" in result.out
    assert "unknown label 'unicorn'" in result.out
    assert "identical audio in 2 files" in result.out and "1-1-A-0.wav" in result.out


def test_data_info_reports_unreadable_audio(cli, tmp_path):
    root = tmp_path / "esc"
    make_esc50(root, [["1-1-A-0.wav", 1, 0, "dog", True, 1, "A"], ["2-2-A-0.wav", 2, 0, "dog", True, 2, "A"]])
    (root / "audio" / "2-2-A-0.wav").write_bytes(b"")
    result = cli("data", "info", "esc50", "--root", root)
    assert result.code == 1 and "2-2-A-0.wav: file is empty" in result.out


def test_urbansound8k_layout(tmp_path):
    root = tmp_path / "UrbanSound8K"
    rows = []
    for fold in range(1, 11):
        for class_id, label in [(3, "dog_bark"), (8, "siren")]:
            name = f"{100 + fold}-{class_id}-0-0.wav"
            tiny_wav(root / "audio" / f"fold{fold}" / name)
            rows.append([name, 100 + fold, 0.0, 1.0, 1, fold, class_id, label])
    write_csv(root / "metadata" / "UrbanSound8K.csv",
              ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"], rows)
    dataset = load_dataset("urbansound8k", root)
    assert dataset.folds == list(range(1, 11)) and len(dataset.clips) == 20 and not dataset.problems
    assert len(dataset.classes) == 10
    splits = make_splits(dataset, val_fraction=0.2)
    assert len(splits) == 10 and all(len(s.test) == 2 for s in splits)
    assert_leak_free(splits)


@pytest.mark.slow
def test_gtzan_kfold_is_stratified_and_repeatable(gtzan_root):
    dataset = load_dataset("gtzan", gtzan_root, n_folds=10, seed=3)
    assert len(dataset.clips) == 1000 and dataset.folds == list(range(1, 11))
    for fold in dataset.folds:
        in_fold = [c for c in dataset.clips if c.fold == fold]
        assert len(in_fold) == 100 and {c.label for c in in_fold} == set(dataset.classes)
    again = load_dataset("gtzan", gtzan_root, n_folds=10, seed=3)
    assert [c.fold for c in again.clips] == [c.fold for c in dataset.clips]
    other = load_dataset("gtzan", gtzan_root, n_folds=10, seed=4)
    assert [c.fold for c in other.clips] != [c.fold for c in dataset.clips]


def test_gtzan_artist_filtered_split_from_the_shared_lists(gtzan_root, gtzan_splits_dir, cli):
    dataset = load_dataset("gtzan", gtzan_root, split="filtered", splits_dir=gtzan_splits_dir)
    (split,) = make_splits(dataset)
    assert (len(split.train), len(split.val), len(split.test)) == (443, 197, 290)
    assert not {c.path for c in split.train} & {c.path for c in split.test}
    result = cli("data", "info", "gtzan", "--root", gtzan_root, "--split", "filtered", "--splits-dir", gtzan_splits_dir, "--quick")
    assert result.code == 0 and "split 'filtered': train 443, val 197, test 290" in result.out


def test_gtzan_official_au_files_match_wav_names_in_split_lists(tmp_path):
    """The official genres.tar.gz holds .au files; the published lists name .wav files."""
    root = tmp_path / "gtzan"
    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    for g in genres:
        for i in range(3):
            path = root / "genres" / g / f"{g}.{i:05d}.au"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, TINY * (i + 1) / 4, 22_050, format="AU", subtype="PCM_16")
    splits = root / "splits"
    splits.mkdir()
    for part, index in (("train", 0), ("valid", 1), ("test", 2)):
        (splits / f"{part}_filtered.txt").write_text("".join(f"{g}/{g}.{index:05d}.wav\n" for g in genres))
    (split,) = make_splits(load_dataset("gtzan", root, split="filtered"))
    assert len(split.train) == len(split.val) == len(split.test) == 10
    assert all(c.path.suffix == ".au" and c.path.is_file() for c in split.test)
    assert load_dataset("gtzan", root, n_folds=3).folds == [1, 2, 3]


def test_gtzan_filtered_without_lists_says_how_to_get_them(gtzan_root, tmp_path):
    with pytest.raises(DatasetError, match="audiocnn data download gtzan-splits --root ROOT"):
        load_dataset("gtzan", gtzan_root, split="filtered", splits_dir=tmp_path)


def test_folder_dataset_one_subfolder_per_class(tmp_path):
    for label in ("frog", "owl", "wind"):
        for i in range(6):
            tiny_wav(tmp_path / "mydata" / label / "sub" / f"{label}{i}.flac", value=(i + 1) / 7)
    (tmp_path / "mydata" / "notes.txt").write_text("not a class")
    dataset = load_dataset("folder", tmp_path / "mydata", n_folds=3)
    assert dataset.classes == ["frog", "owl", "wind"] and len(dataset.clips) == 18
    assert dataset.folds == [1, 2, 3]
    assert any("outside class folders" in p for p in dataset.problems)
    splits = make_splits(dataset, val_fraction=0.2)
    assert all({c.label for c in s.test} == set(dataset.classes) for s in splits)
    assert_leak_free(splits)


def test_csv_dataset_with_folds_and_groups(tmp_path):
    rows = []
    for i in range(12):
        label = ["bat", "bird"][i % 2]
        tiny_wav(tmp_path / "clips" / f"{i}.wav", value=(i + 1) / 13)
        rows.append([f"clips/{i}.wav", label, 1 + i % 3, f"site{i // 4}"])
    listing = write_csv(tmp_path / "list.csv", ["path", "label", "fold", "group"], rows)
    dataset = load_dataset("csv", listing)
    assert dataset.classes == ["bat", "bird"] and dataset.folds == [1, 2, 3]
    assert {c.group for c in dataset.clips} == {"site0", "site1", "site2"}


def test_csv_dataset_without_folds_gets_group_aware_folds(tmp_path):
    rows = []
    for i in range(20):
        tiny_wav(tmp_path / f"{i}.wav", value=(i + 1) / 21)
        rows.append([f"{i}.wav", ["a", "b"][i % 2], f"g{i // 2}"])
    dataset = load_dataset("csv", write_csv(tmp_path / "list.csv", ["path", "label", "group"], rows), n_folds=5)
    assert dataset.folds == [1, 2, 3, 4, 5]
    for group in {c.group for c in dataset.clips}:
        assert len({c.fold for c in dataset.clips if c.group == group}) == 1
    assert_leak_free(make_splits(dataset, val_fraction=0.25))


@pytest.mark.parametrize(
    "name, make_root, message",
    [
        ("esc50", lambda d: d, "meta/esc50.csv: metadata file not found"),
        ("csv", lambda d: write_csv(d / "l.csv", ["file", "label"], [["x.wav", "a"]]), "missing column(s) path"),
        ("csv", lambda d: _bytes(d / "l.csv", b"\xff\xfe\x00binary"), "not a UTF-8 text CSV file"),
        ("gtzan", lambda d: d, "no GTZAN genre folders found"),
        ("urbansound8k", lambda d: d / "absent", "dataset root does not exist"),
    ],
)
def test_bad_dataset_root_is_one_clear_error(cli, tmp_path, name, make_root, message):
    result = cli("data", "info", name, "--root", make_root(tmp_path))
    assert result.code == 1 and message in result.err and "Traceback" not in result.err


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        load_dataset("nope", tmp_path)


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_the_same_file_listed_twice_is_a_problem(cli, tmp_path):
    tiny_wav(tmp_path / "a.wav")
    tiny_wav(tmp_path / "b.wav", value=0.5)
    listing = write_csv(tmp_path / "l.csv", ["path", "label", "fold"], [["a.wav", "x", 1], ["b.wav", "y", 2], ["a.wav", "x", 2]])
    result = cli("data", "info", "csv", "--root", listing)
    assert result.code == 1 and "a.wav: listed 2 times" in result.out


def test_groups_spanning_folds_are_reported_and_holdout_needs_two_groups(tmp_path):
    from audiocnn.datasets.base import holdout
    from audiocnn.datasets.report import check

    rows = []
    for i in range(6):
        tiny_wav(tmp_path / f"{i}.wav", value=(i + 1) / 7)
        site0 = i < 4
        rows.append([f"{i}.wav", ["a", "b"][i % 2], 1 + i % 2 if site0 else 2, "site0" if site0 else "site1"])
    dataset = load_dataset("csv", write_csv(tmp_path / "l.csv", ["path", "label", "fold", "group"], rows))
    warnings = check(dataset, check_audio=False).warnings
    assert len(warnings) == 1 and "source site0 (a, b) is in folds [1, 2]" in warnings[0]
    with pytest.raises(DatasetError, match="cannot hold out validation clips: the training folds hold 1 group"):
        holdout([c for c in dataset.clips if c.group == "site0"], 0.2)
    train, val = holdout(dataset.clips, 0.25)
    assert {c.group for c in train}.isdisjoint({c.group for c in val}) and val


def test_too_few_clips_for_the_asked_folds_is_a_clear_error(tmp_path):
    for i in range(3):
        tiny_wav(tmp_path / "d" / "a" / f"{i}.wav", value=(i + 1) / 4)
    with pytest.raises(DatasetError, match="cannot make 5 folds from 3 clips"):
        load_dataset("folder", tmp_path / "d", n_folds=5)


def test_options_a_dataset_does_not_take_are_refused(esc50_root):
    with pytest.raises(DatasetError, match="esc50: does not take n_folds"):
        load_dataset("esc50", esc50_root, n_folds=3)
