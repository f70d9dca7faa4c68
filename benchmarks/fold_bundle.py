"""Make a bundle from a CV fold's checkpoint, for runs made before `cv` saved each fold's model
(`RUN/foldK/model`). The model never saw fold K, so it can be tested honestly on fold K's clips
(benchmarks/denoise.py). Its accuracy on fold K is computed and stored in the bundle's metrics.

Runs made before the checkpoint fix refreshed `last.ckpt` only when validation improved, so
there both files hold the best-validation epoch (`select: best-val`), not the scored last one.

    .venv/bin/python benchmarks/fold_bundle.py RUN --fold 1 --checkpoint best --data ../shared/data/esc50
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from audiocnn import bundle
from audiocnn.config import recipe_from_dict
from audiocnn.datasets import make_splits
from audiocnn.features import create_frontend
from audiocnn.models import create
from audiocnn.models.classifier import AudioClassifier
from audiocnn.training.cv import split_data
from audiocnn.training.fit import normalisation
from audiocnn.training.prepare import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--checkpoint", default="last", help="checkpoint name in foldK/checkpoints (last, best)")
    parser.add_argument("--out", type=Path, help="bundle folder (default RUN/foldK/model)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/esc50"))
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "audiocnn" / "features")
    args = parser.parse_args()

    recipe = recipe_from_dict(json.loads((args.run / "recipe.json").read_text()), "recipe.json")
    prepared = prepare(recipe, args.data, args.cache_dir, progress=False)
    split = {s.name: s for s in make_splits(prepared.dataset, val_fraction=recipe.data.val_fraction,
                                            seed=recipe.data.seed)}[f"fold{args.fold}"]
    data = split_data(split, prepared)
    fold_dir = args.run / split.name
    frontend = create_frontend(recipe.frontend)
    backbone = create(recipe.model.backbone, len(prepared.dataset.classes), frontend.out_channels, "none")
    checkpoint = torch.load(fold_dir / "checkpoints" / f"{args.checkpoint}.ckpt", map_location="cpu",
                            weights_only=False)
    state = checkpoint["state_dict"]
    backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")})
    model = AudioClassifier(frontend, backbone, *normalisation(data.train[0])).eval()

    probabilities = model.predict_images(data.test[0]).numpy()
    truth = data.test[1].numpy()
    with (fold_dir / "predictions.csv").open() as handle:
        scored = np.array([[float(r[c]) for c in prepared.dataset.classes] for r in csv.DictReader(handle)])
    metrics = {"split": split.name, "test_fold": split.test_fold, "checkpoint": f"{args.checkpoint}.ckpt", "epoch": int(checkpoint["epoch"]) + 1,
               "accuracy": float((probabilities.argmax(1) == truth).mean()),
               "scored_model_accuracy": float((scored.argmax(1) == truth).mean()),
               "agreement_with_scored_model": float((probabilities.argmax(1) == scored.argmax(1)).mean())}
    print(json.dumps(metrics, indent=2))
    print(bundle.save(args.out or fold_dir / "model", model, prepared.dataset.classes, recipe, metrics))


if __name__ == "__main__":
    main()
