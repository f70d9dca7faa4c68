"""Bundles: a saved model predicts exactly as before it was saved; broken ones say what is wrong."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from audiocnn import bundle
from audiocnn.config import load_recipe
from audiocnn.errors import BundleError
from audiocnn.features import create_frontend
from audiocnn.models import create
from audiocnn.models.classifier import AudioClassifier
from conftest import TEST_BACKBONE, write_tone


@pytest.fixture(scope="module")
def saved_once(tmp_path_factory):
    """A small saved bundle, made once: building and saving a ResNet-18 for each of the 25 broken-bundle
    cases took 4 s."""
    recipe = load_recipe(None, ["frontend.n_mels=32", "model.backbone=resnet18"])
    model = AudioClassifier(create_frontend(recipe.frontend), create("resnet18", 3, 1), [-42.0], [17.0]).eval()
    path = bundle.save(tmp_path_factory.mktemp("saved") / "b", model, ["bark", "meow", "moo"], recipe,
                       {"accuracy": 0.9})
    return path, model


@pytest.fixture
def saved(saved_once, tmp_path):
    """A copy of the saved bundle for one test to read or break."""
    path, model = saved_once
    return Path(shutil.copytree(path, tmp_path / "b")), model


@pytest.mark.slow
def test_a_loaded_bundle_predicts_like_the_saved_model(saved):
    path, model = saved
    loaded = bundle.load(path)
    waves = torch.randn(3, 16_000) * 0.1
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(waves), model(waves))
    assert loaded.labels == ["bark", "meow", "moo"] and loaded.metrics == {"accuracy": 0.9}
    assert loaded.sample_rate == 16_000 and loaded.clip_seconds == 5.0
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]


def edit_config(path, change):
    config = json.loads((path / "config.json").read_text())
    change(config)
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda p: (p / "config.json").unlink(), "not a model bundle (config.json is missing)"),
        (lambda p: (p / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda p: (p / "config.json").write_text("{not json"), "config.json: not valid JSON"),
        (lambda p: (p / "model.safetensors").write_bytes(b"\x00" * 16), "model.safetensors: unreadable"),
        (lambda p: edit_config(p, lambda c: c.update(version=99)), "bundle format version 99"),
        (lambda p: edit_config(p, lambda c: c.update(format="other")), "not an audiocnn bundle config"),
        (lambda p: edit_config(p, lambda c: c["labels"].append("oink")), "weights do not match the backbone"),
        (lambda p: edit_config(p, lambda c: c.pop("normalisation")), "config.json: normalisation: missing"),
        (lambda p: save_file({"x": torch.zeros(1)}, str(p / "model.safetensors")), "weights do not match the backbone"),
        (lambda p: edit_config(p, lambda c: c["normalisation"].update(std=[0.0])),
         "config.json: normalisation.std.0: should be greater than or equal to 0.000001 (got 0.0)"),
        (lambda p: edit_config(p, lambda c: c["normalisation"].update(std=[3.9e-172])),  # found by fuzzing: 0 in float32
         "config.json: normalisation.std.0: should be greater than or equal to 0.000001 (got 3.9e-172)"),
        (lambda p: edit_config(p, lambda c: c["normalisation"].update(mean=[float("nan")])),
         "config.json: normalisation.mean.0: should be a finite number (got nan)"),
        # Absurd sizes are refused before anything is allocated from them.
        (lambda p: edit_config(p, lambda c: c.update(labels=[f"c{i}" for i in range(30_000)])),
         "config.json: labels: List should have at most 20000 items"),
        (lambda p: edit_config(p, lambda c: c.update(labels=[str(i) for i in range(200_000)])),
         "larger than any bundle config file"),
        (lambda p: edit_config(p, lambda c: c["labels"].__setitem__(0, "")), "labels.0: String should have at least 1"),
        (lambda p: edit_config(p, lambda c: c["labels"].__setitem__(0, 7)), "labels.0: should be a valid string (got 7)"),
        (lambda p: edit_config(p, lambda c: c["frontend"].update(n_mels=10**9)),
         "n_mels: should be less than or equal to 1024"),
        (lambda p: edit_config(p, lambda c: c["backbone"].update(in_chans=-1)),
         "backbone.in_chans: should be greater than or equal to 1"),
        (lambda p: edit_config(p, lambda c: c["recipe"]["data"].update(clip_seconds=1e6)),
         "data.clip_seconds: should be less than or equal to 600"),
        (lambda p: (p / "config.json").write_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (lambda p: (p / "config.json").write_bytes('{"labels": ["caf\xe9"]}'.encode("latin-1")), "not UTF-8 text"),
        (lambda p: edit_config(p, lambda c: c["normalisation"].update(mean=[1.0, 2.0])), "per channel (1)"),
    ],
)
def test_broken_bundles_are_bundle_errors(saved, breakage, message):
    path, _ = saved
    breakage(path)
    with pytest.raises(BundleError) as caught:
        bundle.load(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_missing_bundle_folder(tmp_path):
    with pytest.raises(BundleError, match="no such model bundle"):
        bundle.load(tmp_path / "nothing")


def test_timm_builds_the_cnn_of_a_bundle_from_its_folder(tone_bundle, tones):
    """config.json carries timm's keys: `timm.create_model("local-dir:BUNDLE")` gives the same CNN."""
    import soundfile as sf
    import timm

    loaded = bundle.load(tone_bundle)
    cnn = timm.create_model(f"local-dir:{tone_bundle}", pretrained=True).eval()
    config = json.loads((tone_bundle / "config.json").read_text())
    assert config["architecture"] == TEST_BACKBONE and config["num_classes"] == 3
    assert config["label_names"] == loaded.labels and cnn.pretrained_cfg["label_names"] == loaded.labels
    wave = torch.from_numpy(sf.read(tones / "high" / "high2.wav", dtype="float32")[0])[None]
    with torch.inference_mode():
        images = loaded.model.images(wave)
        assert list(images.shape[1:]) == config["pretrained_cfg"]["input_size"]
        torch.testing.assert_close(cnn(images), loaded.model.backbone(images))


