"""A bundle as one ONNX graph, for devices that have ONNX Runtime and nothing else: `audiocnn export`.

The graph takes `waveform`, float32 (batch, samples): mono windows at the bundle's sample rate,
exactly one clip long, and returns `probabilities`, float32 (batch, classes): the calibrated
softmax (logits / the bundle's temperature), as `audiocnn predict` reports. Everything between
is inside the graph: the spectrogram frontend (with the STFT as matrix products, see
`onnx_frontend`), dB, normalisation and the CNN with batch norm folded into its convolutions.
So a device does only what `examples/onnx_classify.py` does: read, mix to mono, resample, cut
windows, run, average. What it needs to do that is in the model's metadata (`metadata_props`,
structured values as JSON): labels, sample rate, window, frontend, normalisation, calibration,
the audiocnn version and the bundle's name.

A graph is written only after it is checked: on windows of real recordings (`check`), or else
on seeded test signals, its probabilities must be within 1e-4 of the torch model's.

`int8=True` writes the same graph with the bundle's own 8-bit backbone, the one `audiocnn
quantize` calibrated on the model's training data and `predict --runtime int8` runs (so it needs
that step first). Static quantization here would need the training data again; dynamic
quantization needs none, but ONNX Runtime runs its convolutions (ConvInteger) 3-8 times slower
than the float graph (16-46 ms against 6 ms per window on one core of the 2-core VM) and moved
probabilities more (up to 0.30 on the examples, against 0.16 for the calibrated backbone): it
would only save file size. The frontend stays float: 8-bit STFT values would lose most of the
80 dB a spectrogram shows. The report gives how often the 8-bit graph's top-1 agrees with the
float graph's on the check windows.
"""

from __future__ import annotations

import io
import itertools
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from audiocnn import __version__, atomic, audio
from audiocnn.bundle import Bundle, owned_file
from audiocnn.errors import BundleError, ConfigError
from audiocnn.features.windows import windows
from audiocnn.inference.onnx_frontend import ExportableFrontend, check_signal, exportable
from audiocnn.inference.runtimes import fold_batchnorm, onnx_session

if TYPE_CHECKING:
    import onnx

INPUT, OUTPUT = "waveform", "probabilities"
#: ONNX opset of the float graph: in ONNX Runtime since 1.14 (2023), and in most device runtimes.
OPSET = 17
#: The most a probability of the float graph may differ from the torch model's.
MAX_DIFFERENCE = 1e-4
#: Windows of the check recordings used at most (the first ones of each file).
MAX_CHECK_WINDOWS = 256
SYNTHETIC_WINDOWS = 8
BATCH = 8


@dataclass
class ExportReport:
    """What `export` wrote and what it checked."""

    path: Path
    size: int  # bytes
    int8: bool
    window: int  # samples
    sample_rate: int
    labels: int
    checked_on: str  # e.g. "24 windows of 8 recordings"
    max_difference: float  # the float graph against the torch model, largest |probability difference|
    top1_agreement: float | None = None  # the 8-bit graph against the float graph (int8 only)
    int8_info: dict[str, Any] = field(default_factory=dict)  # the bundle's int8.json (int8 only)


