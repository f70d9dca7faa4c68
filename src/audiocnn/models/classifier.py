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
    """Waveforms (batch, samples) at the frontend's rate in, class logits (batch, classes) out.

    Args:
        frontend: the features (`audiocnn.features.create_frontend`), a torch module.
        backbone: the image CNN (`audiocnn.models.factory.create`), or any module taking
            (batch, channels, rows, frames) images.
        mean: per-channel mean of the training images (dB), one per frontend channel.
        std: per-channel standard deviation of the training images, one per frontend channel.

    Example:
        >>> import torch
        >>> from audiocnn.features import create_frontend
        >>> frontend = create_frontend({"kind": "mel", "n_mels": 32})
        >>> backbone = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(frontend.out_channels, 3))
        >>> model = AudioClassifier(frontend, backbone, mean=[-40.0], std=[20.0]).eval()
        >>> waveforms = 0.1 * torch.randn(2, frontend.sample_rate)  # two clips of 1 s
        >>> model.images(waveforms).shape  # what the backbone sees: 32 mel bands, 20 ms frames
        torch.Size([2, 1, 32, 51])
        >>> model(waveforms).shape
        torch.Size([2, 3])
    """

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
        """Features scaled by the training images' per-channel statistics, as training fed them."""
        return (features - self.mean) / self.std

    def forward(self, waveforms: Tensor) -> Tensor:
        """Logits (batch, classes) of waveforms (batch, samples): frontend, normalisation, backbone."""
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
