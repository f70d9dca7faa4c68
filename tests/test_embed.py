"""`audiocnn embed`: per-window embeddings as a Parquet table that pandas reads (issue 31)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from audiocnn import audio
from conftest import REPO

EXAMPLES = REPO / "examples"


@pytest.mark.slow
def test_embed_writes_a_row_per_window_that_pandas_reads_and_reports_bad_files(cli, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in ("dog-bark.wav", "thunderstorm-thunder.flac"):
        shutil.copy(EXAMPLES / name, folder / name)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    out = tmp_path / "embeddings.parquet"
    done = cli("embed", folder, "--out", out, "--bandwidth", 8000, "--no-progress")
    assert done.code == 1 and "broken.wav" in done.err and "Traceback" not in done.err  # reported, the rest written
    table = pd.read_parquet(out)
    thunder_seconds = audio.info(folder / "thunderstorm-thunder.flac").duration
    thunder = table[table.path.str.endswith("thunder.flac")]
    assert len(thunder) == 1 + int(np.ceil((thunder_seconds - 3) / 3))  # 3 s windows, a window apart
    assert thunder.start_s.tolist() == [3.0 * k for k in range(len(thunder))]
    assert thunder.end_s.iloc[-1] == pytest.approx(thunder_seconds, abs=1e-3)
    dog = table[table.path.str.endswith("dog-bark.wav")]
    assert len(dog) == 1 and dog.end_s.iloc[0] == pytest.approx(audio.info(folder / "dog-bark.wav").duration, abs=1e-3)
    vectors = np.stack(table.embedding)
    assert vectors.shape == (len(table), 1024) and vectors.dtype == np.float32 and np.isfinite(vectors).all()
    meta = json.loads(pq.read_schema(out).metadata[b"audiocnn"])
    assert meta["backbone"] == "birdnet-v2.4" and "CC BY-NC-SA 4.0" in meta["licence"] and meta["hop_seconds"] == 3.0
    assert f"{len(table)} window(s) of 2 recording(s)" in done.out and "1 failed" in done.out


@pytest.mark.slow
def test_a_bundles_cnn_embeds_with_its_own_window_and_hop(cli, tmp_path):
    out = tmp_path / "bundle.parquet"
    done = cli("embed", EXAMPLES / "thunderstorm-thunder.flac", "--out", out, "--hop", 2.5, "--model",
               REPO / "src" / "audiocnn" / "bundled" / "esc50-mobilenetv2", "--no-progress")
    assert done.code == 0, done.err
    table = pd.read_parquet(out)
    assert table.start_s.tolist()[:3] == [0.0, 2.5, 5.0]  # the bundle's 5 s windows, every 2.5 s
    assert np.stack(table.embedding).shape == (len(table), 1280)  # MobileNetV2's pooled features
    assert json.loads(pq.read_schema(out).metadata[b"audiocnn"])["backbone"] == "bundle:esc50-mobilenetv2"


def test_a_bundles_pre_logits_are_what_its_class_layer_reads():
    """The bundle's embedding, through its own class layer, gives the logits `predict` scores."""
    import torch

    from audiocnn import bundle
    from audiocnn.bundled import default_model
    from audiocnn.inference.embeddings import BundleEmbedder

    embedder = BundleEmbedder(bundle.load(default_model()))
    wave = audio.fix_length(audio.load(EXAMPLES / "dog-bark.wav", embedder.rate), embedder.window)[None]
    with torch.inference_mode():
        logits = embedder.model(torch.from_numpy(wave)).numpy()
        through_head = embedder.model.backbone.get_classifier()(torch.from_numpy(embedder.embed(wave))).numpy()
    np.testing.assert_allclose(through_head, logits, atol=1e-4)


@pytest.mark.slow
def test_a_user_sees_only_the_result_line(tmp_path):
    """A real process: LiteRT's C++ note on stderr (`INFO: Created TensorFlow Lite XNNPACK delegate`)
    is not shown; the command prints its one line and nothing else."""
    out = tmp_path / "e.parquet"
    done = subprocess.run([sys.executable, "-m", "audiocnn", "embed", str(EXAMPLES / "dog-bark.wav"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.strip().endswith("1 window(s) of 1 recording(s), 1024-d birdnet-v2.4 embeddings")


def test_embed_refuses_what_cannot_work_in_one_line(cli, tmp_path):
    clip = EXAMPLES / "dog-bark.wav"
    short_hop = cli("embed", clip, "--out", tmp_path / "e.parquet", "--hop", 0.01)
    assert short_hop.code == 1 and "error: --hop: must be at least 0.3 s, a tenth of the 3 s window" in short_hop.err
    not_parquet = cli("embed", clip, "--out", tmp_path / "e.csv")
    assert not_parquet.code == 1 and "give a .parquet file" in not_parquet.err
    both = cli("embed", clip, "--out", tmp_path / "e.parquet", "--bandwidth", 8000, "--model", tmp_path)
    assert both.code == 1 and "--bandwidth is BirdNET's" in both.err
    assert not list(tmp_path.iterdir())  # nothing written, not even half a table
