"""A one-step LISTA encoder (Gregor & LeCun 2010), as the seed's agent adapted it to SAEs.

After the usual BatchTopK encode, each iteration moves the pre-activations along the
encoder's projection of what the current latents fail to reconstruct, then re-selects:

    residual = x_centered - latents @ W_dec
    pre      = pre + eta * (W_enc @ residual)      # no b_enc after the first encode
    latents  = batch_topk(pre, k)

Gradients flow through every iteration, as in the seed. With one iteration this is exactly
the seed's pseudo-code; for more iterations we recompute the residual from the current
latents (true ISTA), where the seed's sketch accumulated it. eta = 0 is plain BatchTopK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from autosae.sae.ops import batch_topk

if TYPE_CHECKING:
    from autosae.sae.batchtopk import BatchTopKSAE


@dataclass(frozen=True)
class LISTA:
    """Refine a BatchTopK encode with `iterations` LISTA steps of size `eta`."""

    iterations: int = 1
    eta: float = 0.3

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ValueError(f"LISTA.iterations must be >= 0, got {self.iterations}")

    def refine(
        self,
        sae: BatchTopKSAE,
        x_centered: torch.Tensor,
        pre: torch.Tensor,
        latents: torch.Tensor,
        k: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        decoder = sae.effective_decoder()
        for _ in range(self.iterations):
            residual = x_centered - latents @ decoder
            pre = pre + self.eta * sae.project(residual, with_bias=False)
            latents = batch_topk(pre, k)
        return latents, pre

    def sae_lens_cfg(self) -> dict:
        """This refinement's fields in autosae's SAELens architecture (autosae.sae.export)."""
        return {"lista_iterations": int(self.iterations), "lista_eta": float(self.eta)}
