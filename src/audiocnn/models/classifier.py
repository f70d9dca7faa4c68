"""Waveforms in, class logits out: frontend → normalisation → backbone, as one module.

This is what a bundle restores and what prediction, explanation, serving and export use, so
every one of them turns audio into images exactly as training did. Training itself feeds
cached (normalised) images straight to `backbone`, which is the same computation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audiocnn.features import Frontend


class AudioClassifier(nn.Module):
    def __init__(self, frontend: Frontend, backbone: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.frontend = frontend
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def images(self, waveforms: Tensor) -> Tensor:
        """The normalised spectrogram images the backbone sees, (batch, channels, rows, frames)."""
        return self.normalise(self.frontend(waveforms))

    def normalise(self, features: Tensor) -> Tensor:
        return (features - self.mean) / self.std

    def forward(self, waveforms: Tensor) -> Tensor:
        return self.backbone(self.images(waveforms))
