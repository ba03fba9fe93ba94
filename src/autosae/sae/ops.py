"""Batch top-k, alone in a module so that the SAE and its SAELens format share it without a cycle."""

from __future__ import annotations

import torch


def batch_topk(pre_acts: torch.Tensor, k: float) -> torch.Tensor:
    """Keep the int(k * batch) largest positive pre-activations across the whole batch."""
    acts = pre_acts.relu()
    flat = acts.flatten()
    n_keep = min(int(k * acts.shape[0]), flat.numel())
    top = torch.topk(flat, n_keep, sorted=False)
    return torch.zeros_like(flat).scatter(0, top.indices, top.values).view_as(acts)
