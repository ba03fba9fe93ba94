"""K schedules: how many latents per sample BatchTopK keeps at a point in training.

A schedule maps training progress (0.0 at the first step, 1.0 at the last) to a K.
The harness only checks the L0 of the *final* SAE, so every schedule must end at the
profile's target K.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConstantK:
    """Keep the target K for the whole run (the SAELens default)."""

    k: float

    def __call__(self, progress: float) -> float:
        return self.k


@dataclass(frozen=True)
class LinearK:
    """Start at `start` and fall (or rise) linearly to `end` over the first `fraction` of training.

    The seed's "linearly decreasing K": e.g. LinearK(start=4 * 25, end=25, fraction=0.5)
    holds 25 for the second half of training.
    """

    start: float
    end: float
    fraction: float = 1.0
    """Share of training, in (0, 1], over which K moves from start to end."""

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"LinearK.fraction must be in (0, 1], got {self.fraction}")
        if self.start <= 0 or self.end <= 0:
            raise ValueError("LinearK.start and LinearK.end must be positive")

    def __call__(self, progress: float) -> float:
        t = min(max(progress / self.fraction, 0.0), 1.0)
        return self.start + (self.end - self.start) * t
