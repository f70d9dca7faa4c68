"""ESC-50 5-fold cross-validation of a recipe (default recipes/cpu.yaml), with the figures
BENCHMARKS.md records: per-fold and mean ± std accuracy, macro-F1, wall time, the backbone's
training images/s next to the machine's float32 matmul GFLOP/s, and optionally the same
recipe from random initialisation on some folds (does ImageNet pretraining help?).

    .venv/bin/python benchmarks/esc50_cv.py --data ../shared/data/esc50 --out runs/esc50-cpu
    .venv/bin/python benchmarks/esc50_cv.py --data ../shared/data/esc50 --out runs/esc50-random \\
        --folds 1 2 --set model.weights=none

Runs resume (finished folds are kept), so a long benchmark can be continued after a stop.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from audiocnn.config import load_recipe
from audiocnn.datasets.images import default_cache_dir
from audiocnn.models import create
from audiocnn.training import robustness
from audiocnn.training.cv import run_cv
from audiocnn.training.fit import resolve_precision
from backbones import images_per_second, matmul_gflops


def robustness_per_fold(run: Path) -> dict[str, dict[str, float]]:
    """Condition -> foldK -> accuracy, from each fold's robustness.json (for paired comparisons)."""
    table: dict[str, dict[str, float]] = {}
    for fold_dir in sorted(p.parent for p in run.glob("fold*/metrics.json")):
        for condition, accuracy in robustness.scored(fold_dir).items():
            table.setdefault(condition, {})[fold_dir.name] = accuracy
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/esc50"))
    parser.add_argument("--recipe", type=Path, default=Path("recipes/cpu.yaml"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--folds", type=int, nargs="*", help="default: all five")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = parser.parse_args()

    recipe = load_recipe(args.recipe, args.overrides)
    torch.set_num_threads(recipe.train.threads or torch.get_num_threads())
    precision = resolve_precision(recipe.train.precision)
    model = create(recipe.model.backbone, 50, 1).to(memory_format=torch.channels_last)
    x = torch.randn(recipe.train.batch_size, 1, 128, 251).contiguous(memory_format=torch.channels_last)
    train_rate = images_per_second(model, x, torch.randint(0, 50, (len(x),)), train=True,
                                   bf16=precision.startswith("bf16"), warmup=2, steps=4)
    gflops = matmul_gflops()

    start = time.perf_counter()
    summary = run_cv(recipe, args.data, args.out, folds=args.folds, cache_dir=args.cache_dir, progress=False)
    wall = time.perf_counter() - start
    result = {
        "recipe": str(args.recipe), "overrides": args.overrides, "machine": platform.node(),
        "threads": torch.get_num_threads(), "precision": precision, "wall_seconds_this_call": wall,
        "train_images_per_second": train_rate, "matmul_fp32_gflops": gflops, **summary,
        "robustness_per_fold": robustness_per_fold(args.out),
    }
    (args.out / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_class_f1"}, indent=2))
    print("\n| fold | accuracy | macro-F1 |\n|---:|---:|---:|")
    for fold in summary["folds"]:
        print(f"| {fold['fold']} | {100 * fold['accuracy']:.1f}% | {fold['macro_f1']:.3f} |")
    print(f"| **mean ± std** | **{100 * summary['mean_accuracy']:.1f}% ± {100 * summary['std_accuracy']:.1f}** | "
          f"{summary['mean_macro_f1']:.3f} |")


if __name__ == "__main__":
    main()
