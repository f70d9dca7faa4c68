"""The confusion matrix of a cross-validation run, with readable class names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audiocnn.viz.axes import figure, save


def save_confusion(matrix: np.ndarray, classes: list[str], out: Path) -> Path:
    """Row-normalised confusion matrix; counts on the diagonal-free cells where they matter."""
    n = len(classes)
    size = max(6.0, 0.28 * n + 3)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = figure(figsize=(size, size))
    ax = fig.subplots()
    artist = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=8 if n > 20 else 10)
    ax.set_yticks(range(n), classes, fontsize=8 if n > 20 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, j in zip(*np.nonzero(matrix)):
        if n <= 60:
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6 if n > 20 else 9,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(artist, ax=ax, shrink=0.6, label="share of the true class")
    ax.set_title(f"Confusion over all test folds ({int(matrix.sum())} clips)")
    return save(fig, out, dpi=110)
