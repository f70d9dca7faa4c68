"""Keep a study's per-fold results in the repository, and put them back to resume the study.

A study's run folder (`audiocnn study ... --out RUN`) holds models, checkpoints and logs that
are too large to commit, and the machine that ran it does not last. What the study report
needs is small: each variant's `recipe.json` and each fold's `metrics.json`,
`robustness.json` and the label/prediction columns of `predictions.csv`. `save` copies those
into an archive folder (gzip for the predictions); `restore` writes them back into a run
folder, where `audiocnn study` sees the folds as finished and trains only the rest.

    .venv/bin/python benchmarks/study_archive.py save runs/study-esc50 docs/study-esc50/runs
    .venv/bin/python benchmarks/study_archive.py restore docs/study-esc50/runs runs/study-esc50
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import shutil
from pathlib import Path

from audiocnn.config import recipe_from_dict
from audiocnn.training.cv import same_recipe

KEPT = ("metrics.json", "robustness.json")
PREDICTION_COLUMNS = ("path", "label", "predicted", "confidence", "correct")


def save(run: Path, archive: Path) -> int:
    """Copy every finished fold of every variant under `run` into `archive`; returns the fold count."""
    folds = 0
    for recipe in sorted(run.glob("*/recipe.json")):
        variant = recipe.parent
        finished = sorted(variant.glob("fold*/metrics.json"))
        if not finished:
            continue
        target = archive / variant.name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(recipe, target / "recipe.json")
        for metrics in finished:
            fold, kept = metrics.parent, target / metrics.parent.name
            kept.mkdir(exist_ok=True)
            for name in KEPT:
                if (fold / name).is_file():
                    shutil.copy2(fold / name, kept / name)
            with (fold / "predictions.csv").open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(PREDICTION_COLUMNS)
            writer.writerows([row[c] for c in PREDICTION_COLUMNS] for row in rows)
            # mtime=0: the same predictions give the same bytes, so git sees no change
            with gzip.GzipFile(kept / "predictions.csv.gz", "wb", mtime=0) as handle:
                handle.write(text.getvalue().encode())
            folds += 1
    return folds


def restore(archive: Path, run: Path) -> int:
    """Write archived folds back into `run` (never over a fold that is already there)."""
    folds = 0
    for recipe in sorted(archive.glob("*/recipe.json")):
        variant = run / recipe.parent.name
        variant.mkdir(parents=True, exist_ok=True)
        if not (variant / "recipe.json").is_file():
            shutil.copy2(recipe, variant / "recipe.json")
        elif not same_recipe(variant / "recipe.json", recipe_from_dict(json.loads(recipe.read_text()))):
            raise SystemExit(f"{variant}: holds runs of another recipe than {recipe}; restore into another folder")
        for kept in sorted(recipe.parent.glob("fold*")):
            fold = variant / kept.name
            if (fold / "metrics.json").is_file():
                continue
            fold.mkdir(exist_ok=True)
            with gzip.open(kept / "predictions.csv.gz", "rt") as handle:
                (fold / "predictions.csv").write_text(handle.read())
            for name in KEPT:
                if (kept / name).is_file():
                    shutil.copy2(kept / name, fold / name)
            folds += 1
    return folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["save", "restore"])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    n = (save if args.action == "save" else restore)(args.source, args.target)
    print(f"{args.action}: {n} fold(s) from {args.source} to {args.target}")


if __name__ == "__main__":
    main()
