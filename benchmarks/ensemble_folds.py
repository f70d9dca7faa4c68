"""An ensemble of cv runs on ESC-50's folds: the mean of their fold models' test probabilities.

Every run's `foldK/predictions.csv` holds each test clip's probabilities for every class; the
ensemble of fold K is their mean over the runs (the clips matched by path), which is what
`training.distill` uses as a teacher. Reported per fold: each member's accuracy, the
ensemble's, and the ensemble and every other member minus the first run, paired by clip with a
bootstrap 95% interval (so two runs given compare a recipe with its baseline by clip).

    .venv/bin/python benchmarks/ensemble_folds.py runs/cpu-timm-optimizer runs/cpu-freq-mixstyle runs/cpu-pcen \
        --json benchmarks/results/ensemble_folds.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ood_score import paired_by_clip  # noqa: E402 - a sibling benchmark script


def fold_probabilities(path: Path) -> tuple[list[str], dict[str, tuple[str, np.ndarray]]]:
    """The classes, and per test clip (by file name): its label and its probability of every class."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        classes = header[5:]
        return classes, {Path(row[0]).name: (row[1], np.array(row[5:], dtype=float)) for row in reader}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="cv run folders of the same data and folds")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folds = sorted(set.intersection(*({p.parent.name for p in run.glob("fold*/predictions.csv")}
                                      for run in args.runs)))
    if not folds:
        raise SystemExit("no fold has predictions.csv in every run")
    record: dict[str, object] = {"runs": [str(r) for r in args.runs], "date": time.strftime("%Y-%m-%d"), "folds": {}}
    for fold in folds:
        members = [fold_probabilities(run / fold / "predictions.csv") for run in args.runs]
        classes = members[0][0]
        if any(m[0] != classes for m in members):
            raise SystemExit(f"{fold}: the runs predict different classes")
        clips = sorted(members[0][1])
        if any(sorted(m[1]) != clips for m in members):
            raise SystemExit(f"{fold}: the runs' test clips differ")
        truth = np.array([classes.index(members[0][1][c][0]) for c in clips])
        hits = [np.array([m[1][c][1].argmax() for c in clips]) == truth for m in members]
        mean = np.mean([[m[1][c][1] for c in clips] for m in members], axis=0)
        ensemble = mean.argmax(axis=1) == truth
        ensemble_against_first = paired_by_clip(hits[0], ensemble)
        record["folds"][fold] = {"clips": len(clips), "members": {str(r): float(h.mean()) for r, h in zip(args.runs, hits)},
                                 "members_minus_first": {str(r): paired_by_clip(hits[0], h)
                                                         for r, h in zip(args.runs[1:], hits[1:])},
                                 "ensemble": float(ensemble.mean()),
                                 "ensemble_minus_first": ensemble_against_first["difference"],
                                 "ensemble_minus_first_ci95": ensemble_against_first["difference_ci95"]}
        print(fold, json.dumps(record["folds"][fold]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