class ImageGraph(nn.Module):
    """Waveform windows -> the normalised spectrogram images the backbone sees."""

    def __init__(self, frontend: ExportableFrontend, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.frontend = frontend
        self.register_buffer("mean", mean.detach().clone(), persistent=False)
        self.register_buffer("std", std.detach().clone(), persistent=False)

    def forward(self, waveform: Tensor) -> Tensor:
        """Normalised images (batch, channels, rows, frames) of waveform windows (batch, samples)."""
        return (self.frontend(waveform) - self.mean) / self.std


class ProbabilityGraph(nn.Module):
    """Waveform windows -> calibrated class probabilities: what the exported float graph computes."""

    def __init__(self, images: ImageGraph, backbone: nn.Module, temperature: float) -> None:
        super().__init__()
        self.images, self.backbone, self.temperature = images, backbone, float(temperature)

    def forward(self, waveform: Tensor) -> Tensor:
        """Calibrated probabilities (batch, classes): softmax of logits over the temperature."""
        return torch.softmax(self.backbone(self.images(waveform)) / self.temperature, dim=1)


def export(bundle: Bundle, out: str | Path, *, int8: bool = False, check: Sequence[Path] = ()) -> ExportReport:
    """Write `bundle` to `out` as one ONNX graph (atomically), checked first; see the module notes.

    check: recordings whose windows the graph is checked on (default: seeded test signals).
    """
    bundle.require_images("export")
    out = check_out(Path(out), bundle.path)
    int8_info = _int8_source(bundle)[1] if int8 else None  # a bundle without an 8-bit graph fails before any work
    window = round(bundle.clip_seconds * bundle.sample_rate)
    model = bundle.model.eval()
    waves, checked_on = check_windows(bundle, window, check)
    with torch.no_grad():
        reference = np.concatenate([torch.softmax(model(torch.from_numpy(part)) / bundle.temperature, dim=1).numpy()
                                    for part in np.array_split(waves, max(1, len(waves) // BATCH))])
    images = ImageGraph(exportable(model.frontend, window), model.mean, model.std).eval()
    example = check_signal(window, bundle.sample_rate, batch=2)
    with torch.no_grad():
        backbone = fold_batchnorm(model.backbone, images(example))
    graph = to_onnx(ProbabilityGraph(images, backbone, bundle.temperature).eval(), example, OPSET, OUTPUT)
    _describe(graph, bundle, window, None)
    data = graph.SerializeToString()
    probabilities = run(data, waves)
    difference = float(np.abs(probabilities - reference).max())
    if not difference <= MAX_DIFFERENCE:
        raise BundleError(f"{bundle.path}: the exported graph's probabilities differ from the torch model's by "
                          f"{difference:.2g} on {checked_on} (at most {MAX_DIFFERENCE:g} allowed); nothing written")
    agreement = None
    if int8:
        graph = _with_int8_backbone(bundle, images, example)
        _describe(graph, bundle, window, int8_info)
        data = graph.SerializeToString()
        agreement = float(np.mean(run(data, waves).argmax(1) == probabilities.argmax(1)))
    with atomic.replaced(out) as partial:
        partial.write_bytes(data)
    return ExportReport(out, len(data), int8, window, bundle.sample_rate, len(bundle.labels), checked_on, difference,
                        agreement, int8_info or {})


def check_out(out: Path, bundle_path: Path) -> Path:
    """`out` if a graph may be written there: not a folder, and no file of the bundle (by name or by
    inode: a link or another spelling too), so an export cannot destroy the model it comes from;
    int8.json written over by a graph made `predict --runtime int8` fail."""
    owned = owned_file(Path(bundle_path), out)
    if owned is not None:
        if owned == "the bundle folder":
            raise ConfigError(f"--out {out}: is the folder of the model bundle {bundle_path}; give a file outside it")
        raise ConfigError(f"--out {out}: is a file of the model bundle {bundle_path} ({owned}); writing there would "
                          "destroy it")
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give a file name")
    return out


def check_windows(bundle: Bundle, window: int, paths: Sequence[Path]) -> tuple[np.ndarray, str]:
    """Windows to check a graph on, (n, window) float32, and what they are: the first windows of each
    recording as `predict` cuts them (hop: half a window), an equal share of MAX_CHECK_WINDOWS per
    file (so long recordings are not read to the end); without recordings, seeded test signals."""
    if not paths:
        return check_signal(window, bundle.sample_rate, SYNTHETIC_WINDOWS).numpy(), \
            f"{SYNTHETIC_WINDOWS} synthetic test windows"
    paths = list(paths)[:MAX_CHECK_WINDOWS]
    share = max(1, MAX_CHECK_WINDOWS // len(paths))
    picked = [w for p in paths
              for _, w in itertools.islice(windows(audio.stream(p, bundle.sample_rate), window, max(1, window // 2)),
                                           share)]
    files = f"{len(paths)} recording{'s' if len(paths) != 1 else ''}"
    return np.stack(picked).astype(np.float32), f"{len(picked)} window{'s' if len(picked) != 1 else ''} of {files}"


def run(graph: Any, waves: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """The output of a graph (bytes, a file, or a `session` of either) for (n, window) waveforms, in batches."""
    runner = graph if hasattr(graph, "run") else onnx_session(graph, memory_arena=True)
    return np.concatenate([runner.run(None, {INPUT: waves[i : i + batch]})[0] for i in range(0, len(waves), batch)])


def to_onnx(module: nn.Module, example: Tensor, opset: int, output: str) -> onnx.ModelProto:
    """`module` traced to ONNX (dynamic batch), in memory."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes: the window is fixed by design
        torch.onnx.export(module, (example,), buffer, input_names=[INPUT], output_names=[output], opset_version=opset,
                          dynamic_axes={INPUT: {0: "batch"}, output: {0: "batch"}}, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def _int8_source(bundle: Bundle) -> tuple[Path, dict[str, Any]]:
    """The bundle's 8-bit backbone and its record; a clear error if `audiocnn quantize` has not made one."""
    from audiocnn.inference.quantize import read_int8

    try:
        return read_int8(bundle)
    except ConfigError:  # read_int8 words it for `predict --runtime int8`
        raise ConfigError(f"--int8: {bundle.path} has no 8-bit backbone yet; make one with `audiocnn quantize "
                          f"--model {bundle.path} --data-root DATASET`, then export again") from None


def _with_int8_backbone(bundle: Bundle, images: ImageGraph, example: Tensor) -> onnx.ModelProto:
    """The image graph traced and joined to the bundle's 8-bit backbone, then logits / T -> softmax."""
    import onnx
    from onnx import TensorProto, compose, helper

    path, info = _int8_source(bundle)
    backbone = onnx.load(str(path))
    with torch.no_grad():
        shape = list(images(example).shape[1:])
    if info.get("input_shape") != shape:
        raise BundleError(f"{path}: made for images shaped {info.get('input_shape')}, but {bundle.clip_seconds:g} s "
                          f"windows give {shape}; run `audiocnn quantize` again")
    opset = next(o.version for o in backbone.opset_import if o.domain in ("", "ai.onnx"))
    head = to_onnx(images, example, opset, "images")
    head.ir_version = backbone.ir_version  # merge_models asks for one IR version; the ops are the opset's
    joined = compose.merge_models(head, backbone, io_map=[("images", backbone.graph.input[0].name)],
                                  prefix2="int8/", producer_name="audiocnn", producer_version=__version__)
    logits = joined.graph.output[0].name
    joined.graph.initializer.append(helper.make_tensor("temperature", TensorProto.FLOAT, [], [bundle.temperature]))
    joined.graph.node.extend([helper.make_node("Div", [logits, "temperature"], ["calibrated"]),
                              helper.make_node("Softmax", ["calibrated"], [OUTPUT], axis=1)])
    del joined.graph.output[:]
    joined.graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", len(bundle.labels)]))
    onnx.checker.check_model(joined)
    return joined


def metadata(bundle: Bundle, window: int, int8_info: dict[str, Any] | None) -> dict[str, str]:
    """The graph's metadata_props: all a device needs to feed it and name its outputs (`int8_info`: the
    bundle's int8.json for the 8-bit graph, None for the float one)."""
    model = bundle.model
    values: dict[str, Any] = {
        "labels": list(bundle.labels),
        "sample_rate": bundle.sample_rate,
        "window_samples": window,
        "window_seconds": bundle.clip_seconds,
        "hop_samples": max(1, window // 2),  # `audiocnn predict`'s default: windows overlap by half
        "frontend": model.frontend.config(),
        "normalisation": {"mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()},
        "calibration": {"temperature": bundle.temperature, "unknown_below": bundle.unknown_below},
        "audiocnn_version": __version__,
        "bundle": bundle.path.resolve().name,
        "precision": "float32" if int8_info is None else "int8",
        "input": INPUT,
        "output": OUTPUT,
    }
    if int8_info is not None:
        values["int8"] = {k: int8_info[k] for k in ("calibration_clips", "calibration_dataset",
                                                    "top1_agreement_on_calibration") if k in int8_info}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def _describe(graph: onnx.ModelProto, bundle: Bundle, window: int, int8_info: dict[str, Any] | None) -> None:
    from onnx import helper

    graph.producer_name, graph.producer_version = "audiocnn", __version__
    graph.doc_string = (f"{bundle.path.resolve().name}: {INPUT} float32 (batch, {window}) mono at {bundle.sample_rate} "
                        f"Hz -> {OUTPUT} float32 (batch, {len(bundle.labels)}); labels etc. in metadata_props")
    helper.set_model_props(graph, metadata(bundle, window, int8_info))
