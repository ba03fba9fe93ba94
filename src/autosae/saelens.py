"""autosae's SAEs in SAELens: `import autosae.saelens`, then `SAE.load_from_disk(".../sae")`.

Importing this module registers the `autosae_batchtopk` architecture (autosae.sae.export),
the form every SAE built from autosae.sae is saved in: BatchTopK, Matryoshka, LISTA, ISTA and
leave-one-out alike. SAELens 6 has no plugin entry point, so the import is needed before loading.

The loaded SAE encodes as the harness did: batch top-k over the batch it is given (so the
same batches give the same latents: the harness encodes eval samples in batches of the
profile's batch size), then the LISTA or ISTA steps and the leave-one-out pruning if any.
`to_jumprelu()` gives SAELens's own per-sample form of a plain BatchTopK SAE (the learned
threshold), for use where batches are arbitrary, such as hooked into a language model; it
does not encode as the harness did.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sae_lens import SAE, JumpReLUSAE, JumpReLUSAEConfig, SAEConfig
from sae_lens.registry import SAE_CLASS_REGISTRY, register_sae_class
from torch import nn
from typing_extensions import override

from autosae.sae import export


@dataclass
class AutosaeBatchTopKSAEConfig(SAEConfig):
    """An autosae SAE for inference: BatchTopK at `k`, then `lista_iterations` LISTA steps of
    size `lista_eta`, `ista_iterations` ISTA steps of size `ista_eta`, and the leave-one-out
    pruning when `leave_one_out` (none for plain BatchTopK and Matryoshka SAEs). A cfg.json
    without the ISTA and leave-one-out fields (written before them) loads with them off."""

    k: float = 1.0
    rescale_acts_by_decoder_norm: bool = True
    lista_iterations: int = 0
    lista_eta: float = 0.0
    ista_iterations: int = 0
    ista_eta: float = 0.0
    leave_one_out: bool = False

    @override
    @classmethod
    def architecture(cls) -> str:
        return export.ARCHITECTURE


class AutosaeBatchTopKSAE(SAE[AutosaeBatchTopKSAEConfig]):
    """Encodes with autosae.sae.export.encode, the component library's own operations."""

    b_enc: nn.Parameter
    threshold: nn.Parameter

    @override
    def initialize_weights(self) -> None:
        super().initialize_weights()
        self.b_enc = nn.Parameter(torch.zeros(self.cfg.d_sae, dtype=self.dtype, device=self.device))
        self.threshold = nn.Parameter(torch.zeros(self.cfg.d_sae, dtype=self.dtype, device=self.device))

    @override
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Batch top-k over every position of `x` together (flattened to (rows, d_in))."""
        sae_in = self.process_sae_in(x)
        flat = sae_in.reshape(-1, sae_in.shape[-1])
        latents = export.encode(
            flat,
            self.W_enc,
            self.b_enc,
            self.W_dec,
            k=self.cfg.k,
            rescale=self.cfg.rescale_acts_by_decoder_norm,
            lista_iterations=self.cfg.lista_iterations,
            lista_eta=self.cfg.lista_eta,
            ista_iterations=self.cfg.ista_iterations,
            ista_eta=self.cfg.ista_eta,
            leave_one_out=self.cfg.leave_one_out,
        )
        return self.hook_sae_acts_post(latents.reshape(*sae_in.shape[:-1], self.cfg.d_sae))

    @override
    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        out = feature_acts @ export.decoder(self.W_dec, self.cfg.rescale_acts_by_decoder_norm) + self.b_dec
        out = self.hook_sae_recons(out)
        out = self.run_time_activation_norm_fn_out(out)
        return self.reshape_fn_out(out, self.d_head)

    @override
    @torch.no_grad()
    def fold_W_dec_norm(self) -> None:
        """Exact for this architecture, refinements included: LISTA steps project through
        W_enc and reconstruct through the unit-norm decoder, ISTA steps and the leave-one-out
        pruning read only that unit-norm decoder, all of which the fold preserves."""
        if self.cfg.rescale_acts_by_decoder_norm:
            super().fold_W_dec_norm()
            self.cfg.rescale_acts_by_decoder_norm = False

    @override
    def fold_activation_whitening(self, mean, whitening_matrix, unwhitening_matrix) -> None:
        raise NotImplementedError("autosae SAEs are trained on raw activations; whitening is not supported")

    def to_jumprelu(self) -> JumpReLUSAE:
        """SAELens's JumpReLU form of a BatchTopK SAE (decoder norms folded, the running
        threshold of the smallest kept activation), as SAELens saves its own BatchTopK SAEs."""
        if self.cfg.lista_iterations or self.cfg.ista_iterations or self.cfg.leave_one_out:
            raise NotImplementedError(
                "a LISTA, ISTA or leave-one-out SAE has no JumpReLU form: its refinement reads the reconstruction"
            )
        norms = self.W_dec.norm(dim=-1) if self.cfg.rescale_acts_by_decoder_norm else torch.ones_like(self.b_enc)
        cfg = JumpReLUSAEConfig(
            d_in=self.cfg.d_in, d_sae=self.cfg.d_sae, dtype=self.cfg.dtype, device=str(self.W_dec.device)
        )
        sae = JumpReLUSAE(cfg)
        with torch.no_grad():
            sae.load_state_dict(
                {
                    "W_enc": self.W_enc * norms[None, :],
                    "b_enc": self.b_enc * norms,
                    "W_dec": self.W_dec / norms[:, None],
                    "b_dec": self.b_dec.clone(),
                    "threshold": self.threshold.clone(),
                }
            )
        return sae


def register() -> None:
    """Register autosae's architecture with SAELens (once; importing this module does it)."""
    if export.ARCHITECTURE not in SAE_CLASS_REGISTRY:
        register_sae_class(export.ARCHITECTURE, AutosaeBatchTopKSAE, AutosaeBatchTopKSAEConfig)


register()
