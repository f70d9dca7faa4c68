"""What a bundle says about its model for others to read: the keys timm reads, and the card of a
model built on another's model (whose licence it inherits).

`bundle.save` writes both; they live here so the bundle module stays about reading and writing.
"""

from __future__ import annotations

from typing import Any

import torch

from audiocnn.config import Recipe
from audiocnn.models.classifier import AudioClassifier


def timm_keys(recipe: Recipe, labels: list[str], model: AudioClassifier) -> dict[str, Any]:
    """The part of config.json timm reads for `timm.create_model("local-dir:BUNDLE", pretrained=True)`.

    The CNN's input is the normalised spectrogram image (`input_size`: channels, rows,
    frames of one window), so `mean`/`std` are the per-channel dB statistics of training
    images, not ImageNet's.
    """
    window = torch.zeros(1, round(recipe.data.clip_seconds * model.frontend.sample_rate))
    with torch.inference_mode():
        channels, rows, frames = model.frontend(window).shape[1:]
    return {
        "architecture": recipe.model.backbone,
        "num_classes": len(labels),
        "label_names": list(labels),
        "model_args": {"in_chans": channels},
        "pretrained_cfg": {
            "input_size": [channels, rows, frames],
            "mean": model.mean.flatten().tolist(),
            "std": model.std.flatten().tolist(),
            "num_classes": len(labels),
        },
    }


def inherited_card(labels: list[str], recipe: Recipe, metrics: dict[str, Any], licence: str) -> str:
    """The MODEL_CARD.md of a bundle built on another's model (BirdNET): its licence, what it was trained
    on and scored, and what it cannot do. Written with the bundle, before config.json."""
    score = metrics.get("accuracy")
    scored = (f"{score:.1%} of the clips of the held-out split {metrics.get('split')!r}" if isinstance(score, float)
              else "no held-out score (trained on all data)")
    return (f"# Model card: a {recipe.model.head} head on {recipe.model.backbone}\n\n"
            f"- **Licence: {licence}.** The model files it is built on carry this licence, so this bundle is "
            "non-commercial and shared alike; the training data's own licence applies as well.\n"
            f"- Trained on: {recipe.data.dataset}, {len(labels)} classes, {recipe.data.clip_seconds:g} s clips.\n"
            f"- Scored: {scored}.\n"
            "- It cannot: `explain`, `quantize` or `export` (the embedding comes from a TFLite graph torch "
            "can neither differentiate nor trace); `predict`, `serve`, `embed` and `calibrate` work.\n")
