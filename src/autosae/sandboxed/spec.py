"""What a variant's build() is told about the run. Shared by both sides of the harness."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class VariantSpec:
    """The fixed shape of the SAE to build; the harness owns everything else."""

    d_in: int
    """Dimension of the hidden activations."""
    width: int
    """Number of latents the SAE must have."""
    k: float
    """Target L0 of the final SAE (checked at eval, within the profile's tolerance)."""
    batch_size: int
    """Training batch size."""
    total_steps: int
    """Optimiser steps in the run (training samples // batch size)."""
    lr: float
    """The harness's Adam learning rate (for information: the harness sets it)."""
    seed: int
    """This run's seed; torch is already seeded with it when build() is called."""
    device: str
    """Device the SAE will be trained on; the harness moves the module there."""
    profile: str
    """Name of the benchmark profile."""
    options: dict = field(default_factory=dict)
    """Knob values a quick run passes to build() (`run_experiment`'s arm options: JSON scalars
    by name); empty in every counted run."""
