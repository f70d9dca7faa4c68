"""What does `predict --runtime int8` cost in accuracy? Float vs 8-bit on held-out folds.

For each fold K of a cross-validation run (`audiocnn cv` or `audiocnn study`, which keep each
fold's model in RUN/foldK/model), the fold's model is quantized (`audiocnn quantize`,
calibrated on clips of the training folds only) in a scratch copy, then the float and the
8-bit model classify the fold's test clips as they are and under the robustness conditions
(quieter, recorded-like noise; see `audiocnn.training.robustness`). Both go through the same
`training.robustness.evaluate`, so only the backbone differs.

    .venv/bin/python benchmarks/int8.py runs/study-esc50/base --data ../shared/data/esc50 \\
        --json benchmarks/results/int8.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from audiocnn import bundle
from audiocnn.datasets import split_fold
from audiocnn.datasets.recipe import recipe_dataset
from audiocnn.inference.quantize import int8_graph, quantize
from audiocnn.inference.runtimes import OnnxBackbone
from audiocnn.models.classifier import AudioClassifier
from audiocnn.training.robustness import CONDITIONS, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a cv run folder with foldK/model bundles")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/esc50"))
    parser.add_argument("--clips", type=int, default=256, help="calibration clips per fold (default 256)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rows = []
    for model_dir in sorted(args.run.glob("fold*/model")):
        with tempfile.TemporaryDirectory() as work:
            copy = Path(shutil.copytree(model_dir, Path(work) / "model"))
            model = bundle.load(copy)
            fold = split_fold(model.metrics)
            start = time.perf_counter()
            info = quantize(model, args.data, n_clips=args.clips, progress=False)
            seconds = time.perf_counter() - start
            trained = model.model
            eight_bit = AudioClassifier(trained.frontend, OnnxBackbone(int8_graph(model)),
                                        trained.mean.flatten().tolist(), trained.std.flatten().tolist())
            clips = [c for c in recipe_dataset(model.recipe, args.data).clips if c.fold == fold]
            row = {"fold": fold, "quantize_seconds": seconds, "calibration_agreement": info["top1_agreement_on_calibration"],
                   "float": evaluate(trained, clips, model.labels, model.clip_seconds),
                   "int8": evaluate(eight_bit, clips, model.labels, model.clip_seconds)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    conditions = ["clean", *CONDITIONS]
    mean = {kind: {c: float(np.mean([r[kind][c] for r in rows])) for c in conditions} for kind in ("float", "int8")}
    result = {"machine": platform.node(), "run": str(args.run), "folds": rows, "mean": mean}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    names = {"clean": "as recorded", **CONDITIONS}
    print(f"\n{len(rows)} folds of {args.run}\n\n| test clips | float | int8 | difference |\n|---|---:|---:|---:|")
    for c in conditions:
        print(f"| {names[c]} | {100 * mean['float'][c]:.1f}% | {100 * mean['int8'][c]:.1f}% | "
              f"{100 * (mean['int8'][c] - mean['float'][c]):+.1f} |")


if __name__ == "__main__":
    main()
