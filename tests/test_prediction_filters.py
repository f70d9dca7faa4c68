"""What a prediction hears and shows (issue 33): `--labels-include/--labels-exclude` hide the model's other
labels from every format, probabilities as the model gave them unless `--renormalise`, `unknown` judged on
the labels shown, a name the model lacks refused before any work; `--fmin/--fmax` filter the band heard."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from audiocnn.errors import OptionError
from audiocnn.inference.formats import PredictionWriter
from audiocnn.inference.label_filter import parsed_labels, shown_labels
from audiocnn.inference.options import OutputOptions
from audiocnn.inference.predictor import FilePrediction

LABELS = ["dog", "cat", "cow", "hen"]


def _prediction() -> FilePrediction:
    rows = np.array([[0.70, 0.10, 0.15, 0.05],   # a dog: hidden, so the cow (0.15) is the likeliest shown label
                     [0.05, 0.05, 0.60, 0.30]])
    return FilePrediction(Path("site.wav"), 2.0, LABELS, np.array([0.0, 1.0]), np.array([1.0, 2.0]), rows,
                          unknown_below=0.3)


def _written(**options) -> list[dict[str, str]]:  # noqa: ANN003
    stream = io.StringIO()
    writer = PredictionWriter(stream, OutputOptions(**{"format": "scores", **options}), labels=LABELS, can_abstain=True)
    writer.add(_prediction())
    writer.close()
    return list(csv.DictReader(io.StringIO(stream.getvalue())))


def test_hidden_labels_are_in_no_column_and_renormalising_is_asked_for():
    rows = _written(labels_exclude="dog, hen")
    assert list(rows[0]) == ["file", "start_time", "end_time", "cat", "cow"]
    assert [float(rows[1]["cow"]), float(rows[1]["cat"])] == [0.6, 0.05]  # as the model gave them
    scaled = _written(labels_include="cat\ncow  # a site list, one per line", renormalise=True)
    assert [float(scaled[0]["cat"]) + float(scaled[0]["cow"]), float(scaled[0]["cow"])] == [1.0, 0.6]


def test_unknown_is_judged_on_the_labels_shown():
    """A window of the hidden dog is not passed off as the nearest shown label: below the threshold, unknown."""
    stream = io.StringIO()
    writer = PredictionWriter(stream, OutputOptions(format="csv", top_k=1, labels_include="cat,cow,hen"),
                              labels=LABELS, can_abstain=True)
    writer.add(_prediction())
    rows = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert [(r["label_1"], r["label_2"]) for r in rows[1:]] == [("unknown", "cow"), ("cow", "")]


def test_names_the_model_lacks_or_an_empty_list_are_refused_naming_the_option():
    assert parsed_labels("a, b\n# comment\nc # d\n") == ["a", "b", "c"]
    with pytest.raises(OptionError, match="labels_include: not labels of this model: 'dgo'"):
        shown_labels(LABELS, "dgo,cat", None)
    with pytest.raises(OptionError, match="labels_exclude: leaves no label to show"):
        shown_labels(LABELS, None, ",".join(LABELS))
    assert shown_labels(LABELS, None, None) is None and shown_labels(LABELS, "hen,dog", "dog") == [3]


@pytest.mark.slow
def test_the_command_takes_a_file_of_labels_and_refuses_a_wrong_one_before_classifying(cli, tone_bundle, tones,
                                                                                         tmp_path):
    site = tmp_path / "site-list.txt"
    site.write_text("# what this site can hear\nlow\nnoise\n")
    table = tmp_path / "out.csv"
    done = cli("predict", tones / "high", "--model", tone_bundle, "--labels-include", site, "--format", "scores",
               "--out", table, "--no-progress")
    assert done.code == 0, done.err
    assert table.read_text().splitlines()[0] == "file,start_time,end_time,low,noise"
    wrong = cli("predict", tones / "high", "--model", tone_bundle, "--labels-exclude", "hihg", "--no-progress")
    assert wrong.code != 0 and wrong.err.startswith("audiocnn: error: --labels-exclude: not labels of this model")


def test_a_band_filter_in_blocks_is_the_filter_over_the_whole_and_keeps_only_its_band():
    """Issue 33: --fmin/--fmax. A 500 Hz tone passes a 200-1000 Hz band, a 4 kHz one is cut by 40 dB or
    more; filtered in uneven blocks, the recording is what it is filtered whole."""
    from audiocnn.inference.bandpass import Bandpass

    rate = 16_000
    t = np.arange(rate * 2) / rate
    low, high = np.sin(2 * np.pi * 500 * t), np.sin(2 * np.pi * 4000 * t)
    whole = Bandpass(rate, 200, 1000)(np.float32(low + high))
    band = Bandpass(rate, 200, 1000)
    blocks = np.concatenate([band(np.float32(part)) for part in np.split(low + high, [1000, 7777, 20000])])
    np.testing.assert_allclose(blocks, whole, atol=1e-5)
    settled = whole[rate // 2:]  # after the filter's start

    def level(wave: np.ndarray, hz: float) -> float:
        return float(np.abs(np.fft.rfft(wave * np.hanning(len(wave))))[int(hz * len(wave) / rate)])

    assert abs(20 * np.log10(level(settled, 500) / level(low[rate // 2:], 500))) < 1.0
    assert 20 * np.log10(level(settled, 4000) / level(high[rate // 2:], 4000)) < -40


@pytest.mark.slow
def test_the_model_no_longer_hears_a_tone_outside_the_band(cli, tone_bundle, tones, tmp_path):
    """The tone model names the 2.5 kHz clips `high`; heard only below 1 kHz they are not `high` any more."""
    table = tmp_path / "band.csv"
    args = ("predict", tones / "high", "--model", tone_bundle, "--unknown-below", "0", "--top-k", "1", "--format", "csv",
            "--no-progress")
    assert cli(*args, "--out", tmp_path / "all.csv").code == 0
    done = cli(*args, "--out", table, "--fmax", "1000")
    assert done.code == 0, done.err

    def clip_labels(path: Path) -> list[str]:
        with path.open(newline="") as handle:
            return [row["label_1"] for row in csv.DictReader(handle) if row["window"] == "clip"]

    assert clip_labels(tmp_path / "all.csv").count("high") >= 14 and clip_labels(table).count("high") <= 2
    refused = cli("predict", tones / "high", "--model", tone_bundle, "--fmin", "900", "--fmax", "800")
    assert refused.code != 0 and refused.err.startswith("audiocnn: error: --fmin: must be below fmax 800 Hz")
