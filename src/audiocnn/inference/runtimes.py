"""Inference-only speed-ups that leave a model's outputs unchanged.

`for_inference` applies all of them and checks the result against the original model. A graph
that agreed with torch is marked so (`HASH.checked` beside it, the hash of the unfolded backbone):
the next run opens it without folding, exporting or comparing again: 0.2 s of `predict`'s 3.7 s
start on the idle 2-core VM, 2.3 s while other work kept both cores busy (BENCHMARKS.md). It is
marked for the bundle files it came from as well (`files_marker`), so a later run finds it without
building the backbone at all: `predict` then starts in 2.2 s instead of 4.8 s.

- batch norm folded into the convolution before it (below);
- ONNX Runtime, when installed: the folded backbone is exported to ONNX once (cached by a
  hash of its weights and architecture) and run by
  onnxruntime's CPU kernels. On the AVX512 VM this was modestly faster than torch: 1 h of
  audio in 13.4 s against 14.8 s end to end (BENCHMARKS.md); the 8-bit graph of
  `audiocnn quantize` is what makes long recordings fast;
- otherwise torch with a channels-last layout, which lets oneDNN pick its faster kernels for
  depthwise convolutions.

Folding batch norm into the convolution before it removes about a fifth of MobileNetV2's CPU
inference time (BatchNorm was 18% of it in a profile on the 2-core VM). The pairs are found
from module order — a BatchNorm registered right after a Conv2d in the same parent, with
matching channels, which is how timm builds its blocks — and the folded model is checked
against the original on a test input; if they differ, the original is used unchanged.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audiocnn import atomic
from audiocnn.errors import ConfigError

RUNTIMES = ("auto", "onnx", "torch")


def fold_batchnorm(model: nn.Module, example: torch.Tensor, atol: float = 1e-3) -> nn.Module:
    """An eval-mode copy of `model` with conv→BN pairs folded; `model` itself if folding changes outputs."""
    folded = copy.deepcopy(model).eval()
    for parent in folded.modules():
        previous: tuple[str, nn.Module] | None = None
        for name, child in list(parent.named_children()):
            if (isinstance(child, nn.BatchNorm2d) and previous is not None and isinstance(previous[1], nn.Conv2d)
                    and previous[1].out_channels == child.num_features and child.track_running_stats):
                _fold_into(previous[1], child)
                setattr(parent, name, _after_norm(child))
            previous = (name, child)
    with torch.inference_mode():
        same = torch.allclose(folded(example), model.eval()(example), atol=atol, rtol=1e-3)
    return folded if same else model


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
    with torch.no_grad():
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
        conv.bias = nn.Parameter(bias * scale + shift)


def _after_norm(bn: nn.BatchNorm2d) -> nn.Module:
    """What remains of a norm layer once folded: timm's BatchNormAct2d keeps its dropout and activation."""
    rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
    return nn.Sequential(*rest) if rest else nn.Identity()


class ChannelsLast(nn.Module):
    """Runs `model` on channels-last tensors whatever layout its input arrives in."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The wrapped model on channels-last images (faster convolutions on CPU)."""
        return self.model(images.contiguous(memory_format=torch.channels_last))


class OnnxBackbone(nn.Module):
    """A backbone run by onnxruntime: images in, logits out, like the torch module it came from."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__()
        self.path = path
        self.session = onnx_session(path, threads)
        self.input = self.session.get_inputs()[0].name

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of images, computed by onnxruntime."""
        array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input: array})[0])


def onnx_session(graph: bytes | str | Path, threads: int | None = None, *, memory_arena: bool = False):  # noqa: ANN201
    """An ONNX Runtime CPU session of a graph (bytes or a file): torch's thread count unless told,
    one inter-op thread. The memory arena is off by default: it grew `predict`'s peak RSS by ~300 MB
    on a 1-hour file. An exported graph (frontend inside: many small tensors) runs about a third
    faster with it, as ONNX Runtime's default session on a device does."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = memory_arena
    source = graph if isinstance(graph, bytes) else str(graph)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def release_freed_memory() -> None:
    """Hand memory the heap has freed back to the OS (glibc only; elsewhere a no-op).

    ONNX Runtime's many short-lived allocations fragment glibc's heap: predicting with it, peak
    RSS grew by about 250 MB per 3 hours of audio, while with a `malloc_trim` every 10 minutes
    of audio it stays flat (BENCHMARKS.md).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():  # noqa: ANN202 - a ctypes function, or None
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def onnx_cache_dir() -> Path:
    """Where exported graphs are kept (`~/.cache/audiocnn/onnx` on Linux; honours XDG_CACHE_HOME)."""
    from platformdirs import user_cache_path

    return user_cache_path("audiocnn", appauthor=False) / "onnx"


