"""Exact resume: a fold killed at any moment and run again ends exactly as an uninterrupted run.

Three things make that so, each missing from a plain Lightning fit:

- `AtomicCheckpointIO` writes every checkpoint to a temporary name and renames it, so a kill
  mid-save leaves the previous checkpoint, never half of one.
- `RandomState` stores the torch, NumPy and Python random generators in each checkpoint and
  puts them back on resume. Lightning restores weights, optimizer and schedule but not these,
  so a resumed run would shuffle, mask and drop out differently from the epoch it resumed at.
- `usable_checkpoints` looks at the checkpoints before a fit resumes from them: one that a
  disk error or an outside hand left damaged is set aside with a warning and the fold starts
  again; one that holds pickled objects (not written by audiocnn) is refused, never loaded.

A checkpoint is written at the end of each epoch only, so a kill mid-epoch redoes that epoch
from its start, with the generators as they were then.
"""

from __future__ import annotations

import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from audiocnn import atomic
from audiocnn.errors import AudiocnnWarning, ConfigError

#: What a checkpoint saved by `fit_split` always holds; one without them cannot be resumed from.
CHECKPOINT_KEYS = ("epoch", "global_step", "state_dict", "optimizer_states", "loops", "callbacks")
#: What `best.ckpt` (weights only: nothing resumes from it) always holds.
WEIGHTS_KEYS = ("epoch", "global_step", "state_dict")
RANDOM_STATE_KEY = "audiocnn_random_state"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint writer, with the file renamed into place only when whole."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Write the checkpoint under a temporary name, then rename it into place."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic.replaced(path) as partial:
            super().save_checkpoint(checkpoint, partial, storage_options)


class RandomState(L.Callback):
    """Saves the random generators with each checkpoint; restores them when a fit resumes."""

    def on_save_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Store every random generator's state in the checkpoint."""
        checkpoint[RANDOM_STATE_KEY] = _random_state()

    def on_load_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Restore the generators, so a resumed fit draws what the uninterrupted one would."""
        if RANDOM_STATE_KEY in checkpoint:  # a checkpoint of an audiocnn before exact resume has none
            _set_random_state(checkpoint[RANDOM_STATE_KEY])


def _random_state() -> dict[str, Any]:
    """Every generator training draws from, as tensors and plain data (loadable with weights_only)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["position"],
                         saved["has_gauss"], saved["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def usable_checkpoints(folder: Path) -> bool:
    """Whether `folder` holds checkpoints to resume from; damaged ones are set aside (with a
    warning) so the fold trains again from its start; ones holding objects are refused."""
    paths = [folder / name for name in ("last.ckpt", "best.ckpt") if (folder / name).exists()]
    problems = {path: problem for path in paths
                if (problem := checkpoint_problem(path, WEIGHTS_KEYS if path.name == "best.ckpt" else CHECKPOINT_KEYS))}
    for path, problem in problems.items():
        aside = folder.parent / f"{path.name}.damaged"  # kept for a person to look at, never read again
        path.replace(aside)
        warnings.warn(f"{path}: {problem}; moved to {aside}, and this fold trains again from its first epoch",
                      AudiocnnWarning, stacklevel=2)
    if problems or not (folder / "last.ckpt").is_file():
        for path in paths:  # a best.ckpt without its last.ckpt is no resume point (a kill in epoch 1)
            path.unlink(missing_ok=True)
        return False
    return True


def checkpoint_problem(path: Path, keys: tuple[str, ...] = CHECKPOINT_KEYS) -> str | None:
    """What is wrong with a checkpoint file that should hold `keys` (None: nothing). Raises
    ConfigError for a file that holds pickled objects: it was not written by audiocnn, and is never loaded."""
    if not path.is_file():
        return "not a regular file"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):  # weights_only met a class or function: someone planted this file
            refuse_objects(path, err)
        return "damaged (not a checkpoint torch can read)"
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as err:
        return f"damaged ({type(err).__name__}: {str(err).splitlines()[0][:100] if str(err) else 'cut short'})"
    if not isinstance(checkpoint, dict) or any(key not in checkpoint for key in keys):
        return "damaged (not a complete Lightning checkpoint)"
    return None


def refuse_objects(path: Path, err: Exception) -> None:
    """Raise the ConfigError for a checkpoint holding pickled objects (never loaded)."""
    raise ConfigError(f"{path}: not a checkpoint audiocnn wrote (it holds objects, not only tensors, so it is "
                      f"not loaded: {_first_line(err)}); delete it and run again") from None


def _first_line(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if "GLOBAL" in line] or str(err).splitlines() or [""]
    return lines[0][:120]
