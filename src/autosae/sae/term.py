"""TERM loss (tilted empirical risk minimisation), as the seed's agent repurposed it.

Given per-sample losses l_i and a tilt t, TERM is (1/t) * log(mean_i exp(t * l_i)).
t > 0 up-weights high-loss samples; t -> 0 recovers the plain mean. The seed found a
small tilt (about 2e-3) to help SAE quality slightly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def tilted_mean(per_sample: torch.Tensor, tilt: float) -> torch.Tensor:
    """(1/t) log mean exp(t * l); the mean when t == 0.

    Written as mean + (1/t) log mean exp(t * (l - mean)) in float64: at the small tilts
    that help SAEs (about 2e-3) the plain float32 formula loses the whole correction to
    cancellation, since log mean exp(t * l) - t * mean is of order t^2."""
    if tilt == 0.0:
        return per_sample.mean()
    flat = per_sample.flatten().double()
    mean = flat.mean()
    centred = tilt * (flat - mean)
    correction = (torch.logsumexp(centred, dim=0) - math.log(flat.numel())) / tilt
    return (mean + correction).to(per_sample.dtype)


@dataclass(frozen=True)
class TERM:
    """Reduce per-sample losses with a tilted mean of tilt `tilt`."""

    tilt: float = 2e-3

    def __call__(self, per_sample: torch.Tensor) -> torch.Tensor:
        return tilted_mean(per_sample, self.tilt)


@dataclass(frozen=True)
class MeanLoss:
    """The usual reduction: the mean over the batch."""

    def __call__(self, per_sample: torch.Tensor) -> torch.Tensor:
        return per_sample.mean()