def graph_digest(backbone: nn.Module, example: torch.Tensor) -> str:
    """What an exported graph of `backbone` depends on: input shape, torch and onnxruntime versions,
    architecture and weights (24 hex digits)."""
    import onnxruntime

    digest = hashlib.sha256(f"{tuple(example.shape[1:])}|{torch.__version__}|{onnxruntime.__version__}|"
                            f"{backbone!r}".encode())  # the architecture too, not only the weights
    for name, tensor in backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def files_marker(files: Sequence[Path], example: torch.Tensor, cache_dir: Path | None = None) -> Path:
    """The marker of a graph checked for the backbone these files describe (a bundle's config.json and
    weights), keyed on their bytes with the input shape and the torch, timm and onnxruntime versions:
    found, it lets a run open that graph without building the backbone (importing timm and reading
    its weights took 2 s of `predict`'s start)."""
    from importlib.metadata import version

    digest = hashlib.sha256(f"{tuple(example.shape[1:])}|{torch.__version__}|{version('timm')}|"
                            f"{version('onnxruntime')}".encode())
    for path in files:
        with open(path, "rb") as handle:  # in blocks: weights may be gigabytes
            while block := handle.read(1 << 20):
                digest.update(block)
    return Path(cache_dir or onnx_cache_dir()) / f"files-{digest.hexdigest()[:24]}.checked"


def export_onnx(backbone: nn.Module, example: torch.Tensor, cache_dir: Path) -> Path:
    """The ONNX file of `backbone` for inputs shaped like `example` (any batch size), exported once."""
    path = Path(cache_dir) / f"{graph_digest(backbone, example)}.onnx"
    if not path.is_file():
        import warnings

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replaced(path) as partial, warnings.catch_warnings():  # two processes may export at once
            warnings.simplefilter("ignore")
            torch.onnx.export(backbone.eval(), (example,), str(partial), input_names=["images"],
                              output_names=["logits"], dynamic_axes={"images": {0: "batch"}}, dynamo=False)
    return path


def checked_graph(marker: Path) -> OnnxBackbone | None:
    """The graph a marker names, opened, if an earlier run checked it against torch; else None (a graph
    gone or damaged since is removed with its marker, to be exported and checked again)."""
    try:
        graph = marker.parent / marker.read_text().strip()
    except OSError:
        return None
    try:
        return OnnxBackbone(graph)
    except Exception:  # noqa: BLE001 - whatever onnxruntime raises for a file it cannot read
        graph.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        return None


def for_inference(backbone: nn.Module, example: torch.Tensor, *, cache_dir: Path | None = None,
                  runtime: str = "auto", also_mark: Path | None = None) -> nn.Module:
    """The fastest equivalent of `backbone` available here, in eval mode (see the module notes).

    runtime: `auto` (ONNX Runtime if it can run the model, else torch, with a warning), `onnx`
    (ONNX Runtime or a ConfigError) or `torch`. An exported graph whose outputs differ from
    torch's is never used. `also_mark`: a second marker for the graph once it agrees (the
    `files_marker` of the files the backbone was built from).
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime {runtime!r}: choose from {', '.join(RUNTIMES)}")
    cache = Path(cache_dir or onnx_cache_dir())
    marker = cache / f"{graph_digest(backbone, example)}.checked"  # this backbone's graph, once it agreed with torch
    if runtime != "torch" and (checked := checked_graph(marker)) is not None:
        if also_mark is not None:
            atomic.write_text(also_mark, checked.path.name + "\n")
        return checked  # no folding, export or comparison again
    folded = fold_batchnorm(backbone, example)
    if runtime != "torch":
        import warnings

        try:
            runner = OnnxBackbone(export_onnx(folded, example, cache))
        except Exception as err:  # noqa: BLE001 - a speed-up that cannot be had falls back to torch
            if runtime == "onnx":
                raise ConfigError(f"--runtime onnx: ONNX Runtime cannot run this model ({type(err).__name__}: "
                                  f"{err}); use --runtime torch") from None
            warnings.warn(f"ONNX Runtime not used, predicting with torch ({type(err).__name__}: {err})", stacklevel=2)
        else:
            with torch.inference_mode():
                if torch.allclose(runner(example), folded(example), atol=1e-3, rtol=1e-3):
                    for mark in (marker, also_mark) if also_mark is not None else (marker,):
                        atomic.write_text(mark, runner.path.name + "\n")
                    return runner
            if runtime == "onnx":
                raise ConfigError(f"--runtime onnx: the exported graph ({runner.path}) gives other outputs than "
                                  "torch for this model; use --runtime torch")
            warnings.warn("ONNX Runtime not used: its outputs differ from torch's for this model", stacklevel=2)
    return ChannelsLast(folded).eval()
