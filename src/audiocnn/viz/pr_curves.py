"""`audiocnn evaluate`'s picture: each class's precision against recall over all thresholds, the
average precision in its legend, so a reviewer sees where a threshold buys recall and what it costs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audiocnn.viz.axes import figure, save

#: Classes drawn at most (the most annotated first); the report lists every one.
MAX_CURVES = 12


def save_pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], classes: dict[str, dict], out: Path,
                   title: str) -> Path:
    """One step line per class (precision over recall), the `MAX_CURVES` most annotated classes."""
    shown = sorted(curves, key=lambda label: (-classes[label]["annotated_events"], label))[:MAX_CURVES]
    fig = figure(figsize=(7.5, 5.5))
    ax = fig.subplots()
    for label in shown:
        precision, recall = curves[label]
        ap = classes[label]["average_precision"]
        ax.step(np.r_[0.0, recall], np.r_[precision[:1] if len(precision) else [1.0], precision], where="pre",
                label=f"{label} (AP {ap:.2f})" if ap is not None else f"{label} (not annotated here)")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("recall (share of annotated segments found)")
    ax.set_ylabel("precision (share of called segments right)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return save(fig, out)
