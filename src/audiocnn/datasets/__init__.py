"""Datasets: one module per dataset, all returning `Dataset` with folds and groups.

`load_dataset(name, root)` is the one entry point; `make_splits` turns any of them into
(train, val, test) splits.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from audiocnn.datasets import annotated, csvlist, esc50, folder, gtzan, urbansound8k
from audiocnn.datasets.base import (
    Clip,
    Dataset,
    Split,
    assign_folds,
    holdout,
    make_splits,
    split_fold,
)
from audiocnn.errors import DatasetError

LOADERS = {
    "esc50": esc50.load,
    "urbansound8k": urbansound8k.load,
    "gtzan": gtzan.load,
    "folder": folder.load,
    "csv": csvlist.load,
    "annotations": annotated.load,
}


def loader_options(name: str) -> set[str]:
    """The options `load_dataset(name, ...)` takes besides the root."""
    if name not in LOADERS:
        raise DatasetError(f"unknown dataset {name!r} (choose from: {', '.join(LOADERS)})")
    return {p for p in inspect.signature(LOADERS[name]).parameters if p not in ("root", "csv_path")}


def load_dataset(name: str, root: str | Path, **options: Any) -> Dataset:
    """Load dataset `name` from `root` (for "csv", root is the CSV file).

    Args:
        name: one of `LOADERS`: esc50, urbansound8k, gtzan, folder, csv, annotations.
        root: the dataset's folder (its layout: the README's "Datasets and folds").
        **options: for the loader (`loader_options(name)` lists them), e.g. `n_folds`, `seed`,
            GTZAN's `split` and `splits_dir`, the annotations' `clip_seconds`, `label_column`,
            `negatives` and `negative_label`. None means the loader's default.

    Returns:
        The `Dataset`: classes, clips with folds (and groups), and the problems found reading it.

    Raises:
        DatasetError: an unknown name, a missing root or metadata, or an option the loader does not
            take (never silently ignored).

    Example:
        >>> import shutil, tempfile
        >>> import numpy as np
        >>> import soundfile as sf
        >>> root = Path(tempfile.mkdtemp())
        >>> for label, hz in [("high", 2000), ("low", 200)]:
        ...     (root / label).mkdir()
        ...     for i in range(2):
        ...         sf.write(root / label / f"{i}.wav", 0.1 * np.sin(2 * np.pi * hz * np.arange(1600) / 16000), 16000)
        >>> dataset = load_dataset("folder", root, n_folds=2)
        >>> dataset.classes, len(dataset.clips), dataset.folds
        (['high', 'low'], 4, [1, 2])
        >>> [(s.name, len(s.test)) for s in make_splits(dataset, val_fraction=0)]
        [('fold1', 2), ('fold2', 2)]
        >>> load_dataset("folder", root, split="filtered")
        Traceback (most recent call last):
        audiocnn.errors.DatasetError: folder: does not take split (it takes: n_folds, seed)
        >>> shutil.rmtree(root)
    """
    accepted = loader_options(name)
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: dataset root does not exist")
    options = {k: v for k, v in options.items() if v is not None}
    unsupported = sorted(set(options) - accepted)
    if unsupported:
        raise DatasetError(
            f"{name}: does not take {', '.join(unsupported)} (it takes: {', '.join(sorted(accepted)) or 'nothing'})"
        )
    return LOADERS[name](root, **options)


__all__ = ["Clip", "Dataset", "LOADERS", "Split", "assign_folds", "holdout", "load_dataset", "loader_options", "make_splits", "split_fold"]
