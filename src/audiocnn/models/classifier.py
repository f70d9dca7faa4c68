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

    def image_logits(self, images: Tensor, batch_size: int = 64) -> Tensor:
        """Logits (clips, classes) for unnormalised cached images (`datasets.images.clip_images`), in
        eval mode and batches: what training, calibration and distillation score held-out clips with."""
        self.eval()
        with torch.inference_mode():
            parts = [self.backbone(self.normalise(images[i : i + batch_size])).float()
                     for i in range(0, len(images), batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, 0)

    def predict_images(self, images: Tensor, batch_size: int = 64) -> Tensor:
        """Class probabilities (before any calibration) for unnormalised cached images."""
        return self.image_logits(images, batch_size).softmax(-1)
