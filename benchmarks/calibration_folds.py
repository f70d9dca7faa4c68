"""Does calibration hold on the test folds? Expected calibration error (ECE, 15 bins) and NLL of a
cv run's fold models on their own held-out test folds, with the temperature each fold model
fitted on its validation clips (`audiocnn calibrate`, or training) and without it; and the share of
test clips its `unknown` threshold sets aside, with the top-1 of the rest.

    .venv/bin/python benchmarks/calibration_folds.py runs/esc50-cpu --data ../shared/data/esc50 \\
        --json benchmarks/results/calibration_folds.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from audiocnn import bundle
from audiocnn.datasets import split_fold
from audiocnn.datasets.images import clip_images
from audiocnn.datasets.recipe import limited_dataset
from audiocnn.training.calibration import expected_calibration_error


def score_fold(model_dir: Path, data: Path) -> dict[str, float]:
    model = bundle.load(model_dir)
    if not model.calibration:
        raise SystemExit(f"{model_dir}: not calibrated; run `audiocnn calibrate --model {model_dir}` first")
    fold = split_fold(model.metrics)
    clips = [c for c in limited_dataset(model.recipe, data).clips if c.fold == fold]
    images = clip_images(clips, model.model.frontend, model.clip_seconds, None, progress=False)
    logits = model.model.image_logits(images)
    labels = torch.tensor([model.labels.index(c.label) for c in clips])
    raw, scaled = logits.softmax(-1).numpy(), (logits / model.temperature).softmax(-1).numpy()
    truth = labels.numpy()
    answered = scaled.max(axis=1) >= model.unknown_below
    return {"fold": fold, "clips": len(clips), "temperature": model.temperature,
            "ece_uncalibrated": expected_calibration_error(raw, truth),
            "ece_calibrated": expected_calibration_error(scaled, truth),
            "nll_uncalibrated": float(F.cross_entropy(logits, labels)),
            "nll_calibrated": float(F.cross_entropy(logits / model.temperature, labels)),
            "unknown_below": model.unknown_below, "answered": float(answered.mean()),
            "top1_all": float((scaled.argmax(axis=1) == truth).mean()),
            "top1_answered": float((scaled.argmax(axis=1) == truth)[answered].mean()) if answered.any() else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a cv run folder (fold*/model, calibrated)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/esc50"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folds = [score_fold(model_dir, args.data) for model_dir in sorted(args.run.glob("fold*/model"))]
    for f in folds:
        print(f"fold {f['fold']}: T {f['temperature']:.3f}; ECE {f['ece_uncalibrated']:.3f} -> {f['ece_calibrated']:.3f}, "
              f"NLL {f['nll_uncalibrated']:.3f} -> {f['nll_calibrated']:.3f}; unknown below {f['unknown_below']:.2f}: "
              f"{100 * f['answered']:.0f}% answered, top-1 {100 * f['top1_answered']:.1f}% of them "
              f"({100 * f['top1_all']:.1f}% of all)")
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "date": time.strftime("%Y-%m-%d"),
                                         "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                                         "folds": folds}, indent=2) + "\n")


if __name__ == "__main__":
    main()
