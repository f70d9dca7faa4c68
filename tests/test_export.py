"""`audiocnn export`: the bundled model as one ONNX graph (frontend included), checked on the real examples."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from audiocnn import audio, bundle
from audiocnn.bundled import default_model
from audiocnn.cli import main
from audiocnn.features import FRONTENDS, create_frontend
from audiocnn.features.windows import windows
from audiocnn.inference.export import INPUT, MAX_DIFFERENCE, OPSET, run, to_onnx
from audiocnn.inference.onnx_frontend import MAX_DB_DIFFERENCE, check_signal, exportable
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor
from audiocnn.inference.runtimes import onnx_session as session
from conftest import REPO

EXAMPLES = REPO / "examples"
RECORDINGS = sorted(p for p in EXAMPLES.iterdir() if p.suffix in {".wav", ".flac", ".ogg"})


def _cli(*args: object) -> tuple[int, str, str]:
    """`audiocnn ARGS` in-process, for module-scoped fixtures (the `cli` fixture is per test)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def model() -> bundle.Bundle:
    return bundle.load(default_model())


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, str]:
    """The bundled model exported (float), checked on the examples: the path and what the command printed."""
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    code, out, err = _cli("export", "--out", path, "--check", EXAMPLES)
    assert code == 0, err
    return path, out


