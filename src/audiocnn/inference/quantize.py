"""An 8-bit copy of a bundle's backbone for fast CPU prediction: `audiocnn quantize`.

Long recordings are bound by the CNN (BENCHMARKS.md). ONNX Runtime runs a statically
quantized graph (int8 weights per channel, uint8 activations, QDQ format) about 2.5× faster
than the float one on CPUs with VNNI, but quantizing activations needs their ranges, and
those come from real inputs: the images of calibration clips from the data the model was
trained on. Ranges are the 99.999th percentile of each activation over those images, not
its maximum: on fold 4 of the ESC-50 study, min-max ranges cost 2.8 points of held-out
accuracy, percentile ranges 1.3, and keeping the first and last layers in float did not
help (benchmarks/int8.py). So quantization is a step a user runs once per bundle, with its data, and the
result is kept in the bundle as `model.int8.onnx` beside `int8.json`, which records the
calibration clips, how often the 8-bit model's top-1 agrees with the float model's on them,
and digests of `model.safetensors` and of the graph, so an 8-bit graph is not used with other
weights, nor a graph with another graph's record.
`predict --runtime int8` uses it; the float model stays the default.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiocnn.bundle import WEIGHTS, Bundle
from audiocnn.datasets import split_fold
from audiocnn.datasets.images import clip_images
from audiocnn.datasets.recipe import recipe_dataset
from audiocnn.errors import BundleError, ConfigError
from audiocnn.inference.runtimes import OnnxBackbone, export_onnx, fold_batchnorm

INT8_GRAPH, INT8_INFO = "model.int8.onnx", "int8.json"
#: Calibration clips by default: enough for stable activation ranges, a minute on 2 cores.
DEFAULT_CLIPS = 256


def file_digest(path: Path) -> str:
    """sha256 of a file; a missing or unreadable one is a BundleError naming it."""
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as err:
        raise BundleError(f"{path}: cannot be read ({err.strerror or err})") from None


def calibration_clips(bundle: Bundle, data_root: Path, n_clips: int, seed: int = 0) -> list:
    """`n_clips` clips of the bundle's dataset, stratified by label, never from the split it was tested on.

    Labels are taken in turn, so with at least as many clips as classes every class is there.
    """
    data = recipe_dataset(bundle.recipe, data_root)
    split, fold = bundle.metrics.get("split"), split_fold(bundle.metrics)
    if fold is not None and fold in data.folds:
        held_out = {clip.key for clip in data.clips if clip.fold == fold}  # key: a file, or a part of one
    elif data.fixed_split is not None and split == data.fixed_split.name:
        held_out = {clip.key for clip in data.fixed_split.test}
    elif split in (None, "all-data"):
        held_out = set()
    else:
        raise ConfigError(f"{bundle.path}: trained for split {split!r}, which {data.name} at {data_root} does not "
                          f"have (folds {data.folds}); calibrate with the dataset it was trained on")
    clips = [c for c in data.clips if c.key not in held_out]
    unknown = sorted({c.label for c in clips} - set(bundle.labels))
    if unknown:
        raise ConfigError(f"{data_root}: labels {', '.join(unknown[:5])} are not among the model's labels")
    order = np.random.default_rng(seed).permutation(len(clips))
    by_label: dict[str, list] = {}
    for i in order:
        by_label.setdefault(clips[i].label, []).append(clips[i])
    picked: list = []
    while len(picked) < min(n_clips, len(clips)):  # round-robin over labels
        for group in by_label.values():
            if group and len(picked) < n_clips:
                picked.append(group.pop())
    return picked


def quantize(bundle: Bundle, data_root: Path, *, n_clips: int = DEFAULT_CLIPS, cache_dir: Path | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Write BUNDLE/model.int8.onnx and BUNDLE/int8.json; returns what int8.json records."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )


    if n_clips < 8:
        raise ConfigError(f"--clips must be at least 8 (got {n_clips})")
    weights = file_digest(bundle.path / WEIGHTS)  # of the weights loaded now, checked again before writing
    clips = calibration_clips(bundle, data_root, n_clips)
    model = bundle.model.eval()
    images = model.normalise(clip_images(clips, model.frontend, bundle.clip_seconds, cache_dir, progress=progress))
    folded = fold_batchnorm(model.backbone, images[:2])

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(torch.split(images, 16))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch.numpy()}

    partial = bundle.path / f"{INT8_GRAPH}.{os.getpid()}.partial"
    partial_info = bundle.path / f"{INT8_INFO}.{os.getpid()}.partial"
    try:
        with tempfile.TemporaryDirectory() as work:
            graph = export_onnx(folded, images[:2], Path(work))
            prepared = Path(work) / "prepared.onnx"
            quant_pre_process(str(graph), str(prepared), skip_symbolic_shape=True)
            with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its histogram settings
                quantize_static(str(prepared), str(partial), Images(), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.Percentile)
        with torch.inference_mode():
            reference = folded(images).argmax(-1)
            eight_bit = OnnxBackbone(partial)(images).argmax(-1)
        import onnxruntime

        info = {"weights_sha256": weights, "graph_sha256": file_digest(partial), "calibration_clips": len(clips),
                "calibration_dataset": bundle.recipe.data.dataset, "calibration_data": str(data_root),
                "top1_agreement_on_calibration": float((reference == eight_bit).float().mean()),
                "onnxruntime": onnxruntime.__version__, "input_shape": list(images.shape[1:])}
        if file_digest(bundle.path / WEIGHTS) != weights:
            raise BundleError(f"{bundle.path / WEIGHTS}: changed while it was being quantized; run quantize again")
        partial_info.write_text(json.dumps(info, indent=2) + "\n")
        partial.replace(bundle.path / INT8_GRAPH)  # the graph's digest in int8.json pairs the two files
        partial_info.replace(bundle.path / INT8_INFO)
    finally:
        partial.unlink(missing_ok=True)
        partial_info.unlink(missing_ok=True)
    return info


def int8_graph(bundle: Bundle) -> Path:
    """The bundle's 8-bit graph, checked to belong to its weights; a clear error if there is none."""
    return read_int8(bundle)[0]


def read_int8(bundle: Bundle) -> tuple[Path, dict[str, Any]]:
    """The bundle's 8-bit graph and its `int8.json` record, read once and checked against the weights."""
    graph, info_path = bundle.path / INT8_GRAPH, bundle.path / INT8_INFO
    if not graph.is_file() or not info_path.is_file():
        raise ConfigError(f"--runtime int8: {bundle.path} has no 8-bit model yet; make one with "
                          f"`audiocnn quantize --model {bundle.path} --data-root DATASET`")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"{info_path}: not valid JSON ({err})") from None
    again = f"run `audiocnn quantize --model {bundle.path} --data-root DATASET` again"
    if not isinstance(info, dict) or info.get("weights_sha256") != file_digest(bundle.path / WEIGHTS):
        raise BundleError(f"{graph}: was made from other weights than {bundle.path / WEIGHTS}; {again}")
    if info.get("graph_sha256") != file_digest(graph):
        raise BundleError(f"{graph}: is not the graph {info_path} describes; {again}")
    return graph, info
