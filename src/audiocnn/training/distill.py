"""Knowledge distillation: one student learns the averaged predictions of several teacher models.

An ensemble of diverse models (other frontends, augmentations, seeds) predicts better than any
one of them but costs their sum to run. A student trained to match the ensemble's probabilities
as well as the labels keeps part of that gain at one model's speed (Hinton et al. 2015; the
DCASE / EfficientAT recipe). The teachers' probabilities are computed once per fold for every
training image, the waveform-augmented copies included, each teacher seeing the clip through
its own frontend: a copy is the same seeded waveform whatever the frontend at one sample rate,
so a teacher with another frontend hears the same augmented sound as the student
(`training.teachers`, which refuses teachers at another sample rate or trained on other splits).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from audiocnn.models.ensemble import combine


def ensemble_probabilities(logits: Sequence[Tensor]) -> Tensor:
    """The ensemble's prediction: the mean of its members' softmax probabilities.

    Probabilities, not logits, are averaged: a member that is sure and wrong then moves the mean
    by at most 1/len(logits), where its logits could outvote the others.
    """
    if not logits:
        raise ValueError("an ensemble needs at least one member")
    return combine(logits, [1.0] * len(logits)).exp()  # an ensemble bundle's own rule, at temperature 1


def distillation_loss(student_logits: Tensor, labels: Tensor, teacher_probabilities: Tensor, weight: float,
                      temperature: float = 1.0, label_smoothing: float = 0.0) -> Tensor:
    """(1 - weight) × cross-entropy with the labels + weight × T² × KL(teacher ‖ student) at temperature T.

    Both distributions are softened by T (the teachers' by raising their probabilities to 1/T
    and renormalising, which is the softmax of their logits over T); T² keeps the soft term's
    gradients at the hard term's scale whatever T is (Hinton et al. 2015).
    """
    hard = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    if weight == 0:
        return hard
    teacher = teacher_probabilities.float()
    if temperature != 1:
        teacher = (teacher.clamp_min(1e-12).log() / temperature).softmax(-1)
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    soft = F.kl_div(student, teacher, reduction="batchmean") * temperature**2
    return (1 - weight) * hard + weight * soft