# ----------------------------------------------------------------------------- files that are not files


#: A writer that opens and closes a named pipe every few seconds: whoever waits in open() on it
#: wakes to an empty read. Its own process, since a library blocked in open() may hold the GIL.
_WRITER = """import os, sys, time
while True:
    time.sleep(float(sys.argv[2]))
    try:
        os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no reader has it open: nobody is waiting on it
        continue
    print("opened", flush=True)
"""


@contextlib.contextmanager
def never_hangs(fifo: Path, seconds: float = 20.0) -> Iterator[None]:
    """If the code under test opens the named pipe `fifo` and waits for a writer, a writer comes and
    goes every `seconds`, so the code goes on instead of hanging, and the test fails: whatever the
    code did with nothing read, it opened the pipe and waited."""
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(fifo), str(seconds)], stdout=subprocess.PIPE,
                              text=True)
    try:
        yield
    finally:
        writer.kill()
        opened = writer.communicate()[0]
    assert "opened" not in opened, f"{fifo} was opened and read: it waited for a writer"


def replace_with(path: Path, kind: str) -> None:
    """Put a named pipe, or a link to a device, where the bundle's file `path` was."""
    path.unlink()
    if kind == "pipe":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("kind", ["pipe", "device"])
@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_a_pipe_or_device_in_a_bundle_is_one_bundle_error_and_never_opened(saved, name, kind):
    """A named pipe blocks whoever opens it until something writes; /dev/zero never ends. `load` looks
    at what each file is (stat) before it opens it, and refuses anything but a regular file."""
    path, _ = saved
    replace_with(path / name, kind)
    with never_hangs(path / name), pytest.raises(BundleError) as caught:
        bundle.load(path)
    expected = "is a named pipe, not a regular file" if kind == "pipe" else "is a device, not a regular file"
    assert str(caught.value).startswith(f"{path / name}: {expected}")


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["torch", "auto"])  # auto: the weights are hashed, not loaded, to find a graph
def test_a_pipe_as_weights_is_one_error_line_from_predict_not_a_hang(saved, tmp_path, runtime):
    """The measured failure: `predict --model B` with B/model.safetensors a named pipe waited forever."""
    path, _ = saved
    replace_with(path / "model.safetensors", "pipe")
    clip = write_tone(tmp_path / "tone.wav")
    with never_hangs(path / "model.safetensors", 60):
        done = subprocess.run([sys.executable, "-m", "audiocnn", "predict", clip, "--model", path, "--runtime", runtime,
                               "--no-progress"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == "", done.stderr
    assert done.stderr == f"audiocnn: error: {path / 'model.safetensors'}: is a named pipe, not a regular file; " \
                          "a bundle's files are read only if they are regular files\n"


def test_a_model_card_is_shown_only_when_it_is_a_regular_file_of_sane_size(tmp_path):
    """The server describes its model with the card: a Latin-1 card raised UnicodeDecodeError there."""
    from audiocnn.bundle_files import MAX_CARD_BYTES, model_card

    card = tmp_path / "MODEL_CARD.md"
    assert model_card(tmp_path) is None
    card.write_bytes("# Model card\nLicence: CC BY-NC-SA 4.0 ©".encode("latin-1"))
    assert model_card(tmp_path) == "# Model card\nLicence: CC BY-NC-SA 4.0 \ufffd"
    card.write_bytes(b"x" * (MAX_CARD_BYTES + 1))
    assert model_card(tmp_path) is None
    card.unlink()
    os.mkfifo(card)  # read, it would block until a writer came: never opened
    assert model_card(tmp_path) is None
