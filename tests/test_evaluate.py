"""`audiocnn evaluate` (issue 33): detections scored against annotated recordings, the figures checked
against ones worked out by hand on a small case (comments give the working)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from audiocnn.inference.scoring import auroc, average_precision, event_counts

DOG = [0.1, 0.9, 0.2, 0.1, 0.3, 0.6, 0.7, 0.1, 0.8, 0.1]  # ten 1 s windows
CAT = [0.1, 0.1, 0.2, 0.7, 0.4, 0.1, 0.1, 0.1, 0.1, 0.2]


@pytest.fixture
def case(tmp_path):
    """A 10 s recording with dog at 1-2 s and 5-6 s and cat at 3-4 s (Raven table beside it), and a
    scores table of the model's windows written elsewhere, naming the recording by another path."""
    annotated = tmp_path / "annotated"
    annotated.mkdir()
    sf.write(annotated / "site.wav", np.zeros(16_000 * 10, np.float32), 16_000)
    (annotated / "site.Table.1.selections.txt").write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tAnnotation\n"
        "1\tSpectrogram 1\t1\t1.0\t2.0\t0\t8000\tdog\n2\tSpectrogram 1\t1\t5.0\t6.0\t0\t8000\tdog\n"
        "3\tSpectrogram 1\t1\t3.0\t4.0\t0\t8000\tcat\n")
    table = tmp_path / "results" / "run.audiocnn.scores.csv"
    table.parent.mkdir()
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "start_time", "end_time", "dog", "cat", "cow"])
        for k, (dog, cat) in enumerate(zip(DOG, CAT)):
            writer.writerow(["/field/card1/site.wav", k, k + 1, dog, cat, 0.0])
        writer.writerow(["/field/card1/other.wav", 0, 1, 0.9, 0.0, 0.1])  # a recording nobody annotated
    return annotated, table


@pytest.mark.slow
def test_the_figures_are_those_worked_out_by_hand(case, tmp_path, cli):
    annotated, table = case
    done = cli("evaluate", table, "--annotations", annotated, "--out", tmp_path / "report", "--collar", "0.5")
    assert done.code == 0, done.err
    report = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    dog, cat = report["classes"]["dog"], report["classes"]["cat"]
    # dog at 0.5: windows 1-2, 5-6, 6-7, 8-9 -> events 1-2, 5-7, 8-9; onsets 1 and 5 match, 8 does not
    assert (dog["event"]["tp"], dog["event"]["fp"], dog["event"]["fn"]) == (2, 1, 0)
    assert dog["event"]["precision"] == pytest.approx(2 / 3) and dog["event"]["f1"] == pytest.approx(0.8)
    # segments: annotated 1, 5; called 1, 5, 6, 8
    assert (dog["segment"]["tp"], dog["segment"]["fp"], dog["segment"]["fn"]) == (2, 2, 0)
    assert dog["segment"]["f1"] == pytest.approx(2 / 3)
    # over thresholds: 0.9 (hit) 0.8 0.7 (misses) 0.6 (hit): AP = 0.5 * 1 + 0.5 * 0.5; 0.9 beats all 8
    # negatives, 0.6 beats 6 of them: AUROC 14/16
    assert dog["average_precision"] == pytest.approx(0.75) and dog["auroc"] == pytest.approx(0.875)
    assert cat["event"]["f1"] == 1.0 and cat["average_precision"] == 1.0 and cat["auroc"] == 1.0
    assert "cow" not in report["classes"]  # nobody annotated cows: not scored
    overall = report["overall"]["event"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (3, 1, 0) and overall["f1"] == pytest.approx(6 / 7)
    assert report["overall"]["mean_average_precision"] == pytest.approx((0.75 + 1) / 2)
    assert "other.wav" in done.err and "no annotations" in done.err  # what was left out is said
    with (tmp_path / "report" / "evaluation.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["class"] for r in rows] == ["cat", "dog"] and rows[1]["event_f1"] == "0.8"
    assert (tmp_path / "report" / "pr_curves.png").stat().st_size > 10_000
    assert "dog" in done.out and "0.800" in done.out
    # by default the collar is half the tables' window (1 s windows here): the same figures
    again = cli("evaluate", table, "--annotations", annotated, "--out", tmp_path / "default")
    default = json.loads((tmp_path / "default" / "evaluation.json").read_text())
    assert again.code == 0 and default["options"]["collar"] == 0.5 and default["classes"]["dog"] == dog


def test_a_looser_collar_and_offsets_change_what_matches():
    reference, estimated = [(1.0, 2.0), (5.0, 6.0)], [(1.6, 2.0), (5.0, 9.0)]
    assert event_counts(reference, estimated, collar=0.5).tp == 1  # 1.6 is 0.6 s late
    assert event_counts(reference, estimated, collar=1.0).tp == 2
    # with offsets: 9.0 is 3 s past 6.0, beyond both the collar and half the event's length
    assert event_counts(reference, estimated, collar=1.0, offsets=True).tp == 1
    # one estimate cannot match two annotated events, and the largest matching is found
    assert event_counts([(1.0, 2.0), (1.4, 2.0)], [(1.2, 2.0), (1.9, 3.0)], collar=0.5).tp == 2
    assert average_precision(np.zeros(3, bool), np.ones(3)) is None and auroc(np.ones(3, bool), np.ones(3)) is None


def test_no_annotations_or_bad_options_are_one_error(tmp_path, case, cli):
    annotated, table = case
    (tmp_path / "empty").mkdir()
    for args, message in [(("--annotations", tmp_path / "empty"), "no annotations found"),
                          (("--annotations", annotated, "--threshold", "nan"), "--threshold must be 0-1"),
                          (("--annotations", tmp_path / "nowhere"), "not a folder")]:
        done = cli("evaluate", table, "--out", tmp_path / "r", *args)
        assert done.code != 0 and message in done.err and "Traceback" not in done.err
