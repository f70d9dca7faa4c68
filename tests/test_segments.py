"""`audiocnn segments` (issue 33): a review queue read back from result tables of any format, cut into
padded snippets and a table to fill in, resumable, and bad tables or missing recordings reported.

Two field recordings made of the bundled examples over a recorder's hiss, classified once by the
bundled model into every format that names its recordings.
"""

from __future__ import annotations

import csv
import shutil

import pytest
import soundfile as sf

from audiocnn.inference.formats import SUFFIXES
from audiocnn.inference.segments import MANIFEST
from test_page import _field_recording

pytestmark = pytest.mark.slow
FORMATS = ("raven", "csv", "kaleidoscope", "json", "scores")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The recordings and one result table per format (top 2 labels a window)."""
    from audiocnn.cli import main

    folder = tmp_path_factory.mktemp("field")
    sites = [_field_recording(folder / f"site{k}.wav", minutes=1, every_s=7.5, seed=k) for k in (1, 2)]
    for fmt in FORMATS:
        assert main(["predict", *map(str, sites), "--format", fmt, "--top-k", "2", "--out",
                     str(folder / f"results{SUFFIXES[fmt]}"), "--no-progress", "--runtime", "int8"]) == 0
    return folder


def _table(results, fmt: str):  # noqa: ANN001, ANN202
    return results / f"results{SUFFIXES[fmt]}"


def _rows(out) -> list[dict[str, str]]:  # noqa: ANN001
    with (out / MANIFEST).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_format_gives_the_same_queue_of_padded_snippets(results, tmp_path, cli):
    queues = {}
    for fmt in FORMATS[:4]:
        done = cli("segments", _table(results, fmt), "--out", tmp_path / fmt, "--queue", "uncertain",
                   "--per-label", "2", "--pad", "0.5")
        assert done.code == 0, done.err
        queues[fmt] = [(r["recording"], r["start_s"], r["end_s"], r["label"]) for r in _rows(tmp_path / fmt)]
    assert queues["raven"] and all(queue == queues["raven"] for queue in queues.values())
    rows = _rows(tmp_path / "raven")
    assert {r["verdict"] for r in rows} == {""} and {r["queue"] for r in rows} == {"uncertain"}
    for row in rows:  # each snippet is its detection and half a second either side, cut at the recording's ends
        heard = sf.info(tmp_path / "raven" / row["segment"])
        assert abs(heard.duration - (float(row["clip_end_s"]) - float(row["clip_start_s"]))) < 0.01, row
        assert float(row["clip_start_s"]) == max(0.0, float(row["start_s"]) - 0.5)
    per_label: dict[str, list[str]] = {}
    for row in rows:
        per_label.setdefault(row["label"], []).append(row["recording"])
    assert all(len(found) <= 2 for found in per_label.values())  # --per-label 2
    assert any(len(set(found)) == 2 for found in per_label.values())  # spread: both recordings where both have it
    scores = cli("segments", _table(results, "scores"), "--out", tmp_path / "scores", "--per-label", "3")
    assert scores.code == 0 and all(r["margin"] for r in _rows(tmp_path / "scores"))  # every class: every margin


def test_a_run_killed_midway_resumes_to_the_same_segments(results, tmp_path, cli):
    # the folder: every table found below it, the same detections in five formats queued once
    args = ("segments", results, "--out", tmp_path / "out", "--queue", "random", "--per-label", "3", "--seed", "7")
    first = cli(*args)
    assert first.code == 0 and "snippet(s) written now" in first.out
    whole = (tmp_path / "out" / MANIFEST).read_text()
    assert len({(r["recording"], r["start_s"], r["label"]) for r in _rows(tmp_path / "out")}) == len(_rows(tmp_path / "out"))
    snippets = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.wav"))
    (tmp_path / "out" / MANIFEST).unlink()  # killed before the table, which is written last
    (tmp_path / "out" / snippets[0]).unlink()
    again = cli(*args)
    assert again.code == 0 and "1 snippet(s) written now" in again.out
    assert (tmp_path / "out" / MANIFEST).read_text() == whole
    assert sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.wav")) == snippets


def test_a_bad_table_or_a_missing_recording_is_reported_and_the_rest_cut(results, tmp_path, cli):
    tables = tmp_path / "tables"
    shutil.copytree(results, tables)
    raven = _table(tables, "raven")
    raven.write_text(raven.read_text().replace(str(results), str(tables)))  # the table names the copies
    (tables / "site2.wav").unlink()  # moved since it was classified
    (tables / "broken.audiocnn.csv").write_text("path,window\nx\n")
    done = cli("segments", _table(tables, "raven"), tables / "broken.audiocnn.csv", "--out", tmp_path / "out")
    assert done.code == 1 and "Traceback" not in done.err
    errors = done.err.strip().splitlines()
    assert len(errors) == 2 and any("broken.audiocnn.csv" in e for e in errors) and any("site2.wav" in e for e in errors)
    assert {r["recording"] for r in _rows(tmp_path / "out")} == {str(tables / "site1.wav")}
    other_pad = cli("segments", _table(tables, "raven"), "--out", tmp_path / "out", "--pad", "2")
    assert other_pad.code != 0 and "its snippets were cut with --pad 1" in other_pad.err  # names hold no padding
    assert (tmp_path / "out" / MANIFEST).is_file()  # refused before anything was touched
    for bad, message in [(("--pad", "nan"), "--pad must be 0-60"), (("--per-label", "0"), "--per-label must be"),
                         (("--seed", "-1"), "--seed must be")]:
        refused = cli("segments", _table(tables, "raven"), "--out", tmp_path / "x", *bad)
        assert refused.code != 0 and message in refused.err
