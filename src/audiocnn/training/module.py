"""The Lightning module: cross-entropy training of a backbone on normalised spectrogram images.

SpecAugment, Freq-MixStyle and mixup are applied to each batch here (the images are cached, so these are
the augmentations that can be redrawn every step); the optimiser and the learning-rate
schedule come from the recipe's `train` section.
"""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from audiocnn.config.train import TrainConfig
from audiocnn.errors import TrainingError
from audiocnn.training.augment import freq_mixstyle, mixup, spec_augment
from audiocnn.training.distill import distillation_loss
from audiocnn.training.outliers import outlier_loss


class LitClassifier(L.LightningModule):
    """Cross-entropy training of a backbone on normalised spectrogram images."""

    def __init__(self, backbone: torch.nn.Module, cfg: TrainConfig, n_classes: int, outliers: Tensor | None = None) -> None:
        super().__init__()
        self.backbone = backbone.to(memory_format=torch.channels_last)
        self.cfg = cfg
        self.outliers = outliers  # normalised images of none of the classes; not saved in checkpoints
        self.train_accuracy = MulticlassAccuracy(n_classes, average="micro")
        self.val_accuracy = MulticlassAccuracy(n_classes, average="micro")

    def forward(self, images: Tensor) -> Tensor:
        """Logits of a batch of normalised images (channels-last for speed)."""
        return self.backbone(images.contiguous(memory_format=torch.channels_last))

    def training_step(self, batch: tuple[Tensor, ...], _: int) -> Tensor:
        """Loss of one augmented batch (SpecAugment, mixup, distillation and outliers as the recipe says)."""
        images, labels, *teachers = batch  # a third part: the distillation teachers' probabilities
        images = spec_augment(images, self.cfg.specaugment)
        images = freq_mixstyle(images, self.cfg.freq_mixstyle)
        images, labels_a, labels_b, lam = mixup(images, labels, self.cfg.mixup)
        if self.outliers is not None:  # outlier exposure: a few windows of none of the classes join the batch
            pick = torch.randint(len(self.outliers), (self.cfg.outliers.per_batch,))
            everything = self(torch.cat([images, self.outliers[pick].to(images.device, images.dtype)]))
            logits, outlier_logits = everything[: len(images)], everything[len(images):]
        else:
            logits = self(images)
        smoothing = self.cfg.label_smoothing
        if teachers:  # no mixup with teachers (the recipe refuses it): lam is 1
            distill = self.cfg.distill
            loss = distillation_loss(logits, labels, teachers[0], distill.weight, distill.temperature, smoothing)
        else:
            loss = lam * F.cross_entropy(logits, labels_a, label_smoothing=smoothing)
        if lam < 1:
            loss = loss + (1 - lam) * F.cross_entropy(logits, labels_b, label_smoothing=smoothing)
        if self.outliers is not None:
            unsure = outlier_loss(outlier_logits)
            loss = loss + self.cfg.outliers.weight * unsure
            self.log("outlier_loss", unsure, on_step=False, on_epoch=True)
        if not torch.isfinite(loss):  # every later step would be NaN too, and the model useless
            raise TrainingError(f"training diverged in epoch {self.current_epoch + 1}: the loss is {float(loss.detach())} "
                                f"(lower train.lr, now {self.cfg.lr:g})")
        self.train_accuracy(logits, labels_a if lam >= 0.5 else labels_b)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("train_acc", self.train_accuracy, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], _: int) -> None:
        """Log validation loss and accuracy of one batch (unaugmented)."""
        images, labels = batch
        logits = self(images)
        self.val_accuracy(logits, labels)
        self.log("val_loss", F.cross_entropy(logits, labels), prog_bar=True, sync_dist=True)
        self.log("val_acc", self.val_accuracy, prog_bar=True)

    def configure_optimizers(self):
        """timm's optimizer (no weight decay on biases and norms) with the recipe's schedule."""
        cfg = self.cfg
        # timm's factory, as timm trains its ImageNet models: no weight decay on biases and norm
        # parameters (every 1-d tensor); `sgd` is Nesterov momentum 0.9. Its effect on cpu.yaml:
        # BENCHMARKS.md, "timm's optimizer".
        optimizer = create_optimizer_v2(self.backbone, opt=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                        momentum=0.9, filter_bias_and_bn=True)
        if cfg.schedule == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(steps * cfg.warmup_epochs / cfg.epochs)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, steps, warmup, cfg.schedule))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warm-up, then cosine decay to zero (or constant for schedule none)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "none":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress))
