"""Rebuild a fold's model bundle from its last checkpoint, for CV runs made before `cv` saved
fold models itself (`RUN/foldK/model`). Checks the rebuilt model against the fold's own
predictions.csv, so the bundle is known to be the model that was scored.

    .venv/bin/python benchmarks/fold_bundle.py RUN --fold 1 --data ../shared/data/esc50
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from audiocnn import bundle
from audiocnn.classifier import AudioClassifier
from audiocnn.config import recipe_from_dict
from audiocnn.cv import prepare, split_data
from audiocnn.datasets import make_splits
from audiocnn.features import create_frontend
from audiocnn.models import create
from audiocnn.train import normalisation, predict_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/esc50"))
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "audiocnn" / "features")
    args = parser.parse_args()

    recipe = recipe_from_dict(json.loads((args.run / "recipe.json").read_text()), "recipe.json")
    dataset, images, rows = prepare(recipe, args.data, args.cache_dir, progress=False)
    split = {s.name: s for s in make_splits(dataset, val_fraction=recipe.data.val_fraction,
                                            seed=recipe.data.seed)}[f"fold{args.fold}"]
    data = split_data(split, images, rows, dataset)
    fold_dir = args.run / split.name
    frontend = create_frontend(recipe.frontend)
    backbone = create(recipe.model.backbone, len(dataset.classes), frontend.out_channels, "none")
    state = torch.load(fold_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")})
    model = AudioClassifier(frontend, backbone, *normalisation(data.train[0])).eval()

    with (fold_dir / "predictions.csv").open() as handle:
        scored = np.array([[float(r[c]) for c in dataset.classes] for r in csv.DictReader(handle)])
    rebuilt = predict_images(model, data.test[0]).numpy()
    agree = float((rebuilt.argmax(1) == scored.argmax(1)).mean())
    print(f"rebuilt fold {args.fold}: top-1 agrees with predictions.csv on {agree:.1%} of test clips, "
          f"max |Δp| {np.abs(rebuilt - scored).max():.2e}")
    if agree < 0.99:
        raise SystemExit("the rebuilt model does not match the scored one")
    metrics = json.loads((fold_dir / "metrics.json").read_text())
    print(bundle.save(fold_dir / "model", model, dataset.classes, recipe, metrics))


if __name__ == "__main__":
    main()
