"""The encode's operations that the SAE and its SAELens format share, the very same code.

Batch top-k, the ISTA step and the leave-one-out pruning, alone in a module so that
autosae.sae's components and autosae.sae.export both import them without a cycle."""

from __future__ import annotations

import torch


def batch_topk(pre_acts: torch.Tensor, k: float) -> torch.Tensor:
    """Keep the int(k * batch) largest positive pre-activations across the whole batch."""
    acts = pre_acts.relu()
    flat = acts.flatten()
    n_keep = min(int(k * acts.shape[0]), flat.numel())
    top = torch.topk(flat, n_keep, sorted=False)
    return torch.zeros_like(flat).scatter(0, top.indices, top.values).view_as(acts)


def ista_steps(
    x_centered: torch.Tensor,
    pre: torch.Tensor,
    latents: torch.Tensor,
    decoder: torch.Tensor,
    k: float,
    iterations: int,
    eta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`iterations` ISTA gradient steps of the reconstruction error along the decoder's
    transpose, each followed by batch top-k: autosae.sae.ISTA (`decoder` is the effective one)."""
    for _ in range(iterations):
        residual = x_centered - latents @ decoder
        pre = pre + eta * (residual @ decoder.T)
        latents = batch_topk(pre, k)
    return latents, pre


def prune_leave_one_out(x_centered: torch.Tensor, latents: torch.Tensor, decoder: torch.Tensor) -> torch.Tensor:
    """`latents` with every active latent zeroed whose removal alone from the full
    reconstruction would not increase the squared error: autosae.sae.LeaveOneOut.

    With r = x_centered - latents @ decoder, removing latent i changes ||r||^2 by
    2 z_i <r, d_i> + z_i^2 ||d_i||^2; all latents are judged at once against the same r.
    The decision carries no gradient; the kept latents keep theirs."""
    with torch.no_grad():
        residual = x_centered - latents @ decoder
        change = 2 * latents * (residual @ decoder.T) + latents.square() * decoder.square().sum(dim=-1)
    return torch.where(change <= 0, torch.zeros_like(latents), latents)
