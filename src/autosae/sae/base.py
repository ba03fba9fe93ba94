"""The contract between a variant's SAE and the harness's training loop.

The harness owns the loop (sample count, batch, optimiser, lr, gradient clipping); the SAE
owns everything inside one step. Any nn.Module that provides the methods of `VariantSAE`
can be trained and scored, whether it is built from autosae.sae components or is new code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class StepInfo:
    """Where training is, handed to the SAE at every step."""

    step: int
    """Index of this optimiser step, from 0."""
    total_steps: int
    """Number of optimiser steps in the whole run."""

    @property
    def progress(self) -> float:
        """0.0 at the first step, 1.0 at the last."""
        return self.step / max(self.total_steps - 1, 1)


@dataclass
class TrainOutput:
    """What one training forward pass returns to the harness."""

    loss: torch.Tensor
    """Scalar loss to backpropagate."""
    latents: torch.Tensor
    """(batch, width) latent activations used for this step's reconstruction."""
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    """Extra scalars to log (kept as tensors so logging does not force a device sync)."""


@runtime_checkable
class VariantSAE(Protocol):
    """What `build(spec)` in a variant.py must return (besides being an nn.Module)."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, d_in) -> (batch, width) latents; a latent fires where it is non-zero."""
        ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(batch, width) -> (batch, d_in) reconstruction."""
        ...

    def training_loss(self, x: torch.Tensor, step: StepInfo) -> TrainOutput:
        """One training forward pass on a batch."""
        ...

    def decoder_directions(self) -> torch.Tensor:
        """(width, d_in) decoder directions, one row per latent (used for MCC and F1 matching)."""
        ...
