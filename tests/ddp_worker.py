"""Run by tests/test_ddp.py as a script, once for both ranks: everything is imported once, then the
process forks, and each copy takes its rank from its environment (RANK, LOCAL_RANK), as a rank that
torchrun starts would. Trains a tiny model with 2 CPU ranks (gloo) on 32 clips whose labels are their
ids, and writes what each rank saw and which validation accuracy it logged. One import of torch and
Lightning, not two: they took longer than the training."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import lightning as L
import torch

from audiocnn.config import load_recipe
from audiocnn.features import create_frontend
from audiocnn.training.fit import SplitData, fit_split
from conftest import TEST_BACKBONE
from forking import start_forked, wait_for


class Spy(L.Callback):
    """Records the sample ids (= labels) a rank trains on, and its local validation hits."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.val_local: list[int] = []
        self.val_losses: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0:
            self.seen += batch[1].tolist()

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.current_epoch == trainer.max_epochs - 1:
            logits = module(batch[0])
            self.val_local += (logits.argmax(-1) == batch[1]).int().tolist()
            self.val_losses.append(float(torch.nn.functional.cross_entropy(logits, batch[1])))

    def on_validation_epoch_end(self, trainer, module) -> None:
        self.val_logged = float(trainer.callback_metrics["val_acc"])
        self.val_loss_logged = float(trainer.callback_metrics["val_loss"])


def main(out: Path) -> None:
    recipe = load_recipe(None, [f"model.backbone={TEST_BACKBONE}", "train.epochs=2", "train.batch_size=4",
                                "train.devices=2", "train.strategy=ddp", "train.threads=1", "frontend.n_mels=16",
                                "train.precision=32-true"])
    generator = torch.Generator().manual_seed(0)
    n = 32  # label == clip id, so a rank's labels say exactly which clips it saw
    images = torch.randn(n, 1, 16, 20, generator=generator)
    labels = torch.arange(n)
    data = SplitData(train=(images[:24], labels[:24]), val=(images[24:], labels[24:]), test=None)
    spy = Spy()
    result = fit_split(recipe, create_frontend(recipe.frontend), data, n, out / "run", progress=False, callbacks=[spy])
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    (out / f"rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world": world, "seen": spy.seen, "val_local": spy.val_local,
        "val_logged": spy.val_logged,
        "val_losses": spy.val_losses, "val_loss_logged": spy.val_loss_logged, "is_global_zero": result.is_global_zero,
    }))


def _run_as(rank: int, out: Path) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank))
    main(out)


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    other = start_forked(lambda: _run_as(1, folder))  # nothing has run yet but imports: no thread, no process group
    _run_as(0, folder)
    code = wait_for(other)
    sys.exit(0 if code == 0 else f"rank 1 ended with {code}")
