"""Do open-set scores in embedding space tell known sounds from the rest better than the top
probability? A model's penultimate features (timm's pre-logits) of its own training clips give
class means and a shared covariance; each out-of-domain recording (the mean of its windows'
features) is scored by its nearness to the training classes:

- `mahalanobis`: minus the smallest Mahalanobis distance to a class mean (tied covariance, 0.1%
  shrinkage; Lee et al. 2018);
- `knn`: mean cosine similarity to its 10 nearest training clips (Sun et al. 2022);
- `class_cosine`: the largest cosine similarity to a class mean.

The AUROC between in-class and none-of-the-50 recordings is printed for each (ood_score.py gives
the top-probability, max-logit and energy ones).

    .venv/bin/python benchmarks/ood_embedding_scores.py --set runs/ood --model src/audiocnn/bundled/esc50-mobilenetv2 \\
        --data ../shared/data/esc50 --json benchmarks/results/ood_embedding_scores.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from audiocnn import audio, bundle
from audiocnn.datasets.images import clip_images
from audiocnn.datasets.recipe import limited_dataset
from audiocnn.features.windows import windows
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor
from audiocnn.training.calibration import validation_clips

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ood_score import auroc  # noqa: E402 - a sibling benchmark script


def embed(net: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    """Pre-logits features of unnormalised images."""
    parts = []
    with torch.inference_mode():
        for i in range(0, len(images), 64):
            x = net.normalise(images[i:i + 64])
            parts.append(net.backbone.forward_head(net.backbone.forward_features(x), pre_logits=True))
    return torch.cat(parts).double().numpy()


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/esc50"), help="the model's training data")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = bundle.load(args.model)
    net = model.model.eval()
    held = {clip.path for clip in validation_clips(model, args.data)}
    train = [clip for clip in limited_dataset(model.recipe, args.data).clips if clip.path not in held]
    features = embed(net, clip_images(train, net.frontend, model.clip_seconds, args.cache_dir, progress=False))
    labels = np.array([model.labels.index(clip.label) for clip in train])
    means = np.stack([features[labels == k].mean(axis=0) for k in range(len(model.labels))])
    centred = features - means[labels]
    covariance = centred.T @ centred / len(features)
    covariance += 1e-3 * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    precision = np.linalg.inv(covariance)
    train_unit, means_unit = unit(features), unit(means)

    predictor = Predictor(model, PredictOptions(runtime="torch"))
    with (args.set / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    scores: dict[str, list[float]] = {"mahalanobis": [], "knn": [], "class_cosine": []}
    for row in rows:
        wave = audio.load(args.set / row["file"], model.sample_rate)
        cut = np.stack([samples for _, samples in windows([wave], predictor.window, predictor.hop)])
        with torch.inference_mode():
            feature = embed(net, net.images(torch.from_numpy(cut))).mean(axis=0)
        offset = feature - means
        scores["mahalanobis"].append(-float(np.einsum("ij,jk,ik->i", offset, precision, offset).min()))
        scores["knn"].append(float(np.sort(train_unit @ unit(feature))[-10:].mean()))
        scores["class_cosine"].append(float((means_unit @ unit(feature)).max()))
    known = np.array([row["class"] != "none" for row in rows])
    result = {name: auroc(np.array(v)[known], np.array(v)[~known]) for name, v in scores.items()}
    for name, value in result.items():
        print(f"{name}: AUROC known vs none {value:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "set": str(args.set), "recordings": len(rows),
                                         "train_clips": len(train), "date": time.strftime("%Y-%m-%d"),
                                         "auroc": result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