@pytest.fixture(scope="module")
def exported_int8(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("export") / "model.int8.onnx"
    code, out, err = _cli("export", "--out", path, "--int8", "--check", EXAMPLES)
    assert code == 0, err
    return path, out


def _windows(path: Path, model: bundle.Bundle) -> np.ndarray:
    """The windows `audiocnn predict` cuts from a recording (hop: half the window)."""
    size = round(model.clip_seconds * model.sample_rate)
    return np.stack([w for _, w in windows(audio.stream(path, model.sample_rate), size, size // 2)])


@pytest.mark.slow
def test_the_float_graph_gives_the_torch_models_probabilities_on_real_recordings(exported, model):
    path, printed = exported
    waves = np.concatenate([_windows(recording, model) for recording in RECORDINGS])
    with torch.no_grad():
        reference = torch.softmax(model.model(torch.from_numpy(waves)) / model.temperature, dim=1).numpy()
    assert np.abs(run(path, waves) - reference).max() <= MAX_DIFFERENCE
    assert f"{path}: waveform (batch, 80000) = 5 s at 16000 Hz -> probabilities (batch, 50); float32" in printed
    assert "checked on 10 windows of 8 recordings: the float graph's probabilities are within" in printed


def test_the_graph_carries_what_a_device_needs(exported, model):
    graph = onnx.load(str(exported[0]))
    meta = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(meta["labels"]) == model.labels
    assert int(meta["sample_rate"]) == 16_000 and int(meta["window_samples"]) == 80_000
    assert float(meta["window_seconds"]) == 5.0 and int(meta["hop_samples"]) == 40_000
    assert json.loads(meta["frontend"]) == model.model.frontend.config()
    assert json.loads(meta["normalisation"]) == {"mean": model.model.mean.flatten().tolist(),
                                                 "std": model.model.std.flatten().tolist()}
    assert json.loads(meta["calibration"]) == {"temperature": model.temperature, "unknown_below": model.unknown_below}
    assert meta["bundle"] == "esc50-mobilenetv2" and meta["precision"] == "float32" and meta["audiocnn_version"]
    assert [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    (waveform,), (output,) = graph.graph.input, graph.graph.output
    assert waveform.name == INPUT and output.name == "probabilities"
    assert [d.dim_param or d.dim_value for d in waveform.type.tensor_type.shape.dim] == ["batch", 80_000]
    assert [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim] == ["batch", 50]


def test_any_batch_size_gives_each_window_the_same_probabilities(exported, model):
    waves = check_signal(80_000, 16_000, batch=3).numpy()
    together = run(exported[0], waves, batch=3)
    alone = run(exported[0], waves, batch=1)
    assert np.abs(together - alone).max() < 1e-6
    assert np.allclose(together.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_the_8_bit_graph_is_the_bundles_8_bit_model_and_agrees_with_the_float_graph(exported, exported_int8, model):
    """Its backbone is the bundle's own (`audiocnn quantize`), so it gives what `predict --runtime int8` gives;
    its top-1 agrees with the float graph's on the examples (8/8 files and 10/10 windows when written)."""
    path, printed = exported_int8
    assert path.stat().st_size < 0.5 * exported[0].stat().st_size
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["precision"] == "int8" and json.loads(meta["int8"])["calibration_clips"] == 256
    assert "8-bit graph: top-1 agrees with the float graph on" in printed and "calibration clips" in printed
    predictor = Predictor(bundle.load(default_model(), backbone=False), PredictOptions(runtime="int8"))
    graphs = session(path, memory_arena=True), session(exported[0], memory_arena=True)
    files = windows_agree = n_windows = 0
    for recording in RECORDINGS:
        waves = _windows(recording, model)
        eight_bit, full = (run(graph, waves) for graph in graphs)
        assert np.abs(eight_bit - predictor.predict(recording).probabilities).max() < 5e-3
        windows_agree += int((eight_bit.argmax(1) == full.argmax(1)).sum())
        n_windows += len(waves)
        files += int(eight_bit.mean(0).argmax() == full.mean(0).argmax())
    print(f"int8 vs float graph, top-1: {files}/{len(RECORDINGS)} files, {windows_agree}/{n_windows} windows")
    assert files >= len(RECORDINGS) - 1 and windows_agree >= 0.8 * n_windows


@pytest.mark.parametrize("kind", sorted(k for k in FRONTENDS if FRONTENDS[k].picture))
@pytest.mark.slow
def test_every_frontend_runs_in_onnx_as_in_torch(kind):
    """The frontends' export copies (STFT as matrix products, PCEN's smoother as one) give the torch images."""
    frontend = create_frontend({"kind": kind, "sample_rate": 22_050})
    n_samples = 22_050
    graph = to_onnx(exportable(frontend, n_samples), check_signal(n_samples, 22_050, 2), OPSET, "images")
    waves = check_signal(n_samples, 22_050, 3)
    with torch.no_grad():
        expected = frontend(waves).numpy()
    assert np.abs(run(graph.SerializeToString(), waves.numpy()) - expected).max() <= MAX_DB_DIFFERENCE


def test_bad_model_or_output_is_one_line_error(tmp_path, cli, model):
    missing = cli("export", "--model", tmp_path / "nope", "--out", tmp_path / "m.onnx")
    assert missing.code == 1 and missing.err.count("\n") == 1 and "no such model bundle" in missing.err
    folder = cli("export", "--out", tmp_path)
    assert folder.code == 1 and folder.err.count("\n") == 1 and "is a folder; give a file name" in folder.err
    weights = cli("export", "--model", default_model(), "--out", default_model() / "model.safetensors")
    assert weights.code == 1 and "is a file of the model bundle" in weights.err
    plain = Path(shutil.copytree(default_model(), tmp_path / "plain", ignore=shutil.ignore_patterns("*int8*")))
    no_int8 = cli("export", "--model", plain, "--out", tmp_path / "m.onnx", "--int8")
    assert no_int8.code == 1 and no_int8.err.count("\n") == 1 and "audiocnn quantize" in no_int8.err
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*partial"))


#: What pip says when it cannot reach a package index (then the example cannot be installed here).
_OFFLINE = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
            "Network is unreachable", "ConnectTimeoutError", "ProxyError", "Max retries exceeded")


@pytest.mark.slow
def test_the_standalone_example_classifies_as_predict_does(exported, tmp_path, cli):
    """examples/onnx_classify.py in a fresh venv holding only onnxruntime, soundfile and numpy (the pins of
    requirements.txt) names the same top class for every example as `audiocnn predict`, with probabilities
    close to its (the resampler differs: numpy's FFT against soxr).

    The venv gets no pip of its own (installing one took seconds) where this environment has one to
    install with (`pip --python`); `audiocnn predict` runs here meanwhile."""
    pins = re.findall(r"^((?:onnxruntime|soundfile|numpy)==\S+)", (REPO / "requirements.txt").read_text(), re.M)
    assert len(pins) == 3, pins
    venv = tmp_path / "venv"
    lend_pip = importlib.util.find_spec("pip") is not None
    subprocess.run([sys.executable, "-m", "venv", *(["--without-pip"] if lend_pip else []), venv], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python] if lend_pip else [python, "-m", "pip"]
    install = subprocess.Popen([*pip, "install", "--quiet", *pins], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        predicted = cli("predict", *RECORDINGS, "--format", "json", "--no-progress")
    finally:
        stdout, stderr = install.communicate(timeout=1200)
    if install.returncode != 0:
        if any(marker in stdout + stderr for marker in _OFFLINE):
            pytest.skip(f"pip cannot reach a package index: {stderr.strip().splitlines()[-1]}")
        pytest.fail(f"pip install {' '.join(pins)} failed:\n{stderr[-3000:]}")
    extra = subprocess.run([python, "-c", "import importlib.util as u; print([m for m in ('torch', 'audiocnn', 'soxr', "
                            "'scipy', 'librosa') if u.find_spec(m)])"], capture_output=True, text=True, check=True)
    assert extra.stdout.strip() == "[]"  # only what the example says it needs
    done = subprocess.run([python, EXAMPLES / "onnx_classify.py", exported[0], *RECORDINGS], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = dict(re.findall(r"^(.+?): \S+ \((\S+ [\d.]+)", done.stdout, re.M))
    assert predicted.code == 0, predicted.err
    for item in json.loads(predicted.out)["files"]:
        label, probability = lines[item["path"]].split()
        expected = next(guess for guess in item["summary"] if guess["probability"] is not None)
        assert label == expected["label"], item["path"]
        assert abs(float(probability) - expected["probability"]) < 0.05, item["path"]


def _bundle_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _alias_link(b: Path, tmp: Path) -> Path:
    (tmp / "alias").symlink_to(b)
    return tmp / "alias" / "int8.json"


def _hard_link(b: Path, tmp: Path) -> Path:
    os.link(b / "int8.json", tmp / "hard.json")
    return tmp / "hard.json"


def _symlink(b: Path, tmp: Path) -> Path:
    (tmp / "link.onnx").symlink_to(b / "model.int8.onnx")
    return tmp / "link.onnx"


@pytest.mark.parametrize("target", [
    lambda b, tmp: b / "config.json",
    lambda b, tmp: b / "model.safetensors",
    lambda b, tmp: b / "model.int8.onnx",
    lambda b, tmp: b / "int8.json",
    lambda b, tmp: b / "MODEL_CARD.md",
    _alias_link,  # another spelling of the folder
    _hard_link,  # the same inode under another name
    _symlink,
], ids=["config", "weights", "int8-graph", "int8-record", "card", "alias", "hard-link", "symlink"])
def test_no_file_of_the_bundle_can_be_the_exports_out(cli, tmp_path, target):
    """`export --out BUNDLE/int8.json` wrote a graph over the bundle's 8-bit record, and `predict --runtime
    int8` then gave a traceback. Every file of the bundle, by name or by inode, is refused before any work."""
    model = Path(shutil.copytree(default_model(), tmp_path / "model"))
    (tmp_path / "outside").mkdir()
    before = _bundle_bytes(model)
    out = target(model, tmp_path / "outside")
    refused = cli("export", "--model", model, "--out", out, "--int8")
    assert refused.code == 1 and refused.err.count("\n") == 1 and "Traceback" not in refused.err
    assert refused.err.startswith(f"audiocnn: error: --out {out}: is a file of the model bundle {model} (")
    assert _bundle_bytes(model) == before


def test_the_bundle_folder_and_its_missing_files_are_refused_as_out_too(cli, tmp_path):
    """A bundle without an 8-bit graph yet: writing BUNDLE/int8.json would still plant a record in it."""
    plain = Path(shutil.copytree(default_model(), tmp_path / "plain", ignore=shutil.ignore_patterns("*int8*")))
    record = cli("export", "--model", plain, "--out", plain / "int8.json")
    assert record.code == 1 and f"is a file of the model bundle {plain} (int8.json)" in record.err
    folder = cli("export", "--model", plain, "--out", plain)
    assert folder.code == 1 and folder.err.count("\n") == 1
    assert folder.err.strip() == f"audiocnn: error: --out {plain}: is the folder of the model bundle {plain}; give a " \
                                 "file outside it"
    assert sorted(p.name for p in plain.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]


@pytest.mark.slow
def test_export_over_the_int8_record_is_refused_by_the_command_and_predict_still_works(tmp_path, esc50_clip):
    """The measured failure, as a user meets it: two commands, each its own process."""
    model = Path(shutil.copytree(default_model(), tmp_path / "model"))
    before = _bundle_bytes(model)
    command = [sys.executable, "-m", "audiocnn"]
    refused = subprocess.run([*command, "export", "--model", model, "--out", model / "int8.json", "--int8"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and refused.stdout == "", refused.stderr
    assert refused.stderr == (f"audiocnn: error: --out {model / 'int8.json'}: is a file of the model bundle {model} "
                              "(int8.json); writing there would destroy it\n")
    assert _bundle_bytes(model) == before
    predicted = subprocess.run([*command, "predict", esc50_clip, "--model", model, "--runtime", "int8",
                                "--no-progress"], capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr
