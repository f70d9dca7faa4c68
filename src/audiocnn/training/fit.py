"""Train one model on one split with Lightning: cached images in, an AudioClassifier out.

`fit_split` is the whole path for one fold: normalise with training statistics, train with
the recipe's optimiser, schedule, precision and augmentation, keep the last epoch or the
best epoch *on the validation clips* (taken from the training folds; the test fold is never
looked at), then score the test clips once. Checkpoints make a killed run resumable: rerun
the same command and it continues from `checkpoints/last.ckpt`.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from audiocnn.config import Recipe
from audiocnn.config.train import TrainConfig
from audiocnn.errors import ConfigError
from audiocnn.features import Frontend
from audiocnn.models.classifier import AudioClassifier
from audiocnn.models.factory import create
from audiocnn.training.calibration import MIN_VALIDATION_CLIPS, Calibration, calibrate
from audiocnn.training.module import LitClassifier
from audiocnn.training.resume import AtomicCheckpointIO, RandomState, refuse_objects, usable_checkpoints


class _HideAdverts(logging.Filter):
    """Lightning prints a product tip on every fit; users of a CLI need their own output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


@contextlib.contextmanager
def quiet_fit(threads: int | None) -> Iterator[None]:
    """For the length of one fit: Lightning's tip hidden, its torch deprecation warning ignored,
    and `threads` CPU threads; all three are restored after, so importing or calling the
    library leaves the process as it found it."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    advert = _HideAdverts()
    before = torch.get_num_threads()
    logger.addFilter(advert)
    try:
        with warnings.catch_warnings():
            # Lightning 2.6 calls a torch API that torch 2.14 deprecated; nothing a user can act on.
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)
            if threads:
                torch.set_num_threads(threads)
            yield
    finally:
        torch.set_num_threads(before)
        logger.removeFilter(advert)


@dataclass
class SplitData:
    """Images (already computed) and label indices of one split's three parts."""

    train: tuple[Tensor, Tensor]
    val: tuple[Tensor, Tensor] | None
    test: tuple[Tensor, Tensor] | None
    train_copies: Tensor | None = None  # (copies, n_train, ...): waveform-augmented images of the train clips
    # (1 + copies, n_train, classes): the distillation teachers' probabilities for each train image
    train_targets: Tensor | None = None
    outliers: Tensor | None = None  # (windows, ...): images of none of the classes (outlier exposure)


class RandomCopy(Dataset):
    """Each item is its original image or one of its augmented copies, drawn anew every epoch;
    with `targets` (one per version), the item also carries that version's teacher probabilities."""

    def __init__(self, originals: Tensor, copies: Tensor, labels: Tensor, targets: Tensor | None = None) -> None:
        self.originals, self.copies = originals, copies  # (n, ...), (copies, n, ...): not concatenated, to save memory
        self.labels, self.targets = labels, targets

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        version = int(torch.randint(1 + len(self.copies), ()))
        image = self.originals[index] if version == 0 else self.copies[version - 1, index]
        if self.targets is None:
            return image, self.labels[index]
        return image, self.labels[index], self.targets[version, index]


@dataclass
class FitResult:
    """What training one split gives: the model (the weights `train.select` chose), its test logits,
    calibration and training time."""

    model: AudioClassifier
    test_logits: Tensor | None  # (n_test, n_classes)
    epochs_trained: int
    best_val_accuracy: float | None
    is_global_zero: bool = True  # under DDP only rank 0 writes results
    seconds: float = 0.0  # wall time of this call's training (a resumed fold counts only the rest)
    calibration: Calibration | None = None  # fitted on the validation clips (None without any)

    @property
    def test_probabilities(self) -> Tensor | None:
        """(n_test, n_classes) softmax of the test logits, uncalibrated."""
        return self.test_logits.softmax(-1) if self.test_logits is not None else None


def resolve_precision(precision: str) -> str:
    """`auto`: bfloat16 autocast where the hardware does bf16 natively, else float32.

    On a CPU without AVX512-BF16/AMX, bf16 is emulated and trains 10-20× slower than float32
    (BENCHMARKS.md, benchmarks/backbones.py), so it must not be a default.
    """
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32-true"


#: A channel's std is at least this share of the median channel's (and at least `MIN_STD`).
STD_FLOOR_SHARE, MIN_STD = 0.01, 1e-5


def normalisation(images: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training images: the model's fixed input scaling.

    A channel that barely varied in training (a unit of BirdNET's embedding that no training clip
    woke) is scaled as if it varied by a hundredth of the typical channel: divided by its own tiny
    std, any activity in a new recording would become a huge input and decide the answer alone.
    """
    dims = (0, 2, 3)
    std = images.std(dim=dims)
    floor = max(MIN_STD, STD_FLOOR_SHARE * float(std.median())) if std.numel() else MIN_STD
    return images.mean(dim=dims).tolist(), std.clamp_min(floor).tolist()


def fit_split(recipe: Recipe, frontend: Frontend, data: SplitData, n_classes: int, out: Path,
              *, progress: bool = True, callbacks: list[L.Callback] | None = None) -> FitResult:
    """Train on `data.train`, choose weights on `data.val`, score `data.test`; logs go to `out`.

    With `train.devices` > 1 (or several nodes) Lightning runs DDP: each rank trains on its own
    share of every epoch and metrics are reduced across ranks; `callbacks` are added as given.
    """
    with quiet_fit(recipe.train.threads):
        return _fit(recipe, frontend, data, n_classes, out, progress, callbacks or [])


def _callbacks(out: Path, cfg: TrainConfig, validated: bool, extra: list[L.Callback]
               ) -> tuple[ModelCheckpoint, list[L.Callback]]:
    """The best-model checkpoint, and every callback of a fit.

    Two checkpoints: `last.ckpt` after every epoch (what a killed run resumes from, and the
    model `select: last` keeps) and `best.ckpt` at the best validation accuracy. One callback
    with save_last=True is not enough: Lightning then refreshes last.ckpt only when the
    monitored best improves, so it can lag the real last epoch. The best callback comes
    first, so the last.ckpt of an epoch holds the best score as it stands after that epoch
    (saved the other way round, a resumed run compared against a stale best). `best.ckpt` holds
    the weights only: nothing resumes from it, and without the optimizer's moments it is a third
    of the size (58 MB against 20 MB for ResNet-10-T), written at every improvement.
    """
    checkpoints = ModelCheckpoint(
        dirpath=out / "checkpoints", filename="best", enable_version_counter=False, save_weights_only=True,
        monitor="val_acc" if validated else None, mode="max", save_top_k=1 if validated else 0,
    )
    latest = ModelCheckpoint(dirpath=out / "checkpoints", filename="last", save_top_k=1,
                             enable_version_counter=False)
    callbacks = [checkpoints, latest, RandomState(), *extra]
    if cfg.early_stopping and validated:
        callbacks.append(EarlyStopping(monitor="val_acc", mode="max", patience=cfg.early_stopping))
    return checkpoints, callbacks


def _fit(recipe: Recipe, frontend: Frontend, data: SplitData, n_classes: int, out: Path, progress: bool,
         callbacks: list[L.Callback]) -> FitResult:
    cfg = recipe.train
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    channels = frontend.out_channels
    mean, std = normalisation(data.train[0]) if frontend.standardised else ([0.0] * channels, [1.0] * channels)
    backbone = create(recipe.model.backbone, n_classes, channels, recipe.model.weights, drop_rate=recipe.model.drop_rate,
                      head=recipe.model.head, tap=recipe.frontend.get("tap", "embedding"))
    classifier = AudioClassifier(frontend, backbone, mean, std)
    lit = LitClassifier(classifier.backbone, cfg, n_classes,
                        outliers=classifier.normalise(data.outliers) if data.outliers is not None else None)
    train_loader = _loader(data.train, classifier, cfg, shuffle=True, copies=data.train_copies,
                           targets=data.train_targets)
    val_loader = _loader(data.val, classifier, cfg) if data.val is not None and len(data.val[1]) else None
    checkpoints, callbacks = _callbacks(out, cfg, val_loader is not None, callbacks)
    trainer = L.Trainer(
        max_epochs=cfg.epochs, precision=resolve_precision(cfg.precision), deterministic=cfg.deterministic,
        accelerator="auto", devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=cfg.strategy,
        default_root_dir=out,
        # One version_N folder per attempt: resuming after a kill keeps the earlier attempt's logs.
        logger=[CSVLogger(out, name="logs"), TensorBoardLogger(out, name="tensorboard")],
        callbacks=callbacks, plugins=[AtomicCheckpointIO()], enable_progress_bar=progress, enable_model_summary=False,
        num_sanity_val_steps=0, log_every_n_steps=max(1, min(10, len(train_loader))),  # tiny data: no warning
    )
    last = out / "checkpoints" / "last.ckpt"
    resume = usable_checkpoints(last.parent)  # damaged ones set aside with a warning; planted ones refused
    started = time.perf_counter()
    try:
        # weights_only: a checkpoint is unpickled with tensors and plain containers only, so a
        # file planted in a run folder cannot run code when the run is resumed.
        trainer.fit(lit, train_loader, val_loader, ckpt_path=str(last) if resume else None, weights_only=True)
    except ValueError as err:  # a checkpoint of an older optimizer layout (see cv.TRAINING_SCHEME)
        if "parameter group" not in str(err):
            raise
        raise ConfigError(f"{last}: saved by an older audiocnn (another optimizer layout), so this fold cannot "
                          f"resume from it; delete {last.parent} to train the fold again from the start") from None
    best_val = float(checkpoints.best_model_score) if checkpoints.best_model_score is not None else None
    if cfg.select == "best-val" and checkpoints.best_model_path:
        best = Path(checkpoints.best_model_path)
        try:
            lit.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
        except pickle.UnpicklingError as err:  # planted after the fit began
            refuse_objects(best, err)
    classifier.backbone = lit.backbone.to(memory_format=torch.contiguous_format).cpu().float().eval()
    test_logits = classifier.image_logits(data.test[0]) if data.test is not None else None
    # Calibrated on the validation clips (from the training folds): the test fold stays untouched.
    calibration = (calibrate(classifier.image_logits(data.val[0]), data.val[1])
                   if data.val is not None and len(data.val[1]) >= MIN_VALIDATION_CLIPS else None)
    return FitResult(classifier, test_logits, trainer.current_epoch, best_val, trainer.is_global_zero,
                     time.perf_counter() - started, calibration)


def _loader(part: tuple[Tensor, Tensor], classifier: AudioClassifier, cfg: TrainConfig, shuffle: bool = False,
            copies: Tensor | None = None, targets: Tensor | None = None) -> DataLoader:
    images, labels = part
    dataset: Dataset
    if copies is not None:
        dataset = RandomCopy(classifier.normalise(images), classifier.normalise(copies), labels, targets)
    elif targets is not None:
        dataset = TensorDataset(classifier.normalise(images), labels, targets[0])
    else:
        dataset = TensorDataset(classifier.normalise(images), labels)
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=shuffle, num_workers=cfg.num_workers,
                      drop_last=shuffle and len(dataset) > cfg.batch_size,
                      persistent_workers=cfg.num_workers > 0)

