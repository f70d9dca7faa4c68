"""`audiocnn predict`: windowing, streaming, every output format, bad files in a batch,
timelines and denoising — with a real model trained on the low/high tone task."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import soundfile as sf

from audiocnn import bundle
from audiocnn.features.windows import window_count, windows
from audiocnn.inference.denoise import reduce_noise
from audiocnn.inference.formats import RAVEN_COLUMNS
from audiocnn.inference.predictor import Predictor
from conftest import TONE_HZ, TONE_LABELS, tone_clip, uncalibrated_copy

RATE = 16_000


@pytest.fixture(scope="module")
def tone_model(tone_bundle, tmp_path_factory) -> Path:
    """A 1-second-window model that tells noise, 400 Hz and 2500 Hz tones apart (conftest's shared bundle),
    without its calibration: these tests check windows and formats label by label, so no window may
    turn `unknown` (that rule is tested in test_calibration.py)."""
    return uncalibrated_copy(tone_bundle, tmp_path_factory.mktemp("uncalibrated") / "model")


@pytest.fixture(scope="module")
def low_then_high(tmp_path_factory) -> Path:
    """3 s of the low tone, then 3.5 s of the high one (6.5 s: the last window is partial)."""
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("audio") / "low_then_high.wav"
    sf.write(path, np.concatenate([tone_clip(TONE_HZ["low"], 3.0, rng), tone_clip(TONE_HZ["high"], 3.5, rng)]), RATE)
    return path


# ----------------------------------------------------------------------------- windowing


@pytest.mark.parametrize("n, expected", [(1, 1), (999, 1), (1000, 1), (1001, 2), (1500, 2), (1501, 3), (2600, 5)])
def test_window_count_covers_the_signal(n, expected):
    assert window_count(n, 1000, 500) == expected


def test_windows_have_exact_starts_and_zero_padded_tails():
    signal = np.arange(1, 2601, dtype=np.float32)  # 2.6 windows of 1000 samples
    cut = list(windows([signal], 1000, 500))
    assert [start for start, _ in cut] == [0, 500, 1000, 1500, 2000]
    for start, samples in cut:
        assert len(samples) == 1000
        real = signal[start : start + 1000]
        np.testing.assert_array_equal(samples[: len(real)], real)
        assert not samples[len(real) :].any()  # padding is zeros


def test_a_short_clip_is_one_padded_window():
    [(start, samples)] = list(windows([np.ones(300, np.float32)], 1000, 500))
    assert start == 0 and samples[:300].all() and not samples[300:].any()


@pytest.mark.parametrize("block", [1, 7, 333, 1000, 5000])
def test_streamed_blocks_give_the_same_windows_as_the_whole_signal(block):
    signal = np.random.default_rng(0).standard_normal(4321).astype(np.float32)
    whole = list(windows([signal], 1000, 400))
    streamed = list(windows((signal[i : i + block] for i in range(0, len(signal), block)), 1000, 400))
    assert [s for s, _ in streamed] == [s for s, _ in whole]
    for (_, a), (_, b) in zip(streamed, whole):
        np.testing.assert_array_equal(a, b)


def test_a_hop_longer_than_the_window_skips_the_gaps():
    signal = np.arange(2500, dtype=np.float32)
    assert [s for s, _ in windows([signal], 1000, 1500)] == [0, 1500]


# ----------------------------------------------------------------------------- prediction


@pytest.mark.slow
def test_windows_of_a_long_file_are_labelled_by_what_sounds_there(tone_model, low_then_high):
    prediction = Predictor(bundle.load(tone_model)).predict(low_then_high)
    np.testing.assert_allclose(prediction.starts, np.arange(0, 6.0, 0.5))
    np.testing.assert_allclose(prediction.ends, np.minimum(prediction.starts + 1.0, 6.5))
    assert prediction.duration == pytest.approx(6.5)
    top1 = [prediction.labels[i] for i in prediction.probabilities.argmax(axis=1)]
    assert top1[:5] == ["low"] * 5  # windows inside the first 3 s
    assert top1[6:] == ["high"] * 6  # windows inside the last 3.5 s
    np.testing.assert_allclose(prediction.summary, prediction.probabilities.mean(axis=0))


@pytest.mark.slow
def test_one_predictor_classifies_files_at_once_from_threads_as_it_does_one_at_a_time(tone_model, low_then_high,
                                                                                     tmp_path):
    """The server shares one Predictor between requests: it must keep no per-file state."""
    short = tmp_path / "short_high.wav"
    sf.write(short, tone_clip(TONE_HZ["high"], 1.7, np.random.default_rng(5)), RATE)
    predictor = Predictor(bundle.load(tone_model), block_seconds=0.3)  # many blocks: threads interleave
    files = [low_then_high, short] * 4
    alone = [predictor.predict(path) for path in files]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(predictor.predict, files))
    for one, other in zip(alone, together):
        assert (one.path, one.duration) == (other.path, other.duration)
        np.testing.assert_array_equal(one.ends, other.ends)
        np.testing.assert_allclose(one.probabilities, other.probabilities, atol=1e-5)
    assert {round(p.duration, 2) for p in together} == {6.5, 1.7}


@pytest.mark.slow
def test_streaming_a_file_in_small_blocks_changes_nothing(tone_model, low_then_high):
    model = bundle.load(tone_model)
    whole = Predictor(model, block_seconds=3600).predict(low_then_high)
    streamed = Predictor(model, block_seconds=0.37).predict(low_then_high)
    np.testing.assert_array_equal(streamed.starts, whole.starts)
    np.testing.assert_allclose(streamed.probabilities, whole.probabilities, atol=1e-6)


@pytest.mark.slow
def test_window_and_hop_options_set_the_grid(cli, tone_model, low_then_high):
    result = cli("predict", low_then_high, "--model", tone_model, "--window", "2", "--hop", "1.5", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert [(r["start_s"], r["end_s"]) for r in rows[1:]] == [
        ("0.000", "2.000"), ("1.500", "3.500"), ("3.000", "5.000"), ("4.500", "6.500")]


# ----------------------------------------------------------------------------- output formats


def test_table_lists_the_file_its_summary_and_its_windows(cli, tone_model, low_then_high):
    result = cli("predict", low_then_high, "--model", tone_model, "--top-k", "1")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith(f"{low_then_high}  (6.5 s, 12 windows)")
    assert "whole file" in lines[1]
    assert lines[2].split()[:2] == ["0.0–1.0", "low"] and lines[13].split()[:2] == ["5.5–6.5", "high"]


def test_csv_has_a_clip_row_and_one_row_per_window(cli, tone_model, low_then_high):
    result = cli("predict", low_then_high, "--model", tone_model, "--format", "csv", "--top-k", "2")
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert list(rows[0]) == ["path", "window", "start_s", "end_s", "label_1", "probability_1", "label_2",
                             "probability_2"]
    assert rows[0]["window"] == "clip" and rows[0]["end_s"] == "6.500"
    assert [r["window"] for r in rows[1:]] == [str(i) for i in range(12)]
    for row in rows:
        assert float(row["probability_1"]) >= float(row["probability_2"])
        assert row["label_1"] != row["label_2"] and {row["label_1"], row["label_2"]} <= set(TONE_LABELS)


def test_json_holds_summary_windows_and_failures(cli, tone_model, low_then_high, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really")
    out = tmp_path / "result.json"
    result = cli("predict", low_then_high, bad, "--model", tone_model, "--format", "json", "--out", out)
    assert result.code == 1
    document = json.loads(out.read_text())
    [entry] = document["files"]
    assert entry["duration_s"] == pytest.approx(6.5) and len(entry["windows"]) == 12
    assert entry["windows"][0]["top"][0]["label"] == "low"
    assert sum(t["probability"] for t in entry["summary"]) == pytest.approx(1.0, abs=1e-4)
    assert document["failed"][0]["path"] == str(bad)


def test_raven_selection_table_parses_as_tab_separated_with_standard_columns(cli, tone_model, low_then_high):
    result = cli("predict", low_then_high, "--model", tone_model, "--format", "raven", "--min-confidence", "0.5")
    rows = list(csv.DictReader(io.StringIO(result.out), delimiter="\t"))
    assert list(rows[0]) == RAVEN_COLUMNS
    assert [int(r["Selection"]) for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        assert float(row["Begin Time (s)"]) < float(row["End Time (s)"]) <= 6.5
        assert row["High Freq (Hz)"] == "8000.0" and float(row["Confidence"]) >= 0.5 and row["Rank"] == "1"
    assert rows[0]["Label"] == "low" and rows[-1]["Label"] == "high"


@pytest.mark.slow
def test_min_confidence_drops_labels_and_empty_windows(cli, tone_model, low_then_high):
    everything = cli("predict", low_then_high, "--model", tone_model, "--format", "csv", "--top-k", "2")
    all_rows = list(csv.DictReader(io.StringIO(everything.out)))[1:]
    # The threshold in the widest gap between the printed probabilities: a value printed to 4 decimals
    # (0.9900 may be 0.98996) can then fall on one side only.
    printed = sorted({float(r["probability_1"]) for r in all_rows})
    gap = max(range(1, len(printed)), key=lambda i: printed[i] - printed[i - 1])
    threshold = (printed[gap - 1] + printed[gap]) / 2
    confident = cli("predict", low_then_high, "--model", tone_model, "--format", "csv", "--top-k", "2",
                    "--min-confidence", f"{threshold:.6f}")
    kept = list(csv.DictReader(io.StringIO(confident.out)))[1:]
    assert 0 < len(kept) == sum(float(r["probability_1"]) >= threshold for r in all_rows) < len(all_rows)
    assert all(r["label_2"] == "" for r in kept)


# ----------------------------------------------------------------------------- bad input


def test_a_folder_with_bad_files_reports_each_and_classifies_the_rest(cli, tone_model, tmp_path):
    folder = tmp_path / "mixed"
    rng = np.random.default_rng(2)
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "a_low.wav", tone_clip(TONE_HZ["low"], 1.0, rng), RATE)
    sf.write(folder / "sub" / "b_high.flac", tone_clip(TONE_HZ["high"], 2.0, rng, rate=44_100), 44_100)
    (folder / "c_empty.wav").write_bytes(b"")
    (folder / "d_text.ogg").write_text("this is not audio")
    truncated = folder / "e_truncated.wav"
    sf.write(truncated, tone_clip(TONE_HZ["low"], 1.0, rng), RATE)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    nan = np.full(RATE, np.nan, dtype=np.float32)
    sf.write(folder / "f_nan.wav", nan, RATE, subtype="FLOAT")

    result = cli("predict", folder, "--model", tone_model, "--format", "csv", "--top-k", "1")
    assert result.code == 1
    clips = {Path(r["path"]).name: r["label_1"] for r in csv.DictReader(io.StringIO(result.out)) if r["window"] == "clip"}
    assert clips == {"a_low.wav": "low", "b_high.flac": "high"}
    errors = [line for line in result.err.splitlines() if line.startswith("audiocnn: error:")]
    assert len(errors) == 4
    for name in ("c_empty.wav", "d_text.ogg", "e_truncated.wav", "f_nan.wav"):
        assert sum(name in line for line in errors) == 1
    assert "2 file(s) classified, 4 failed" in result.err


def test_usage_errors_are_clear(cli, tone_model, low_then_high, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli("predict", low_then_high, "--model", tone_model, "--format", "xml")
    assert exit_info.value.code == 2 and "invalid choice: 'xml'" in capsys.readouterr().err
    missing = cli("predict", low_then_high, "--model", tmp_path / "nope")
    assert missing.code == 1 and "no such model bundle" in missing.err
    old = tmp_path / "old"
    old.mkdir()
    config = json.loads((tone_model / "config.json").read_text()) | {"version": 99, "audiocnn": "9.0"}
    (old / "config.json").write_text(json.dumps(config))
    other_version = cli("predict", low_then_high, "--model", old)
    assert other_version.code == 1 and "bundle format version 99 (made by audiocnn 9.0)" in other_version.err
    bad_hop = cli("predict", low_then_high, "--model", tone_model, "--hop", "0")
    assert bad_hop.code == 1 and "error: --hop: should be greater than 0 (got 0.0)" in bad_hop.err
    short_hop = cli("predict", low_then_high, "--model", tone_model, "--hop", "0.01")
    assert short_hop.code == 1 and "error: --hop: must be at least 0.1 s, a tenth of the 1 s window" in short_hop.err
    too_strong = cli("predict", low_then_high, "--model", tone_model, "--denoise-strength", "2")
    assert too_strong.code == 1 and "--denoise-strength: should be less than or equal to 1" in too_strong.err


# ----------------------------------------------------------------------------- timeline, denoise


@pytest.mark.slow
def test_timeline_lanes_show_each_label_where_its_windows_are(tone_model, low_then_high):
    """Lanes: one per label, most probable on top; each window's cell spans its stretch of the
    recording, and the spectrogram below covers the same 6.5 s."""
    from audiocnn.inference.overview import SpectrogramCollector
    from audiocnn.viz.timeline import timeline_figure

    collector = SpectrogramCollector(RATE, 6.5)
    prediction = Predictor(bundle.load(tone_model)).predict(low_then_high, on_block=collector)
    top, bottom = timeline_figure(prediction, collector).axes[:2]  # lanes, spectrogram (then their colour bars)
    lanes = [tick.get_text() for tick in top.get_yticklabels()]
    assert sorted(lanes) == sorted(TONE_LABELS) and lanes[-1] in {"low", "high"}  # the top lane: the surest label
    (mesh,) = top.collections
    cells = mesh.get_array().reshape(len(lanes), -1)  # lane × window probabilities as drawn
    assert cells.shape[1] == 12
    low, high = lanes.index("low"), lanes.index("high")
    assert (cells[low, :5] > 0.5).all() and (cells[high, 6:] > 0.5).all()  # low first 3 s, high after
    edges = mesh.get_coordinates()[0, :, 0]  # where each window's cell starts and ends, in seconds
    assert edges[0] == 0 and edges[-1] == pytest.approx(6.5) and np.all(np.diff(edges) > 0)
    assert edges[1] == pytest.approx(0.75)  # halfway between the centres of windows 0–1 s and 0.5–1.5 s
    assert bottom.get_xlim() == pytest.approx((0, 6.5)) and collector.seconds == pytest.approx(6.5)
    assert bottom.images[0].get_extent()[1] == pytest.approx(6.5)


@pytest.mark.slow
def test_timeline_option_writes_a_picture(cli, tone_model, low_then_high, tmp_path):
    png = tmp_path / "timeline.png"
    result = cli("predict", low_then_high, "--model", tone_model, "--timeline", png)
    assert result.code == 0, result.err
    image = mpimg.imread(png)
    assert image.shape[0] > 400 and image.shape[1] > 800 and image[..., :3].std() > 0.1


@pytest.mark.slow
def test_timelines_for_several_files_go_to_a_folder(cli, tone_model, low_then_high, tmp_path):
    copy = tmp_path / "copy.wav"
    copy.write_bytes(low_then_high.read_bytes())
    result = cli("predict", low_then_high, copy, "--model", tone_model, "--timeline", tmp_path / "lanes")
    assert result.code == 0, result.err
    assert sorted(p.name for p in (tmp_path / "lanes").iterdir()) == ["copy.timeline.png", "low_then_high.timeline.png"]
    one_picture = cli("predict", low_then_high, copy, "--model", tone_model, "--timeline", tmp_path / "both.png")
    assert one_picture.code != 0 and "--timeline" in one_picture.err and "2 files" in one_picture.err
    assert not (tmp_path / "both.png").exists() and one_picture.out == ""  # refused before any work


def test_denoise_quiets_the_gaps_and_keeps_the_events():
    """Spectral gating's promise: the background between events drops much more than the events."""
    rng = np.random.default_rng(3)
    t = np.arange(6 * RATE) / RATE
    bursts = (t % 2.0) < 0.5  # 0.5 s tone bursts every 2 s
    noisy = (0.3 * np.sin(2 * np.pi * 2500 * t) * bursts + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    clean = reduce_noise(noisy, RATE, strength=1.0)
    assert clean.dtype == np.float32 and clean.shape == noisy.shape
    inside, gaps = bursts & ((t % 2.0) > 0.1), ~bursts & ((t % 2.0) > 0.7)  # away from the edges

    def db(x: np.ndarray) -> float:
        return float(10 * np.log10(np.mean(x**2)))

    # The gating mask also turns the events down (by ~13 dB here), but far less than the gaps:
    # the event-to-background ratio is what improves.
    assert db(clean[inside]) - db(clean[gaps]) > db(noisy[inside]) - db(noisy[gaps]) + 10
    tone = 0.3 * np.sin(2 * np.pi * 2500 * t) * bursts
    assert np.corrcoef(clean, tone)[0, 1] > np.corrcoef(noisy, tone)[0, 1] + 0.02
    # The default strength removes half the noise: the gaps drop by about 6 dB.
    half = reduce_noise(noisy, RATE)
    assert -7.5 < db(half[gaps]) - db(noisy[gaps]) < -4.5
    assert reduce_noise(np.ones(100, np.float32), RATE).shape == (100,)  # shorter than its FFT


@pytest.mark.slow
def test_denoise_option_changes_what_the_model_hears(cli, tone_model, tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "noisy.wav"
    sf.write(path, tone_clip(TONE_HZ["low"], 3.0, rng) + 0.2 * rng.standard_normal(3 * RATE).astype(np.float32), RATE)
    plain = cli("predict", path, "--model", tone_model, "--format", "json")
    denoised = cli("predict", path, "--model", tone_model, "--format", "json", "--denoise")
    assert plain.code == denoised.code == 0, denoised.err
    p_plain, p_denoised = (json.loads(r.out)["files"][0]["windows"][0]["top"][0]["probability"]
                           for r in (plain, denoised))
    assert abs(p_plain - p_denoised) > 1e-3


def _predict_in_a_fresh_interpreter(args: list[str], watched: tuple[str, ...]) -> subprocess.Popen:
    """Start `audiocnn predict ARGS` in a new interpreter that prints its exit code and which `watched`
    modules it imported (started, not awaited: the two checks below run side by side)."""
    code = ("import sys; from audiocnn.cli import main; "
            f"rc = main(['predict', *{args!r}, '--no-progress', '--format', 'csv', '--out', '/dev/null']); "
            f"print(rc, sorted(m for m in {watched!r} if m in sys.modules))")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _printed(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    return out.strip().splitlines()[-1]


@pytest.mark.slow
def test_predict_does_not_import_what_it_does_not_use(tone_model, low_then_high):
    """Start-up is part of every prediction: scikit-learn (1.5 s) and matplotlib stay unimported, and so
    does librosa (its numba and llvmlite took 200 MB of a 1-hour run's 1.5 GB peak)."""
    from audiocnn.bundled import default_model

    Predictor(bundle.load(tone_model))  # its ONNX graph exported and checked, as a first run leaves it
    # a checked graph replaces the CNN: timm and torchvision (about 1.5 s, 2 s with the weights) are not needed
    float_run = _predict_in_a_fresh_interpreter([str(low_then_high), "--model", str(tone_model)],
                                                ("timm", "torchvision", "sklearn", "matplotlib", "lightning",
                                                 "captum", "librosa", "numba"))
    # nor with the 8-bit graph
    int8_run = _predict_in_a_fresh_interpreter([str(low_then_high), "--model", str(default_model()), "--runtime",
                                                "int8"], ("timm", "torchvision", "sklearn", "matplotlib", "librosa", "numba"))
    assert (_printed(float_run), _printed(int8_run)) == ("0 []", "0 []")


@pytest.mark.slow
def test_weights_changed_in_place_are_never_run_by_the_graph_checked_for_the_old_ones(tone_model, low_then_high,
                                                                                     tmp_path):
    """A checked ONNX graph is opened without building the CNN, found by the bundle files' bytes: a model
    retrained into the same folder must get a graph of its own, checked against its own weights."""
    import torch
    from safetensors.torch import load_file, save_file

    from audiocnn.inference.options import PredictOptions

    folder = Path(shutil.copytree(tone_model, tmp_path / "model"))
    before = Predictor(bundle.load(folder, backbone=False)).predict(low_then_high).logits  # graph made, checked
    weights = load_file(folder / "model.safetensors")
    save_file({name: tensor * 0.5 if name.endswith("weight") and tensor.dim() > 1 else tensor
               for name, tensor in weights.items()}, folder / "model.safetensors")
    after = Predictor(bundle.load(folder, backbone=False)).predict(low_then_high).logits
    by_torch = Predictor(bundle.load(folder), PredictOptions(runtime="torch")).predict(low_then_high).logits
    torch.testing.assert_close(torch.from_numpy(after), torch.from_numpy(by_torch), atol=1e-3, rtol=1e-3)
    assert not np.allclose(before, after, atol=1e-2)


# ----------------------------------------------------------------------------- outputs


def test_an_output_that_is_an_input_is_refused_before_anything_is_written(cli, tone_model, low_then_high, tmp_path):
    recording = tmp_path / "in" / "rec.wav"
    recording.parent.mkdir()
    recording.write_bytes(low_then_high.read_bytes())
    before = recording.read_bytes()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "link.csv").symlink_to(recording)
    for out in (recording, tmp_path / "in" / ".." / "in" / "rec.wav", tmp_path / "elsewhere" / "link.csv"):
        for inputs in ([recording], [recording.parent]):  # the file itself, or the folder holding it
            result = cli("predict", *inputs, "--model", tone_model, "--format", "csv", "--out", out)
            assert result.code == 1 and "is one of the input recordings" in result.err and result.out == ""
            assert recording.read_bytes() == before
    folder = cli("predict", recording, "--model", tone_model, "--out", tmp_path / "elsewhere")
    assert folder.code == 1 and "is a folder" in folder.err
    assert not list(tmp_path.rglob("*.partial"))


@pytest.mark.slow
def test_two_runs_writing_the_same_output_never_mix(tone_model, low_then_high, tmp_path):
    """Each run writes a temporary file and renames it: the result is one run's whole output."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i in range(6):
        (folder / f"rec{i}.wav").write_bytes(low_then_high.read_bytes())
    out = tmp_path / "result.csv"  # CSV rows are written as files finish: the runs overlap while writing
    command = [sys.executable, "-m", "audiocnn", "predict", str(folder), "--model", str(tone_model), "--format",
               "csv", "--out", str(out), "--no-progress", "--runtime", "torch", "--hop", "0.1"]
    runs = [subprocess.Popen([*command, "--top-k", k], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for k in ("3", "1")]  # two different outputs, so a mix of them shows
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err[-2000:]
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0][:4] == ["path", "window", "start_s", "end_s"] and len({len(row) for row in rows}) == 1
    assert sum(row[1] == "clip" for row in rows) == 6 and len(rows) == 1 + 6 * (1 + 56)  # one run's whole output
    assert not list(tmp_path.glob(".*.partial"))


def test_out_into_a_device_writes_into_it_and_leaves_it_a_device(cli, tone_model, low_then_high, tmp_path):
    """`--out /dev/null` discards the output: renaming a finished file onto it (as regular files are
    written) would replace the machine's /dev/null with a file. Checked through a link in tmp_path,
    so a failure replaces the link, never /dev/null itself."""
    discard = tmp_path / "discard"
    discard.symlink_to(os.devnull)
    result = cli("predict", low_then_high, "--model", tone_model, "--format", "csv", "--out", discard, "--no-progress")
    assert result.code == 0, result.err
    assert discard.is_symlink() and stat.S_ISCHR(discard.stat().st_mode) and not list(tmp_path.glob(".*.partial"))


@pytest.mark.slow
def test_names_and_labels_cannot_break_a_format_or_act_on_its_reader(cli, tone_model, low_then_high, tmp_path,
                                                                     monkeypatch):
    """A recording's name and a downloaded bundle's labels are outside text: no format may let them
    split a row, start a spreadsheet formula or send escape sequences to the terminal."""
    hostile = ["=1+1", "@SUM(A1)", '-2\r\nx,\t"q"\x1b]0;pwned\x07']
    model = Path(shutil.copytree(tone_model, tmp_path / "model"))
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"labels": hostile}))
    name = '=HYPERLINK("x")\t\r\nrow,\x1b[2J.wav'
    (tmp_path / name).write_bytes(low_then_high.read_bytes())
    (tmp_path / "bad\x1b[31m.wav").write_bytes(b"RIFF not audio")
    monkeypatch.chdir(tmp_path)  # relative names: the cell starts with the name itself

    def run(*options: str):
        return cli("predict", name, "--model", model, "--top-k", "3", *options)

    rows = list(csv.reader(io.StringIO(run("--format", "csv").out)))
    assert len(rows) == 1 + 1 + 12 and {len(row) for row in rows} == {10}
    assert rows[1][0] == "'" + name  # one ' in front; the rest exactly the name
    assert {rows[1][4], rows[1][6], rows[1][8]} == {"'" + label for label in hostile}

    raven = list(csv.reader(io.StringIO(run("--format", "raven").out), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert raven[0] == RAVEN_COLUMNS and {len(row) for row in raven} == {len(RAVEN_COLUMNS)}
    assert raven[1][7] == "'" + name.replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")

    document = json.loads(run("--format", "json").out)
    assert document["files"][0]["path"] == name and {t["label"] for t in document["files"][0]["summary"]} == set(hostile)

    table = cli("predict", name, "bad\x1b[31m.wav", "--model", model)
    for stream in (table.out, table.err):
        assert "\x1b" not in stream and "\x07" not in stream and "\r" not in stream
    assert "\\x1b]0;pwned\\x07" in table.out and "bad\\x1b[31m.wav" in table.err
