"""Cross-validation reports: what a reader of a run folder wants to see first.

`summary.json` for scripts, `summary.md` for people (accuracy and macro-F1 per fold, per-class
F1 over all test clips, each fold model's `unknown` threshold and the validation clips that set
it), `confusion.png` aggregated over folds with readable class names.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from audiocnn import atomic
from audiocnn.datasets import split_fold
from audiocnn.errors import ConfigError
from audiocnn.viz.confusion import save_confusion

#: Each fold's (and the run's) training time: apart from results, which repeat exactly.
TIMING = "timing.json"


def write_summary(run: Path, classes: list[str]) -> dict[str, Any]:
    """Summarise a run's finished folds: summary.json, summary.md, confusion.png and timing.json; the summary."""
    records = sorted(((p, json.loads(p.read_text())) for p in run.glob("fold*/metrics.json")),
                     key=lambda record: split_fold(record[1]) or 0)
    if not records:
        raise ConfigError(f"{run}: no finished folds to summarise")
    folds, metrics = [p for p, _ in records], [m for _, m in records]
    truth, predicted = _predictions(run, [p.parent for p in folds], classes)
    accuracies = np.array([m["accuracy"] for m in metrics])
    per_class = f1_score(truth, predicted, average=None, labels=range(len(classes)), zero_division=0)
    summary = {
        "mean_accuracy": float(accuracies.mean()),
        "std_accuracy": float(accuracies.std(ddof=1)) if len(accuracies) > 1 else 0.0,
        "mean_macro_f1": float(np.mean([m["macro_f1"] for m in metrics])),
        "folds": [{"fold": split_fold(m), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                   "unknown_below": m.get("calibration", {}).get("unknown_below")} for m in metrics],
        "per_class_f1": {c: float(f) for c, f in zip(classes, per_class)},
        "robustness": fold_robustness([p.parent for p in folds]),
    }
    # Timing apart: summary.json is the same for the same recipe, resumed after a kill or not.
    atomic.write_text(run / TIMING, json.dumps({"train_seconds": round(sum(map(fold_seconds, folds)), 1)}) + "\n")
    atomic.write_text(run / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic.write_text(run / "summary.md", _markdown(summary, len(truth),
                                                  unknown_lines({split_fold(m): m for m in metrics})))
    save_confusion(confusion_matrix(truth, predicted, labels=range(len(classes))), classes, run / "confusion.png")
    return summary


def unknown_lines(metrics: dict[int | None, dict[str, Any]]) -> list[str]:
    """`fold K: <threshold_summary>` for each fold's metrics: how each fold model says `unknown`."""
    from audiocnn.training.calibration import threshold_summary

    return [f"fold {fold}: {threshold_summary(m.get('calibration'), m.get('n_val'))}" for fold, m in metrics.items()]


def run_calibrations(run: Path) -> dict[int | None, dict[str, Any]]:
    """Each finished fold's metrics, by fold, in fold order (for the `cv` command's summary)."""
    records = sorted((json.loads(p.read_text()) for p in run.glob("fold*/metrics.json")),
                     key=lambda m: split_fold(m) or 0)
    return {split_fold(m): m for m in records}


def fold_seconds(metrics_path: Path) -> float:
    """Training seconds of the fold whose `metrics.json` is `metrics_path` (0 if not recorded).

    Kept in the fold's `timing.json`; runs before it kept `train_seconds` in metrics.json."""
    for path, key in ((metrics_path.with_name(TIMING), "train_seconds"), (metrics_path, "train_seconds")):
        try:
            return float(json.loads(path.read_text()).get(key, 0.0))
        except (OSError, ValueError, AttributeError):
            continue
    return 0.0


def fold_robustness(fold_dirs: list[Path]) -> dict[str, float]:
    """Mean accuracy per condition over the folds, for the conditions every fold scored."""
    from audiocnn.training.robustness import scored

    folds = [scored(d) for d in fold_dirs]
    # a mean over some folds only would not compare with the clean accuracy
    common = [c for c in folds[0] if all(c in f for f in folds)] if folds else []
    return {condition: float(np.mean([f[condition] for f in folds])) for condition in common}


def _predictions(run: Path, fold_dirs: list[Path], classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    index = {c: i for i, c in enumerate(classes)}
    truth, predicted = [], []
    for fold_dir in fold_dirs:
        with (fold_dir / "predictions.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                truth.append(index[row["label"]])
                predicted.append(index[row["predicted"]])
    return np.array(truth), np.array(predicted)


def _markdown(summary: dict[str, Any], n_clips: int, unknown: list[str]) -> str:
    lines = [
        "# Cross-validation summary", "",
        f"**Accuracy {100 * summary['mean_accuracy']:.1f}% ± {100 * summary['std_accuracy']:.1f}** "
        f"(mean ± std over {len(summary['folds'])} fold{'s' if len(summary['folds']) != 1 else ''}), "
        f"macro-F1 {summary['mean_macro_f1']:.3f}, "
        f"{n_clips} test clips.", "",
        *_robustness_lines(summary["robustness"]),
        "| fold | accuracy | macro-F1 |", "|---:|---:|---:|",
        *(f"| {f['fold']} | {100 * f['accuracy']:.1f}% | {f['macro_f1']:.3f} |" for f in summary["folds"]),
        "", "## F1 per class (all test clips)", "", "| class | F1 |", "|---|---:|",
        *(f"| {c} | {f:.3f} |" for c, f in sorted(summary["per_class_f1"].items(), key=lambda kv: kv[1])),
        "", "## When each fold's model says `unknown`", "", *(f"- {line}" for line in unknown),
    ]
    return "\n".join(lines) + "\n"


def _robustness_lines(accuracy: dict[str, float]) -> list[str]:
    from audiocnn.training.robustness import CONDITIONS

    if not accuracy:
        return []
    shown = ", ".join(f"{CONDITIONS[c]} {100 * accuracy[c]:.1f}%" for c in CONDITIONS if c in accuracy)
    return [f"The same test clips as a recorder might give them (`robustness.json`): {shown}.", ""]
