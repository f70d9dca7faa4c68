"""Several trained models as one: their calibrated probabilities averaged.

Why: a fine-tuned ImageNet CNN and a head on BirdNET's embedding hear differently, and their
mean was 4.5 points better out of domain than the CNN alone (BENCHMARKS.md, "BirdNET V2.4
probe"); seeds of one recipe averaged were the one training lever issue 18 found to help.

An ensemble's output is the log of its members' mean probability, so softmax of it (at
temperature 1) is that mean, and everything that turns a model's logits into probabilities,
`unknown` and detections (`Predictor`, the writers, the server) works on it unchanged. Each
member's own temperature is applied first: members are averaged as calibrated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from audiocnn.features import Frontend


class EnsembleClassifier(nn.Module):
    """Waveforms (batch, samples) in, log mean probability (batch, classes) out.

    Args:
        members: models from waveforms to logits (`AudioClassifier`s, or the runtimes `Predictor` makes
            of them), all at one sample rate and with the same labels in the same order.
        temperatures: each member's calibration temperature (its logits are divided by it).
        frontend: the first member's frontend: it says the rate recordings are read at.

    Example:
        >>> members = [nn.Linear(4, 3), nn.Linear(4, 3)]
        >>> ensemble = EnsembleClassifier(members, [1.0, 2.0], frontend=None)
        >>> x = torch.randn(2, 4)
        >>> mean = (members[0](x).softmax(-1) + (members[1](x) / 2).softmax(-1)) / 2
        >>> torch.allclose(ensemble(x).softmax(-1), mean)
        True
    """

    def __init__(self, members: Sequence[nn.Module], temperatures: Sequence[float], frontend: Frontend | None) -> None:
        super().__init__()
        if not members or len(members) != len(temperatures):
            raise ValueError(f"an ensemble needs members, one temperature each (got {len(members)}, "
                             f"{len(temperatures)})")
        self.members = nn.ModuleList(members)
        self.temperatures = [float(t) for t in temperatures]
        self.frontend = frontend

    def forward(self, waveforms: Tensor) -> Tensor:
        """The log of the members' mean calibrated probability."""
        return combine([member(waveforms) for member in self.members], self.temperatures)


def combine(member_logits: Sequence[Tensor], temperatures: Sequence[float]) -> Tensor:
    """log(mean over members of softmax(logits_m / T_m)): one ensemble's logits from its members'."""
    stacked = torch.stack([(logits.float() / t).log_softmax(-1) for logits, t in zip(member_logits, temperatures)])
    return torch.logsumexp(stacked, dim=0) - math.log(len(member_logits))
