"""Review snippets (`predict --snippets DIR`): any legal recording name gives a snippet, and a snippet
that cannot be written costs a warning line, never the batch and its results."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiocnn.inference.snippets import MAX_NAME_BYTES, fitted, label_folder

#: Legal names (at most 255 bytes) whose snippet names, with `__0.00-1.00s__0.987.wav` after them, were not.
LONG = "a" * 236 + ".wav"  # 240 characters
WIDE = "鳥" * 78 + ".wav"  # 82 characters, 238 bytes of UTF-8


@pytest.fixture
def recordings(tones, tmp_path) -> Path:
    """Three one-second tone recordings, two of them named as long as a file system allows."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name, source in ((LONG, "high/high0.wav"), (WIDE, "low/low0.wav"), ("short.wav", "high/high1.wav")):
        shutil.copy(tones / source, folder / name)
    return folder


def test_long_names_are_cut_with_a_digest_and_stay_apart_and_the_same():
    tail = "__0.00-1.00s__0.987.wav"
    for name in (LONG, WIDE, "x" * 400):
        short = fitted(name, tail)
        assert len(os.fsencode(short)) <= MAX_NAME_BYTES and short.endswith(tail)
        assert re.fullmatch(r"(.+)~[0-9a-f]{16}", short.removesuffix(tail)) and name.startswith(short.split("~")[0])
        assert fitted(name, tail) == short  # the same on the next run: a resumed batch finds it
    assert fitted("a" * 300 + "1", tail) != fitted("a" * 300 + "2", tail)  # a shared start is not a shared name
    assert fitted("short.wav", tail) == "short.wav" + tail
    assert len(os.fsencode(label_folder("ü" * 200))) <= MAX_NAME_BYTES  # labels may be 200 characters


@pytest.mark.slow
def test_recordings_with_the_longest_legal_names_get_snippets_and_the_batch_its_table(tone_bundle, recordings,
                                                                                       tmp_path):
    """A 240-character recording name once stopped the whole batch (File name too long) and its `--out`
    table was lost; now each recording gets its snippet, named within the limit, and the table is whole."""
    table, snippets = tmp_path / "results.csv", tmp_path / "snippets"
    done = subprocess.run([sys.executable, "-m", "audiocnn", "predict", recordings, "--model", tone_bundle,
                           "--runtime", "torch", "--unknown-below", "0", "--format", "csv", "--out", table,
                           "--snippets", snippets, "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "audiocnn: error" not in done.stderr and "audiocnn: warning" not in done.stderr
    with table.open(newline="") as handle:
        assert {Path(row["path"]).name for row in csv.DictReader(handle)} == {LONG, WIDE, "short.wav"}
    written = sorted(snippets.rglob("*.wav"))
    assert len(written) == 3 and all(len(os.fsencode(p.name)) <= MAX_NAME_BYTES for p in written)
    names = {p.name for p in written}
    assert any(name.startswith("short.wav__") for name in names)
    assert any(name.startswith("a" * 150) and "~" in name for name in names)
    assert any(name.startswith("鳥" * 40) and "~" in name for name in names)


@pytest.mark.filterwarnings("default::audiocnn.errors.AudiocnnWarning")  # shown as the CLI shows it
def test_a_snippet_that_cannot_be_written_is_one_warning_line_and_the_rest_goes_on(cli, tone_bundle, recordings,
                                                                                    tmp_path):
    """A label's folder that is a file (or a full disk) fails that snippet alone: one warning line naming
    it; the other labels' snippets and every recording's result are written, and the exit code is 0."""
    table, snippets = tmp_path / "results.csv", tmp_path / "snippets"
    snippets.mkdir()
    (snippets / "high").write_text("a file where the folder of `high` snippets would go")
    done = cli("predict", recordings, "--model", tone_bundle, "--runtime", "torch", "--unknown-below", "0",
               "--format", "csv", "--out", table, "--snippets", snippets, "--no-progress")
    assert done.code == 0, done.err
    with table.open(newline="") as handle:
        labels = [row["label_1"] for row in csv.DictReader(handle) if row["window"] != "clip"]  # one window each
    assert len(labels) == 3 and labels.count("high") >= 1 and labels.count("high") < 3
    warnings = [line for line in done.err.splitlines() if line.startswith("audiocnn: warning:")]
    assert len(warnings) == labels.count("high"), done.err
    assert all(f"{snippets / 'high'}/" in w and "snippet not written" in w for w in warnings)
    assert "Traceback" not in done.err and "audiocnn: error" not in done.err
    assert sorted(p.parent.name for p in snippets.rglob("*.wav")) == sorted(x for x in labels if x != "high")


@pytest.mark.slow
def test_snippets_carry_the_padding_asked_for_cut_at_the_recordings_ends(cli, tone_bundle, tones, tmp_path):
    """Issue 33: snippets had no padding around them, so a call was judged without what came before it."""
    waves = [sf.read(tones / "high" / f"high{i}.wav", dtype="float32")[0] for i in range(4)]
    long = tmp_path / "four.wav"
    sf.write(long, np.concatenate(waves), 16_000)
    snippets = tmp_path / "snippets"
    done = cli("predict", long, "--model", tone_bundle, "--runtime", "torch", "--unknown-below", "0", "--hop", "1",
               "--snippets", snippets, "--snippet-pad", "0.5", "--no-progress")
    assert done.code == 0, done.err
    lengths = {}
    for path in snippets.rglob("*.wav"):
        start, end = map(float, path.name.split("__")[1].removesuffix("s").split("-"))
        lengths[start] = (sf.info(path).duration, min(4.0, end + 0.5) - max(0.0, start - 0.5))
    assert len(lengths) >= 3 and all(abs(heard - wanted) < 0.01 for heard, wanted in lengths.values()), lengths
    assert any(abs(heard - 2.0) < 0.01 for heard, _ in lengths.values())  # a window inside: half a second either side
    refused = cli("predict", long, "--model", tone_bundle, "--snippets", snippets, "--snippet-pad", "-1")
    assert refused.code != 0 and "--snippet-pad must be 0-60 s" in refused.err
