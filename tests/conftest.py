"""Shared fixtures: where the real ESC-50 lives, and running the CLI like a user.

Tests that need real clips read ESC-50 from ../shared/data/esc50 (or $AUDIOCNN_ESC50). On a
user's clone without it they skip with a reason; under CI=true a missing dataset fails.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiocnn.cli import main

# The servers the tests start (and the apps they make) keep their reviews in the user's data folder by
# default: here, one of this run's own, removed when the run ends, never the real one.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="audiocnn-test-data-")
atexit.register(shutil.rmtree, os.environ["XDG_DATA_HOME"], True)

REPO = Path(__file__).resolve().parents[1]
ESC50_DEFAULT = REPO.parent / "shared" / "data" / "esc50"
GTZAN_SPLITS_DEFAULT = REPO.parent / "shared" / "data" / "gtzan-splits"


def _shared(env: str, default: Path, probe: str) -> Path:
    root = Path(os.environ.get(env, default))
    if not (root / probe).is_file():
        message = f"{root / probe} not found (set {env} to the folder)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true but the shared data is missing: {message}")
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def esc50_root() -> Path:
    return _shared("AUDIOCNN_ESC50", ESC50_DEFAULT, "meta/esc50.csv")


@pytest.fixture(scope="session")
def gtzan_splits_dir() -> Path:
    return _shared("AUDIOCNN_GTZAN_SPLITS", GTZAN_SPLITS_DEFAULT, "train_filtered.txt")


@pytest.fixture(scope="session")
def esc50_clip(esc50_root: Path) -> Path:
    """A real 5 s dog bark (fold 1)."""
    return esc50_root / "audio" / "1-100032-A-0.flac"


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a pipe opened for reading waits for a writer forever)."""
    def expire(*_: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def thousand_levels(top: Path) -> Iterator[Path]:
    """A folder 1000 levels below `top`, removed level by level after (rmtree recurses)."""
    deepest = top
    for _ in range(1000):
        deepest = deepest / "d"
        deepest.mkdir()
    try:
        yield deepest
    finally:
        for path in deepest.iterdir():
            path.unlink()
        while deepest != top:
            deepest.rmdir()
            deepest = deepest.parent


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run `audiocnn ARGS...` in-process; an uncaught exception fails the test by itself."""

    def run(*args: object) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def write_tone(path: Path, *, seconds: float = 1.0, rate: int = 16_000, freq: float = 1000.0,
               channels: int = 1, subtype: str | None = None, amplitude: float = 0.5) -> Path:
    """A sine tone file (a known spectrum to check features and resampling against)."""
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    data = np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype)
    return path


SMOKE = REPO / "recipes" / "smoke.yaml"
#: The CNN the tests train: timm's `test_resnet`, a real ResNet (stem, basic blocks, batch norm) made for
#: tests, 0.37 M parameters. ResNet-10-T (4.9 M), used before, took 5.9 s to train the tone bundle against
#: 1.3-1.5 s for this one (seeds 0-5 all named every held-out clip), and its checkpoints were 13 times bigger.
TEST_BACKBONE = "test_resnet"
#: Overrides of smoke.yaml that train a small model on the `tones` folder dataset in seconds.
#: One torch thread: smoke.yaml's two threads spin against the other pytest-xdist worker's (a resnet10t step
#: took 1.8 s instead of 0.07 s, a TINY cv run 49 s instead of 3.5 s).
TINY = ["data.dataset=folder", "data.clip_seconds=1.0", "data.folds=4", "data.limit_per_class=null",
        "data.val_fraction=0.25", f"model.backbone={TEST_BACKBONE}", "train.epochs=4", "train.batch_size=4", "train.lr=3e-3",
        "train.mixup=0", "train.select=last", "train.precision=32-true", "train.threads=1"]
TONE_HZ = {"low": 400.0, "high": 2500.0}
TONE_LABELS = ("high", "low", "noise")  # the `tones` classes, in the (sorted) order models list them
#: `TINY` as the shared `tone_bundle` is trained: long enough to learn reliably, no SpecAugment
#: (masked bands would teach it to look beside the tone, which the attribution tests check).
TONE_MODEL = [*TINY, "train.epochs=8", "train.specaugment.freq_masks=0", "train.specaugment.time_masks=0"]


def tone_clip(hz: float, seconds: float, rng: np.random.Generator, rate: int = 16_000) -> np.ndarray:
    """A slightly detuned tone in noise, faded in and out over 100 ms: one clip of the `tones` task.

    Without the fades the tone's onset is a broadband click that a model may learn instead of
    the pitch (Integrated Gradients showed one doing so, at the clip start in low rows).
    """
    t = np.arange(int(seconds * rate)) / rate
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.1)
    tone = 0.3 * fade * np.sin(2 * np.pi * hz * (1 + 0.05 * rng.standard_normal()) * t)
    return (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def noise_clip(seconds: float, rng: np.random.Generator, rate: int = 16_000) -> np.ndarray:
    """The background of `tone_clip` alone: the `noise` class of the `tones` task."""
    return (0.05 * rng.standard_normal(int(seconds * rate))).astype(np.float32)


@pytest.fixture(scope="session")
def tones(tmp_path_factory) -> Path:
    """Three classes, 16 one-second clips each: noise, noise + a 400 Hz tone, noise + a 2.5 kHz tone.

    The noise class matters: with only the two tones, "no 400 Hz energy" is enough to say
    "high", and a model that learns just that is right to be credited at 400 Hz. Against
    noise, each tone class needs its own tone, so attributions can be checked by frequency.
    """
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    for label in TONE_LABELS:
        (root / label).mkdir()
        for i in range(16):
            wave = tone_clip(TONE_HZ[label], 1.0, rng) if label in TONE_HZ else noise_clip(1.0, rng)
            sf.write(root / label / f"{label}{i}.wav", wave, 16_000)
    return root


@pytest.fixture(scope="session")
def tone_bundle(tones, tmp_path_factory) -> Path:
    """The one trained model that tests of prediction, quantization and explanation share.

    `TEST_BACKBONE` from scratch on `tones` with fold 1 held out (a bundle from `train
    --test-fold 1`); 8 epochs, so its batch-norm running statistics have settled (after 4, a
    third of ResNet-18 seeds still gave constant predictions in eval mode; with `test_resnet`,
    4 epochs named 67-92% of the held-out clips, 8 epochs all of them for seeds 0-5).

    Trained once per run: under pytest-xdist the workers share it (the first trains it, the others
    wait on a lock and read it; tests never write into it), which saves a training per extra worker.
    """
    from filelock import FileLock

    from audiocnn.config import load_recipe
    from audiocnn.training.cv import train_bundle

    # a worker's base folder is RUN/popen-gwN: RUN belongs to this run, shared by its workers
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared
    path = shared / "tone-bundle" / "model"
    with FileLock(str(shared / "tone-bundle.lock")):
        if not (path / "config.json").is_file():  # config.json is the bundle's last file, written atomically
            metrics = train_bundle(load_recipe(SMOKE, TONE_MODEL), tones, path, test_fold=1, progress=False)
            # One clear failure here rather than a dozen puzzling ones in the tests that use it.
            assert metrics["accuracy"] >= 0.9, f"the shared tone model did not learn its task: {metrics}"
    return path


GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]


def encode_with_ffmpeg(source: Path, target: Path, *, live: bool = False) -> Path:
    """`source` re-encoded as a phone or a browser writes it, by its suffix: `.m4a` AAC in MP4 at the
    source's rate (a voice memo), `.webm` Opus at 48 kHz (MediaRecorder). `live`: written to a stream
    that cannot seek, so the container states no length, as a browser's recording does."""
    import io

    import av

    wave, rate = sf.read(source, dtype="float32")
    container, codec, out_rate = {".m4a": ("ipod", "aac", rate), ".webm": ("webm", "libopus", 48_000)}[target.suffix]
    buffer = io.BytesIO()

    class Unseekable(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:  # noqa: ANN001
            return buffer.write(data)

    with av.open(Unseekable() if live else buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=out_rate)
        stream.layout = "mono"
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=out_rate)
        frame = av.AudioFrame.from_ndarray(wave[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        for part in [*resampler.resample(frame), *resampler.resample(None), None]:
            for packet in stream.encode(part):
                out.mux(packet)
    target.write_bytes(buffer.getvalue())
    return target


def tiny_wav(path: Path, value: float = 0.1) -> Path:
    """A real 10 ms file at 16 kHz holding the constant `value`: for dataset layouts, instant to write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(160, value, dtype=np.float32), 16_000)
    return path


@pytest.fixture(scope="session")
def gtzan_root(tmp_path_factory) -> Path:
    """GTZAN's layout (genres/GENRE/GENRE.0000N.wav, 100 per genre) with 10 ms files: for split logic."""
    root = tmp_path_factory.mktemp("gtzan")
    for genre in GENRES:
        for i in range(100):
            tiny_wav(root / "genres" / genre / f"{genre}.{i:05d}.wav", value=(i + 1) / 101)
    return root


def uncalibrated_copy(model: Path, folder: Path) -> Path:
    """A copy of a bundle without its calibration (temperature 1, never `unknown`), as bundles were
    before issue 18: for tests that compare probabilities or labels window by window."""
    import json
    import shutil

    copy = Path(shutil.copytree(model, folder))
    config = json.loads((copy / "config.json").read_text())
    config.pop("calibration", None)
    (copy / "config.json").write_text(json.dumps(config, indent=2))
    return copy


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    output: str = ""


@contextlib.contextmanager
def served(*options: str, env: dict[str, str] | None = None, preexec_fn=None):  # noqa: ANN001
    """A real `audiocnn serve` process on a free 127.0.0.1 port, up (its /healthz answers) when entered;
    stopped with SIGINT (as Ctrl-C) when left, its output kept in `.output`. `env`: variables set for
    it (TMPDIR, say); `preexec_fn`: run in the child before it starts (resource limits, say)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**{k: v for k, v in os.environ.items() if k != "AUDIOCNN_API_KEY"}, **(env or {})}
    process = subprocess.Popen([sys.executable, "-m", "audiocnn", "serve", "--port", str(port), *options],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               preexec_fn=preexec_fn)
    server = Served(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as answer:
                    assert json.load(answer)["status"] == "ok"
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
                time.sleep(0.05)  # a refused connection costs nothing: asking often starts tests sooner
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        server.output = process.communicate(timeout=30)[0]
