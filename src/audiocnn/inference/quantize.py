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
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from audiocnn import audio
from audiocnn.bundle import INT8_GRAPH, INT8_INFO, WEIGHTS, Bundle, regular_file
from audiocnn.datasets import Clip, split_fold
from audiocnn.datasets.images import cache_key, cached, images_of
from audiocnn.datasets.recipe import recipe_dataset
from audiocnn.errors import AudiocnnWarning, BundleError, ConfigError, item_failure
from audiocnn.inference.runtimes import OnnxBackbone, export_onnx, fold_batchnorm
from audiocnn.validation import settings_text, validation_problem

__all__ = ["DEFAULT_CLIPS", "INT8_GRAPH", "INT8_INFO", "calibration_clips", "file_digest", "int8_graph", "quantize",
           "read_int8"]

#: Calibration clips by default: enough for stable activation ranges, a minute on 2 cores.
DEFAULT_CLIPS = 256
#: The most clips ONNX Runtime's calibrator runs at once. Every batch must hold the same number
#: (it stacks each layer's outputs over batches), so the last batch is filled up with the first
#: clips again: 36 clips go in three batches of 16, 5 in one of 5 (a divisor of the count, as
#: before, gave batches of 1 for a prime count such as 251, each a separate calibrator run).
CALIBRATION_BATCH = 16
_SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


@with_config(ConfigDict(strict=True, allow_inf_nan=False, extra="allow"))
class _Int8Info(TypedDict):
    """What `read_int8` needs from int8.json, checked before it is used (the rest is for people)."""

    weights_sha256: _SHA256
    graph_sha256: _SHA256
    calibration_clips: Annotated[int, Field(ge=1, le=10_000_000)]
    top1_agreement_on_calibration: Annotated[float, Field(ge=0, le=1)]
    input_shape: Annotated[list[Annotated[int, Field(ge=1, le=1 << 24)]], Field(min_length=3, max_length=3)]


_INT8_SCHEMA = TypeAdapter(_Int8Info)


def file_digest(path: Path) -> str:
    """sha256 of a file; a missing or unreadable one is a BundleError naming it."""
    regular_file(path)  # a named pipe would block the read forever
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as err:
        raise BundleError(f"{path}: cannot be read ({err.strerror or err})") from None


def calibration_clips(bundle: Bundle, data_root: Path, n_clips: int, seed: int = 0) -> list[Clip]:
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
    picked: list[Clip] = []
    while len(picked) < min(n_clips, len(clips)):  # round-robin over labels
        for group in by_label.values():
            if group and len(picked) < n_clips:
                picked.append(group.pop())
    return picked


def calibration_images(clips: list[Clip], bundle: Bundle, cache_dir: Path | None,
                       progress: bool = True) -> tuple[torch.Tensor, list[Clip]]:
    """The unnormalised images of the clips that can be read, and those clips.

    A clip that cannot be read is one warning line (`errors.item_failure`: what an AudioError says,
    or an unexpected exception with its traceback logged) and is left out, so one bad file does not
    stop the step. Only a full set goes into the feature cache, so the next run warns again.
    """
    from tqdm import tqdm

    frontend, seconds = bundle.model.frontend, bundle.clip_seconds
    n_samples = round(seconds * frontend.sample_rate)

    class Partial(Exception):  # noqa: N818 - carries the usable images past `cached`, which would store them
        def __init__(self, images: torch.Tensor, usable: list[Clip]) -> None:
            super().__init__()
            self.images, self.usable = images, usable

    def compute() -> torch.Tensor:
        waves, usable = [], []
        for clip in tqdm(clips, desc="reading audio", unit="clip", disable=not progress, leave=False):
            try:
                wave = audio.load(clip.path, frontend.sample_rate, offset=clip.start_s or 0.0,
                                  duration=clip.duration_s)
                waves.append(audio.fix_length(wave, n_samples))
                usable.append(clip)
            except Exception as err:  # noqa: BLE001 - one clip's failure is a warning, the rest go on
                warnings.warn(f"{item_failure(f'{clip.path}{clip.segment}', err)}; left out of the calibration",
                              AudiocnnWarning, stacklevel=2)
        images = images_of(np.stack(waves), frontend) if waves else torch.zeros(0)
        if len(usable) < len(clips):
            raise Partial(images, usable)
        return images

    try:
        key = cache_key(clips, frontend.config(), seconds)
    except OSError:  # a clip's file is gone: read them one by one, each failure said by audio.load
        key, cache_dir = "", None
    try:
        return cached(cache_dir, key, compute), clips
    except Partial as partial:
        return partial.images, partial.usable


