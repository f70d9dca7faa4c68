"""Annotation tables from outside cannot fill memory, reach past the dataset root, hang the reader,
hide the real problem or write to the terminal: small recordings and tables are made here (soundfile),
and read by the real `annotations` loader and `audiocnn data info annotations`."""

from __future__ import annotations

import os
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiocnn.datasets import load_dataset
from audiocnn.datasets.annotated import find_selections
from conftest import deadline, thousand_levels
from faults import MARKER, inject

RATE = 8_000
RAVEN_HEADER = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)"
pytestmark = pytest.mark.filterwarnings("default::audiocnn.errors.AudiocnnWarning")  # warnings are results here


def recording(path: Path, seconds: float = 20.0, rate: int = RATE) -> Path:
    """A quiet noise recording (silence where `rate` is 1 kHz: an hour of it is a few kB of FLAC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * rate)
    wave = np.zeros(n, np.float32) if rate == 1000 else 0.01 * np.random.default_rng(zlib.crc32(path.name.encode())).standard_normal(n)
    sf.write(path, wave, rate)
    return path


def labelled(root: Path, names: list[str]) -> Path:
    """Recordings `names` under `root`, each with an Audacity table of two selections beside it."""
    for name in names:
        recording(root / name)
        (root / name).with_suffix(".txt").write_text("1\t3\tdog\n10\t12\tbird\n")
    return root


@pytest.mark.slow
def test_a_table_cannot_make_more_clips_than_its_recording_allows(tmp_path):
    """A 220 KB table of 20,000 one-hour selections over an hour of silence would make 14.4 M clips
    (gigabytes): the recording's clips are capped, it is left out with a problem, memory stays small."""
    root = labelled(tmp_path / "root", ["a.wav", "b.wav"])
    recording(root / "hour.flac", seconds=3600, rate=1000)
    (root / "hour.txt").write_text("0\t3600\tdog\n")  # an hour annotated once over: 720 clips of 5 s
    assert sum(c.group == "hour.flac" for c in load_dataset("annotations", root, n_folds=2).clips) == 720
    (root / "hour.txt").write_text("0\t3600\tdog\n" * 20_000)
    assert (root / "hour.txt").stat().st_size == 220_000
    tracemalloc.start()  # after a first load: what the modules it imports take is not the table's doing
    try:
        dataset = load_dataset("annotations", root, n_folds=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MiB"
    assert {c.group for c in dataset.clips} == {"a.wav", "b.wav"}
    assert dataset.problems == [f"{root / 'hour.flac'}: its 20000 selections (first at {root / 'hour.txt'}:1) would "
                                "make 14,400,000 clips of 5 s, more than the 14,400 its 3600.0 s allow; left out "
                                "(selections repeated, or far too long?)"]


def test_a_begin_path_of_root_or_outside_the_root_is_a_problem_never_used(tmp_path):
    root = labelled(tmp_path / "root", ["a.wav", "b.wav"])
    outside = recording(tmp_path / "elsewhere" / "secret.wav")
    rows = ["/", str(outside), "../elsewhere/secret.wav", "a.wav", str(root / "b.wav")]
    (root / "season.selections.txt").write_text("\n".join(
        [f"{RAVEN_HEADER}\tBegin Path\tLabel"] + [f"{n}\tSpectrogram 1\t1\t4\t6\t0\t4000\t{path}\tcat"
                                                  for n, path in enumerate(rows, start=1)]) + "\n")
    dataset = load_dataset("annotations", root, n_folds=2)
    table = root / "season.selections.txt"
    assert sorted(dataset.problems) == sorted([
        f"{table}:2: recording / names a folder, not a recording",
        f"{table}:3: recording {outside} lies outside the dataset root {root}; not used",
        f"{table}:4: recording ../elsewhere/secret.wav lies outside the dataset root {root}; not used"])
    assert {c.path for c in dataset.clips} == {root / "a.wav", root / "b.wav"}
    assert sorted((c.group, c.label) for c in dataset.clips if c.label == "cat") == [("a.wav", "cat"),
                                                                                  ("b.wav", "cat")]


def test_a_table_linked_from_outside_the_root_is_not_read(tmp_path, cli):
    root = labelled(tmp_path / "root", ["a.wav", "b.wav"])
    recording(root / "c.wav")
    private = tmp_path / "private.txt"
    private.write_text("root:x:0:0:hunter2\n")
    (root / "c.txt").symlink_to(private)
    (root / "b.txt").unlink()
    (root / "b.txt").symlink_to("a.txt")  # a link within the root is read as any table
    selections, problems = find_selections(root)
    assert problems == [f"{root / 'c.txt'}: a link to {private}, outside the dataset root; not read (copy the "
                        "table into the root)"]
    assert {s.recording.name for s in selections} == {"a.wav", "b.wav"}
    result = cli("data", "info", "annotations", "--root", root, "--folds", "2")
    assert result.code == 1 and "hunter2" not in result.out + result.err


def test_labels_and_problems_cannot_send_escapes_to_the_terminal(tmp_path, cli):
    root = tmp_path / "root"
    for name in ("a", "b"):
        recording(root / f"{name}.wav")
        (root / f"{name}.txt").write_text("1\t3\tdog\n5\t7\towl\x1b]0;pwned\x07\nlate\t9\tbird\x1b[2J\n")
    result = cli("data", "info", "annotations", "--root", root, "--folds", "2")
    assert result.code == 1
    for stream in (result.out, result.err):
        assert "\x1b" not in stream and "\x07" not in stream
    assert "owl\\x1b]0;pwned\\x07" in result.out and f"{root / 'b.txt'}:3: begin time 'late'" in result.out


def test_data_info_lists_the_problems_before_the_fold_count(tmp_path, cli):
    """Default 5 folds and a table whose label column is not one Raven users name: the real problem is
    listed, not only 'need 5 recordings'."""
    root = labelled(tmp_path / "root", ["a.wav", "b.wav", "c.wav", "d.wav"])
    recording(root / "e.wav")
    (root / "e.Table.1.selections.txt").write_text(f"{RAVEN_HEADER}\tVocalisation\n1\tSpectrogram 1\t1\t1\t2\t0\t"
                                                   "4000\tdog\n")
    result = cli("data", "info", "annotations", "--root", root)
    assert result.code == 1 and "Traceback" not in result.err
    assert "1 problem(s):" in result.out and f"{root / 'e.Table.1.selections.txt'}: no label column" in result.out
    assert "5 folds need at least 5 annotated recordings" in result.err and "found 4" in result.err
    assert "no label column" in result.err  # training's error names it too


def test_table_encodings_and_sizes(tmp_path):
    """UTF-16 with its mark and UTF-8 with one are read; Windows-1252 with a warning; binary and
    oversized tables are one problem each, the size checked before a byte is read."""
    root = labelled(tmp_path / "root", ["a.wav"])
    for name in ("b", "c", "d", "e"):
        recording(root / f"{name}.wav")
    (root / "b.txt").write_bytes(f"{RAVEN_HEADER}\tSpecies\n1\tSpectrogram 1\t1\t1\t2\t0\t4000\tmésange\n"
                                 .encode("utf-16"))
    (root / "c.txt").write_bytes("1\t2\tgrive\n".encode("utf-8-sig"))
    (root / "d.txt").write_bytes("1\t2\tpinson élégant\n".encode("cp1252"))
    (root / "e.txt").write_bytes(b"\x00\x01\x02binary\n")
    with (root / "f.txt").open("wb") as handle:
        handle.truncate(64 * 2**20 + 1)
    recording(root / "f.wav")
    with pytest.warns(Warning, match=r"d\.txt: not UTF-8; read as Windows-1252"):
        selections, problems = find_selections(root)
    assert {(s.recording.name, s.label) for s in selections} >= {("b.wav", "mésange"), ("c.wav", "grive"),
                                                                  ("d.wav", "pinson élégant")}
    assert sorted(problems) == [f"{root / 'e.txt'}: holds NUL bytes: not a text table (binary data, or UTF-16 "
                                "without its byte-order mark; save it as UTF-8)",
                                f"{root / 'f.txt'}: 64.0 MiB, more than the 64 MiB a table may have"]


@pytest.mark.slow
def test_pipes_link_loops_and_deep_folders_do_not_stop_the_reader(tmp_path):
    root = labelled(tmp_path / "root", ["a.wav"])
    recording(root / "p.wav")
    os.mkfifo(root / "p.txt")  # a pipe named as p.wav's table
    (root / "x.wav").symlink_to("y.wav")  # a loop of two links
    (root / "y.wav").symlink_to("x.wav")
    (root / "up").symlink_to(root)  # a folder link back up: not followed
    with thousand_levels(root) as deepest:
        (deepest / "deep.wav").write_bytes((root / "a.wav").read_bytes())  # libsndfile refuses so long a name
        (deepest / "deep.txt").write_text("1\t2\towl\n")
        with deadline(60), pytest.warns(Warning) as caught:
            selections, problems = find_selections(root)
        assert not problems
        assert {s.recording.name for s in selections} == {"a.wav", "deep.wav"}
        said = {str(w.message) for w in caught}
        assert f"{root / 'p.txt'}: skipped (not a regular file: a pipe, socket or device)" in said
        assert f"{root / 'x.wav'}: skipped (Too many levels of symbolic links)" in said
        assert f"{root / 'up'}: skipped (a link to a folder, not followed)" in said


def test_an_unexpected_exception_is_one_problem_and_the_rest_is_read(tmp_path, monkeypatch):
    """A decoder's or reader's surprise (not an AudioError; say, a tag that is not UTF-8), planted in
    the real code for one recording and for one table, is one problem line naming it, its traceback
    logged; the other recordings and tables still count."""
    root = labelled(tmp_path / "root", ["a.wav", "b.wav", "wreck.wav"])
    recording(root / "d.wav")
    (root / f"d.{MARKER}.txt").write_text("1\t3\tdog\n")  # d.wav's table, named so the reader's fault hits it
    inject(monkeypatch, "audiocnn.audio:info", "wreck")
    inject(monkeypatch, "audiocnn.datasets.tables:_text")
    monkeypatch.setenv("AUDIOCNN_LOG_DIR", str(tmp_path / "logs"))
    dataset = load_dataset("annotations", root, n_folds=2)
    assert {c.group for c in dataset.clips} == {"a.wav", "b.wav"}
    (log,) = (tmp_path / "logs").iterdir()
    assert sorted(dataset.problems) == sorted([
        f"{root / 'wreck.txt'}:1: {root / 'wreck.wav'}: internal error (InjectedFault: injected fault in info); "
        f"traceback in {log}",
        f"{root / 'd'}.{MARKER}.txt: internal error (InjectedFault: injected fault in _text); traceback in {log}"])
    assert log.read_text().count("InjectedFault") >= 2


def test_an_audacity_track_audiocnn_wrote_trains_as_the_labels_it_shows(tmp_path):
    """One Audacity parser (tabletext.audacity_lines) for predict's tracks and annotators' files: a
    label our writer escaped (a tab, a backslash) is read back by the annotations reader as written,
    with the confidence our writer appends taken off; frequency and blank lines are no labels."""
    from audiocnn.tabletext import raven_text

    root = tmp_path / "root"
    recording(root / "dawn.wav")
    label = "song\tthrush \\ blackbird"
    (root / "dawn.txt").write_text(f"1.0\t3.0\t{raven_text(label)} 0.9731\n\\\t500\t4000\n\n5\t7\towl\n")
    selections, problems = find_selections(root)
    assert not problems
    assert [(s.begin_s, s.end_s, s.label) for s in selections] == [(1.0, 3.0, label), (5.0, 7.0, "owl")]
