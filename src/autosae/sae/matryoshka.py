"""Matryoshka BatchTopK SAE with the seed's two refinements.

Each level is a prefix of the latents that must reconstruct the input on its own; the
outermost level is the whole SAE. The training loss is the sum of every level's MSE.

- detach_inner: each inner level's loss reaches only the latents that level adds; the
  latents of smaller levels get gradient from their own level and from the full-width
  reconstruction, never from the levels in between (the outermost level keeps every
  gradient).
- sort_by_frequency: levels are taken over latents ordered by a running estimate of
  their firing frequency, most frequent first, instead of by index. Dead latents fall
  into the outermost level, where they can be revived.
"""

from __future__ import annotations

import torch

from autosae.sae.base import StepInfo, TrainOutput
from autosae.sae.batchtopk import BatchTopKSAE


class MatryoshkaBatchTopKSAE(BatchTopKSAE):
    """BatchTopK with Matryoshka levels.

    Args (beyond BatchTopKSAE's):
        levels: increasing prefix widths; d_sae is appended when missing.
        detach_inner: stop inner-level losses reaching the latents of smaller levels.
        sort_by_frequency: order latents by firing frequency before cutting levels.
        frequency_decay: EMA decay of the firing-frequency estimate used for sorting.
    """

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        k: float,
        *,
        levels: list[int],
        detach_inner: bool = False,
        sort_by_frequency: bool = False,
        frequency_decay: float = 0.99,
        **kwargs,
    ) -> None:
        super().__init__(d_in, d_sae, k, **kwargs)
        levels = [int(w) for w in levels]
        if not levels or levels[-1] != d_sae:
            levels.append(d_sae)
        if any(a >= b for a, b in zip(levels, levels[1:])) or levels[0] <= 0:
            raise ValueError(f"Matryoshka levels must be positive and increasing, got {levels}")
        self.levels = levels
        self.detach_inner = detach_inner
        self.sort_by_frequency = sort_by_frequency
        self.frequency_decay = frequency_decay
        self.register_buffer("firing_frequency", torch.zeros(d_sae))

    def latent_order(self) -> torch.Tensor | None:
        """Permutation putting the most frequently firing latents first (None: by index)."""
        if not self.sort_by_frequency:
            return None
        return torch.argsort(self.firing_frequency, descending=True, stable=True)

    def level_reconstructions(self, latents: torch.Tensor) -> list[torch.Tensor]:
        """Reconstruction of every level, innermost first; the last is the full SAE."""
        decoder = self.effective_decoder()
        order = self.latent_order()
        if order is not None:
            latents, decoder = latents[:, order], decoder[order]
        recons: list[torch.Tensor] = []
        partial = self.b_dec.expand(latents.shape[0], -1)
        start = 0
        for width in self.levels:
            segment = latents[:, start:width] @ decoder[start:width]
            inner_part = partial.detach() if self.detach_inner else partial
            recons.append(inner_part + segment)
            partial = partial + segment
            start = width
        # The outermost level always sees every latent with its gradient intact.
        recons[-1] = partial
        return recons

    def per_sample_reconstruction_loss(
        self, x: torch.Tensor, latents: torch.Tensor, metrics: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        recons = self.level_reconstructions(latents)
        per_level = [(r - x).pow(2).sum(dim=-1) for r in recons]
        metrics["mse"] = per_level[-1].detach().mean()
        return torch.stack(per_level).sum(dim=0), recons[-1]

    def training_loss(self, x: torch.Tensor, step: StepInfo) -> TrainOutput:
        out = super().training_loss(x, step)
        with torch.no_grad():
            rate = (out.latents != 0).float().mean(dim=0)
            d = self.frequency_decay
            self.firing_frequency.mul_(d).add_((1 - d) * rate)
        return out
