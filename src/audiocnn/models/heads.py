"""Heads on a frozen audio network's embedding: what a recipe trains when its backbone is BirdNET.

BirdNET V2.4 (`features.birdnet`) is frozen, so the trainable model is small: a linear layer
(the probe that scored 82.1% on ESC-50's folds) or a one-hidden-layer MLP. Either trains in
seconds an epoch on a CPU from cached embeddings. The module speaks timm's interface
(`num_features`, `forward_features`, `forward_head(pre_logits=True)`, `get_classifier`) so
that what reads a timm CNN's pooled features (`audiocnn embed --model`, distillation) reads
a head's too.
"""

from __future__ import annotations

from torch import Tensor, nn

from audiocnn.config.recipe import HeadKind

#: Hidden units of the `mlp` head.
MLP_HIDDEN = 512


class EmbeddingHead(nn.Module):
    """(batch, dim, 1, 1) standardised embeddings → (batch, classes) logits.

    Args:
        dim: the embedding's size (1,024 for BirdNET V2.4).
        n_classes: outputs.
        kind: `linear` (dropout, then one layer) or `mlp` (a hidden layer of `MLP_HIDDEN` GELUs first).
        drop_rate: dropout on the embedding (and on the hidden layer).
        tail: BirdNET's last layers (`models.birdnet_tail.BirdNetTail`), trained with the head: the input
            is then their activations, a window every `tail.columns` columns, and `dim` what they give.

    Example:
        >>> import torch
        >>> head = EmbeddingHead(1024, 50, "mlp")
        >>> head(torch.randn(2, 1024, 1, 1)).shape, head.num_features
        (torch.Size([2, 50]), 512)
    """

    def __init__(self, dim: int, n_classes: int, kind: HeadKind = "linear", drop_rate: float = 0.0,
                 tail: nn.Module | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.tail = tail
        hidden: list[nn.Module] = []
        if kind == "mlp":
            hidden = [nn.Dropout(drop_rate), nn.Linear(dim, MLP_HIDDEN), nn.GELU()]
            dim = MLP_HIDDEN
        self.hidden = nn.Sequential(nn.Flatten(), *hidden)
        self.num_features = dim
        self.drop = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(dim, n_classes)

    def forward_features(self, embeddings: Tensor) -> Tensor:
        """The features the class layer reads: the embedding itself (linear) or the hidden layer (mlp).
        With a `tail`, the input is its activations, (batch, channels, rows, windows × columns), and
        the embedding is the tail's output averaged over each clip's windows."""
        if self.tail is not None:
            embeddings = self._through_tail(embeddings)
        return self.hidden(embeddings)

    def _through_tail(self, maps: Tensor) -> Tensor:
        batch, channels, rows, width = maps.shape
        columns = self.tail.columns
        per_window = (maps.permute(0, 2, 3, 1).reshape(batch, rows, width // columns, columns, channels)
                      .permute(0, 2, 1, 3, 4).reshape(-1, rows, columns, channels))
        return self.tail(per_window).view(batch, width // columns, -1).mean(dim=1)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        """Logits of `forward_features`' output, or (pre_logits) that output as the class layer reads it."""
        return features if pre_logits else self.classifier(self.drop(features))

    def forward(self, embeddings: Tensor) -> Tensor:
        """Logits (batch, classes)."""
        return self.forward_head(self.forward_features(embeddings))

    def get_classifier(self) -> nn.Module:
        """The class layer (timm's name for it)."""
        return self.classifier