def quantize(bundle: Bundle, data_root: Path, *, n_clips: int = DEFAULT_CLIPS, cache_dir: Path | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Write BUNDLE/model.int8.onnx and BUNDLE/int8.json; returns what int8.json records.

    Any number of calibration clips from 1 works (`calibration_clips` in the record says how many
    were used: fewer than `n_clips` when the dataset's usable clips are fewer); none is a ConfigError.
    """
    bundle.require_images("quantize")
    if n_clips < 1:
        raise ConfigError(f"--clips must be at least 1 (got {n_clips})")
    weights = file_digest(bundle.path / WEIGHTS)  # of the weights loaded now, checked again before writing
    clips = calibration_clips(bundle, data_root, n_clips)
    model = bundle.model.eval()
    raw, usable = calibration_images(clips, bundle, cache_dir, progress)
    if not usable:
        found = f"none of its {len(clips)} calibration clips could be read" if clips else \
            "it holds no clips outside the model's held-out test fold"
        raise ConfigError(f"{data_root}: {found}; the 8-bit graph needs at least one clip of the model's training data")
    images = model.normalise(raw)
    folded = fold_batchnorm(model.backbone, images[:2])
    partial = bundle.path / f"{INT8_GRAPH}.{os.getpid()}.partial"
    partial_info = bundle.path / f"{INT8_INFO}.{os.getpid()}.partial"
    try:
        _write_eight_bit(folded, images, partial)
        with torch.inference_mode():
            reference = folded(images).argmax(-1)
            eight_bit = OnnxBackbone(partial)(images).argmax(-1)
        import onnxruntime

        info = {"weights_sha256": weights, "graph_sha256": file_digest(partial), "calibration_clips": len(usable),
                "calibration_clips_asked": n_clips, "calibration_dataset": bundle.recipe.data.dataset,
                "calibration_data": str(data_root),
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


def _write_eight_bit(folded: torch.nn.Module, images: torch.Tensor, target: Path) -> None:
    """The 8-bit (QDQ: int8 weights per channel, uint8 activations) ONNX graph of `folded`, its
    activation ranges calibrated (percentile) on `images`, written to `target`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    batch = min(CALIBRATION_BATCH, len(images))
    filled = torch.cat([images, images[: -len(images) % batch]])  # equal batches: the last topped up

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(torch.split(filled, batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            part = next(self.batches, None)
            return None if part is None else {"images": part.numpy()}

    with tempfile.TemporaryDirectory() as work:
        graph = export_onnx(folded, images[:2], Path(work))
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(graph), str(prepared), skip_symbolic_shape=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its histogram settings
            quantize_static(str(prepared), str(target), Images(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.Percentile)


def int8_graph(bundle: Bundle) -> Path:
    """The bundle's 8-bit graph, checked to belong to its weights; a clear error if there is none."""
    return read_int8(bundle)[0]


def read_int8(bundle: Bundle) -> tuple[Path, dict[str, Any]]:
    """The bundle's 8-bit graph and its `int8.json` record, read once and checked against the weights.

    int8.json comes with a downloaded bundle, so it is read like config.json: a regular file of at
    most 1 MiB of UTF-8 JSON whose fields are checked (`_Int8Info`); anything else is one BundleError
    naming it. Neither file is opened unless it is a regular file (a named pipe would hang the read).
    """
    graph, info_path = bundle.path / INT8_GRAPH, bundle.path / INT8_INFO
    if not (os.path.lexists(graph) and os.path.lexists(info_path)):
        raise ConfigError(f"--runtime int8: {bundle.path} has no 8-bit model yet; make one with "
                          f"`audiocnn quantize --model {bundle.path} --data-root DATASET`")
    again = f"run `audiocnn quantize --model {bundle.path} --data-root DATASET` again"
    regular_file(graph, f"{graph}: is a broken link; {again}")
    regular_file(info_path, f"{info_path}: is a broken link; {again}")
    try:
        info = json.loads(settings_text(info_path, "int8 record"))
        _INT8_SCHEMA.validate_python(info)
    except ConfigError as err:
        raise BundleError(str(err)) from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise BundleError(f"{info_path}: not valid JSON ({type(err).__name__}: {str(err)[:200]}); {again}") from None
    except ValidationError as err:
        raise BundleError(f"{validation_problem(err, f'{info_path}: ')}; {again}") from None
    if info["weights_sha256"] != file_digest(bundle.path / WEIGHTS):
        raise BundleError(f"{graph}: was made from other weights than {bundle.path / WEIGHTS}; {again}")
    if info["graph_sha256"] != file_digest(graph):
        raise BundleError(f"{graph}: is not the graph {info_path} describes; {again}")
    return graph, info
