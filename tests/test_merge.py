"""`audiocnn merge` on tables it did not write, or that were damaged since: awkward names round-trip,
bad tables are one line each and nothing is written, pipes and deep or looping folders do not stop it,
formula cells are neutralised. Tables are written by the real `PredictionWriter` from predictions made
up here (no model needed), or by hand."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from audiocnn.inference.formats import RAVEN_COLUMNS, SUFFIXES, PredictionWriter
from audiocnn.inference.options import OutputOptions
from audiocnn.inference.predictor import FilePrediction
from audiocnn.inference.tables import read_audacity, read_csv, read_raven
from conftest import deadline, thousand_levels
from faults import MARKER, inject

LABELS = ["bird", "=cmd|' /C calc'!A0"]
#: Every character `str.splitlines` ends a line at, in file names an outside tool may have made.
BREAKS = ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\r", "\n", "\r\n", "\t"]
NAMES = [f"site/rec{i}{c}x.wav" for i, c in enumerate(BREAKS)] + ["site/=HYPERLINK(x).wav", "site/back\\slash.wav"]
# warnings are this module's results to check, not errors (pytest.ini makes them errors)
pytestmark = pytest.mark.filterwarnings("default::audiocnn.errors.AudiocnnWarning")


def prediction(name: str) -> FilePrediction:
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]])
    return FilePrediction(Path(name), 2.0, LABELS, np.array([0.0, 1.0]), np.array([1.0, 2.0]), probabilities)


def write_table(path: Path, fmt: str, names: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = PredictionWriter(handle, OutputOptions(format=fmt, top_k=2), labels=LABELS)
        for name in names:
            writer.add(prediction(name), Path("site"))
        writer.close()
    return path


def recordings(rows: list[dict[str, str]], column: str) -> list[str]:
    return list(dict.fromkeys(row[column] for row in rows))


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["raven", "csv", "scores", "kaleidoscope"])
def test_names_with_any_line_break_merge_and_read_back_as_written(cli, tmp_path, fmt):
    """U+2028, NEL, FF, ... in a file name: the shards merge, every name reads back exactly, and in
    Raven every line still has every column for a reader that splits lines as `str.splitlines`."""
    first, second = NAMES[::2], NAMES[1::2]
    shards = [write_table(tmp_path / f"shard{k}{SUFFIXES[fmt]}", fmt, names) for k, names in ((1, first), (2, second))]
    result = cli("merge", *shards, "--out", tmp_path / "all.txt")
    assert result.code == 0, result.err
    if fmt == "raven":
        rows = read_raven(tmp_path / "all.txt")
        assert recordings(rows, "Begin Path") == sorted(NAMES, key=lambda n: Path(n).parts)
        assert [int(r["Selection"]) for r in rows] == list(range(1, len(rows) + 1))
        text = (tmp_path / "all.txt").read_text(encoding="utf-8")
        assert {len(line.split("\t")) for line in text.splitlines()} == {len(RAVEN_COLUMNS)}
    else:
        column = {"csv": "path", "scores": "file", "kaleidoscope": "IN FILE"}[fmt]
        rows = read_csv(tmp_path / "all.txt")
        expected = sorted(NAMES, key=lambda n: Path(n).parts)
        assert recordings(rows, column) == (expected if fmt != "kaleidoscope" else [Path(n).name for n in expected])


def test_an_audacity_track_reads_back_labels_with_any_line_break(tmp_path):
    label = "".join(BREAKS) + "=x\\"
    track = tmp_path / "rec.txt"
    with track.open("w", newline="", encoding="utf-8") as handle:
        writer = PredictionWriter(handle, OutputOptions(format="audacity", top_k=1))
        writer.add(FilePrediction(Path("rec.wav"), 1.0, [label], np.array([0.0]), np.array([1.0]),
                                  np.array([[1.0]])))
    assert [text for _, _, text in read_audacity(track)] == [f"{label} 1.0000"]
    assert len(track.read_text(encoding="utf-8").splitlines()) == 1


# ----------------------------------------------------------------------------- bad tables


def _csv_shard(tmp_path: Path, name: str = "good.audiocnn.csv") -> Path:
    return write_table(tmp_path / name, "csv", ["site/a.wav"])


BAD_TABLES = {
    "random bytes": bytes(range(256)) * 4,
    "short row": None,  # made from a good table below
    "long row": None,
    "raven short row": None,
    "JSON cut": b'{"files": [{"path": "a.wav"',
    "JSON nested deep": b"[" * 100_000,
    "JSON without paths": b'{"files": [{"windows": []}], "failed": []}',
    "JSON of the wrong shape": b'{"files": {"path": "a.wav"}}',
    "JSON path not text": b'{"files": [{"path": 3}]}',
    "empty": b"",
    "UTF-16 damaged": b"\xff\xfep\x00a\x00\x00\xd8",
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_a_bad_table_is_one_line_and_nothing_is_written(cli, tmp_path, case):
    good = _csv_shard(tmp_path) if "JSON" not in case else tmp_path / "good.audiocnn.json"
    if "JSON" in case:
        good.write_text(json.dumps({"files": [{"path": "site/a.wav", "windows": []}], "failed": []}))
    bad = tmp_path / ("bad.audiocnn.json" if "JSON" in case else "bad.audiocnn.csv")
    data = BAD_TABLES[case]
    if case in ("short row", "long row"):
        lines = _csv_shard(tmp_path, "source.csv").read_bytes().split(b"\r\n")
        lines[2] = lines[2].rsplit(b",", 2)[0] if case == "short row" else lines[2] + b",extra"
        data = b"\r\n".join(lines)
    elif case == "raven short row":
        bad = tmp_path / "bad.audiocnn.selections.txt"
        lines = write_table(tmp_path / "source.txt", "raven", ["site/b.wav"]).read_bytes().split(b"\n")
        lines[1] = b"\t".join(lines[1].split(b"\t")[:5])
        data = b"\n".join(lines)
        good = write_table(tmp_path / "good.audiocnn.selections.txt", "raven", ["site/a.wav"])
    bad.write_bytes(data)
    out = tmp_path / "merged.out"
    result = cli("merge", good, bad, "--out", out)
    assert result.code == 1 and not out.exists(), result.out
    errors = result.err.strip().splitlines()
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    assert [line for line in errors if line.startswith("audiocnn: error:")] == errors[-2:], errors
    assert errors[-2].startswith(f"audiocnn: error: {bad}"), errors
    assert errors[-1] == f"audiocnn: error: 1 of 2 table(s) cannot be joined; nothing written to {out}"


def test_a_table_over_64_mib_is_refused_unread(cli, tmp_path):
    big = tmp_path / "big.audiocnn.csv"
    with big.open("wb") as handle:  # sparse: no disk, and nothing to read if the size is checked first
        handle.truncate(64 * 2**20 + 1)
    result = cli("merge", _csv_shard(tmp_path), big, "--out", tmp_path / "m.csv")
    assert result.code == 1 and f"{big}: 64.0 MiB, more than the 64 MiB a table may have" in result.err


def test_every_bad_table_is_reported_not_only_the_first(cli, tmp_path):
    good = _csv_shard(tmp_path)
    (tmp_path / "a.audiocnn.csv").write_bytes(b"\x00\x01")
    (tmp_path / "b.audiocnn.csv").write_text("not,a,result\n")
    raven = write_table(tmp_path / "c.audiocnn.selections.txt", "raven", ["site/c.wav"])
    result = cli("merge", good, tmp_path / "a.audiocnn.csv", tmp_path / "b.audiocnn.csv", raven,
                 "--out", tmp_path / "m.csv")
    assert result.code == 1 and not (tmp_path / "m.csv").exists()
    assert f"{tmp_path / 'a.audiocnn.csv'}: holds NUL bytes" in result.err
    assert f"{tmp_path / 'b.audiocnn.csv'}: not an audiocnn result table" in result.err
    assert f"{raven}: a raven table, the others are csv; merge one format at a time" in result.err
    assert "3 of 4 table(s) cannot be joined" in result.err


def test_a_latin1_table_is_read_with_a_warning(cli, tmp_path):
    good = _csv_shard(tmp_path)
    text = write_table(tmp_path / "source.csv", "csv", ["site/café.wav"]).read_text(encoding="utf-8")
    (tmp_path / "old.audiocnn.csv").write_bytes(text.encode("latin-1"))
    result = cli("merge", good, tmp_path / "old.audiocnn.csv", "--out", tmp_path / "m.csv")
    assert result.code == 0, result.err
    assert "not UTF-8; read as Windows-1252" in result.err
    assert recordings(read_csv(tmp_path / "m.csv"), "path") == ["site/a.wav", "site/café.wav"]


def test_utf16_and_bom_tables_are_read(cli, tmp_path):
    text = write_table(tmp_path / "source.csv", "csv", ["site/ü.wav"]).read_text(encoding="utf-8")
    (tmp_path / "a.audiocnn.csv").write_bytes(text.encode("utf-16"))
    (tmp_path / "b.audiocnn.csv").write_bytes(text.replace("ü", "b").encode("utf-8-sig"))
    result = cli("merge", tmp_path / "a.audiocnn.csv", tmp_path / "b.audiocnn.csv", "--out", tmp_path / "m.csv")
    assert result.code == 0, result.err
    assert recordings(read_csv(tmp_path / "m.csv"), "path") == ["site/b.wav", "site/ü.wav"]


def test_formula_cells_of_an_edited_table_are_neutralised_and_ours_are_kept(cli, tmp_path):
    ours = _csv_shard(tmp_path)
    edited = tmp_path / "edited.audiocnn.csv"
    header = ours.read_text(encoding="utf-8").splitlines()[0]
    with edited.open("w", newline="", encoding="utf-8") as handle:
        handle.write(header + "\r\n")
        csv.writer(handle).writerow(["=HYPERLINK(\"http://x\")", "clip", "0", "1", "@SUM(A1)", "+1", "-1", "", "",
                                     ""][: len(header.split(","))])
    raven = tmp_path / "edited.audiocnn.selections.txt"
    raven.write_text("\t".join(RAVEN_COLUMNS) + "\n" + "\t".join(["1", "=cmd", "1", "0", "1", "0", "8000",
                                                                  "@x.wav", "-dog", "0.5", "1"]) + "\n")
    assert cli("merge", ours, edited, "--out", tmp_path / "m.csv").code == 0
    cells = list(csv.reader(io.StringIO((tmp_path / "m.csv").read_text(encoding="utf-8"), newline="")))
    (edited_row,) = [row for row in cells if row[0].startswith("'=")]
    assert [row for row in cells if row is not edited_row] == list(csv.reader(io.StringIO(
        ours.read_text(encoding="utf-8"), newline="")))  # our own cells, its `'=cmd...` label included, as they were
    assert edited_row[:7] == ["'=HYPERLINK(\"http://x\")", "clip", "0", "1", "'@SUM(A1)", "'+1", "'-1"]
    assert cli("merge", raven, "--out", tmp_path / "m.txt").code == 0
    row = (tmp_path / "m.txt").read_text(encoding="utf-8").splitlines()[1].split("\t")
    assert [row[1], row[7], row[8]] == ["'=cmd", "'@x.wav", "'-dog"]


# ----------------------------------------------------------------------------- folders


def test_a_pipe_named_like_a_table_is_skipped_and_refused_by_name(cli, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    _csv_shard(folder)
    os.mkfifo(folder / "waiting.audiocnn.csv")
    with deadline(60):
        result = cli("merge", folder, "--out", tmp_path / "m.csv")
        assert result.code == 0, result.err
        assert f"{folder / 'waiting.audiocnn.csv'}: skipped (not a regular file: a pipe, socket or device)" in result.err
        named = cli("merge", _csv_shard(tmp_path), folder / "waiting.audiocnn.csv", "--out", tmp_path / "n.csv")
    assert named.code == 1 and "waiting.audiocnn.csv: not a regular file" in named.err


@pytest.mark.slow
def test_a_deep_folder_and_link_loops_do_not_stop_a_merge(cli, tmp_path):
    (tmp_path / "out").mkdir()
    with thousand_levels(tmp_path / "out") as deep:
        _csv_shard(deep, "deep.audiocnn.csv")
        _deep_merge(cli, tmp_path)


def _deep_merge(cli, tmp_path: Path) -> None:
    (tmp_path / "out" / "a.audiocnn.csv").symlink_to("b.audiocnn.csv")  # a loop of two links
    (tmp_path / "out" / "b.audiocnn.csv").symlink_to("a.audiocnn.csv")
    (tmp_path / "out" / "up").symlink_to(tmp_path / "out")  # a folder link back up: not followed
    result = cli("merge", tmp_path / "out", "--out", tmp_path / "m.csv")
    assert result.code == 0, result.err
    assert "a.audiocnn.csv: skipped (Too many levels of symbolic links)" in result.err
    assert f"{tmp_path / 'out' / 'up'}: skipped (a link to a folder, not followed)" in result.err
    assert recordings(read_csv(tmp_path / "m.csv"), "path") == ["site/a.wav"]


def test_an_unexpected_exception_in_one_table_is_one_line_with_its_traceback_logged(cli, tmp_path, monkeypatch):
    """A bug met reading one table (a fault planted in the real reader, for that table only) is
    `FILE: internal error (...)`, its traceback in the log; the other tables are still checked, and
    nothing is written."""
    inject(monkeypatch, "audiocnn.inference.tables:table_format")
    monkeypatch.setenv("AUDIOCNN_LOG_DIR", str(tmp_path / "logs"))
    good, bad = _csv_shard(tmp_path), _csv_shard(tmp_path, f"{MARKER}.audiocnn.csv")
    broken = tmp_path / "broken.audiocnn.csv"
    broken.write_text("path,window\r\n")
    result = cli("merge", good, bad, broken, "--out", tmp_path / "m.csv")
    assert result.code == 1 and not (tmp_path / "m.csv").exists()
    (log,) = (tmp_path / "logs").iterdir()
    assert f"audiocnn: error: {bad}: internal error (InjectedFault: injected fault in table_format); traceback in " \
           f"{log}" in result.err.splitlines()
    assert f"{broken}: not an audiocnn result table" in result.err and "2 of 3 table(s) cannot be joined" in result.err
    assert "InjectedFault" in log.read_text() and "Traceback" not in result.err
