"""BatchTopK SAE, the base every autosae component composes onto.

Defaults follow SAELens's BatchTopKTrainingSAE so that our numbers are comparable with its
runner: Kaiming-uniform decoder rows rescaled to norm 0.1, W_enc = W_dec.T at init,
pre-activations rescaled by decoder row norms, the top-k auxiliary loss for dead latents
(k_aux = d_in // 2, dead after 1000 steps without firing), and batch top-k at eval as well
as in training.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from autosae.sae.base import StepInfo, TrainOutput
from autosae.sae.export import ARCHITECTURE, REFINEMENT_OFF, NotExportable
from autosae.sae.ops import batch_topk
from autosae.sae.schedules import ConstantK
from autosae.sae.term import MeanLoss

KSchedule = Callable[[float], float]
Reducer = Callable[[torch.Tensor], torch.Tensor]


class BatchTopKSAE(nn.Module):
    """A BatchTopK SAE with pluggable encoder refinement, K schedule and loss reduction.

    Args:
        d_in: input (hidden) dimension.
        d_sae: number of latents (the profile's width).
        k: target mean latents per sample; the harness checks the final L0 against it.
        k_schedule: maps training progress in [0, 1] to K; ConstantK(k) when None.
        encoder: optional refinement such as autosae.sae.LISTA, ISTA or LeaveOneOut (which
            wraps another); plain one-step encode when None.
        reducer: reduces per-sample losses to a scalar; the mean when None, or TERM(tilt).
        aux_coefficient: weight of the dead-latent auxiliary loss (0 disables it).
        dead_steps: steps without firing after which a latent counts as dead for the aux loss.
            None (the default) scales with the run: min(1000, total_steps // 4), SAELens's 1000
            on long runs and a quarter of training on short ones, where a fixed 1000 would
            silently never switch the aux loss on. Set at the first training step.
        decoder_init_norm: norm of decoder rows at init (SAELens's 0.1 heuristic).
        rescale_by_decoder_norm: treat decoder rows as unit norm, as SAELens does by default.
    """

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        k: float,
        *,
        k_schedule: KSchedule | None = None,
        encoder: object | None = None,
        reducer: Reducer | None = None,
        aux_coefficient: float = 1.0,
        dead_steps: int | None = None,
        decoder_init_norm: float | None = 0.1,
        rescale_by_decoder_norm: bool = True,
        topk_threshold_lr: float = 0.01,
    ) -> None:
        super().__init__()
        self.d_in, self.d_sae, self.k = d_in, d_sae, float(k)
        self.k_schedule = k_schedule or ConstantK(self.k)
        self.encoder = encoder
        self.reducer = reducer or MeanLoss()
        self.aux_coefficient = aux_coefficient
        if dead_steps is not None and int(dead_steps) < 0:
            raise ValueError(f"dead_steps must be 0 or more (or None to scale with the run), got {dead_steps}")
        self.dead_steps = None if dead_steps is None else int(dead_steps)
        self.rescale_by_decoder_norm = rescale_by_decoder_norm
        self.topk_threshold_lr = topk_threshold_lr
        self.current_k = float(self.k_schedule(0.0))

        w_dec = torch.empty(d_sae, d_in)
        nn.init.kaiming_uniform_(w_dec)
        if decoder_init_norm is not None:
            w_dec = w_dec / w_dec.norm(dim=-1, keepdim=True) * decoder_init_norm
        self.W_dec = nn.Parameter(w_dec)
        self.W_enc = nn.Parameter(w_dec.T.clone().contiguous())
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("steps_since_fired", torch.zeros(d_sae, dtype=torch.long))
        # Running mean of the smallest kept activation: SAELens saves BatchTopK SAEs as
        # JumpReLU SAEs with this threshold.
        self.register_buffer("topk_threshold", torch.zeros((), dtype=torch.float64))
        # A host-side upper bound on max(steps_since_fired) (None: unknown): while it is at
        # most dead_steps no latent can be dead, and the auxiliary loss is skipped exactly as
        # when the GPU is asked, without asking it (a host sync per step). Code that raises
        # steps_since_fired by hand must set it to None.
        self.dead_bound: int | None = None
        self.register_load_state_dict_post_hook(lambda module, _keys: setattr(module, "dead_bound", None))

    # --- pieces that components override or reuse -------------------------------------
    def decoder_norms(self) -> torch.Tensor:
        return self.W_dec.norm(dim=-1)

    def effective_decoder(self) -> torch.Tensor:
        """Decoder rows as used to reconstruct (unit norm when rescaling by decoder norm)."""
        if self.rescale_by_decoder_norm:
            return self.W_dec / self.decoder_norms()[:, None]
        return self.W_dec

    def project(self, x_centered: torch.Tensor, with_bias: bool = True) -> torch.Tensor:
        """Encoder pre-activations for centred input, in decoder-norm units."""
        pre = x_centered @ self.W_enc
        if with_bias:
            pre = pre + self.b_enc
        if self.rescale_by_decoder_norm:
            pre = pre * self.decoder_norms()
        return pre

    def encode_with_pre(self, x: torch.Tensor, k: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents and the pre-activations they were selected from."""
        x_centered = x - self.b_dec
        pre = self.project(x_centered)
        latents = batch_topk(pre, k)
        if self.encoder is not None:
            latents, pre = self.encoder.refine(self, x_centered, pre, latents, k)
        return latents, pre

    # --- the VariantSAE protocol -----------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_with_pre(x, self.k)[0]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents @ self.effective_decoder() + self.b_dec

    def decoder_directions(self) -> torch.Tensor:
        return self.W_dec

    def per_sample_reconstruction_loss(
        self, x: torch.Tensor, latents: torch.Tensor, metrics: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample training loss (before reduction) and the full reconstruction."""
        recon = self.decode(latents)
        per_sample = (recon - x).pow(2).sum(dim=-1)
        metrics["mse"] = per_sample.detach().mean()
        return per_sample, recon

    def training_loss(self, x: torch.Tensor, step: StepInfo) -> TrainOutput:
        self.scale_dead_steps(step.total_steps)
        self.current_k = float(self.k_schedule(step.progress))
        latents, pre = self.encode_with_pre(x, self.current_k)
        metrics: dict[str, torch.Tensor] = {}
        per_sample, recon = self.per_sample_reconstruction_loss(x, latents, metrics)
        loss = self.reducer(per_sample)
        if self.aux_coefficient > 0:
            aux = self.aux_loss(x, recon, pre)
            metrics["aux"] = aux.detach()
            loss = loss + aux
        self.track_firing(latents)
        return TrainOutput(loss=loss, latents=latents, metrics=metrics)

    # --- dead latents and threshold bookkeeping --------------------------------------
    def scale_dead_steps(self, total_steps: int) -> None:
        """Fix dead_steps for this run when it was left to scale with it (see __init__)."""
        if self.dead_steps is None:
            self.dead_steps = max(1, min(1000, total_steps // 4))

    def dead_mask(self) -> torch.Tensor:
        if self.dead_steps is None:
            raise RuntimeError(
                "dead_steps scales with the run and is set at the first training step; "
                "call scale_dead_steps(total_steps) first"
            )
        return self.steps_since_fired > self.dead_steps

    def aux_loss(self, x: torch.Tensor, recon: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        """SAELens's top-k auxiliary loss: the top dead latents reconstruct the residual."""
        if self.dead_bound is not None and self.dead_bound <= self.dead_steps:
            return recon.new_zeros(())
        dead = self.dead_mask()
        num_dead, longest = (int(v) for v in torch.stack([dead.sum(), self.steps_since_fired.max()]).tolist())
        self.dead_bound = longest
        if num_dead == 0:
            return recon.new_zeros(())
        k_aux = x.shape[-1] // 2
        scale = min(num_dead / k_aux, 1.0)
        k_aux = min(k_aux, num_dead)
        masked = torch.where(dead[None], pre, -torch.inf)
        top = masked.topk(k_aux, sorted=False)
        aux_acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        residual = (x - recon).detach()
        aux_recon = aux_acts @ self.effective_decoder()
        return self.aux_coefficient * scale * (aux_recon - residual).pow(2).sum(dim=-1).mean()

    @torch.no_grad()
    def track_firing(self, latents: torch.Tensor) -> None:
        # The same updates as SAELens's, written without host synchronisation (no boolean
        # indexing, no branch on a GPU value), so that a step never waits for the GPU.
        fired = (latents != 0).any(dim=0)
        self.steps_since_fired += 1
        self.steps_since_fired.masked_fill_(fired, 0)
        if self.dead_bound is not None:
            self.dead_bound += 1
        smallest = torch.where(latents > 0, latents, torch.inf).min().double()
        lr = self.topk_threshold_lr
        updated = self.topk_threshold * (1 - lr) + lr * smallest
        self.topk_threshold.copy_(torch.where(torch.isfinite(smallest), updated, self.topk_threshold))

    # --- export ---------------------------------------------------------------------
    @torch.no_grad()
    def sae_lens_export(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(cfg, weights) in autosae's SAELens architecture (autosae.sae.export), which encodes
        exactly as this module does: batch top-k at the final K, the encoder's refinement, the
        decoder norms applied at run time. NotExportable when the encoder has no such form.
        Matryoshka levels, K schedules and loss reducers shape training only: the trained
        SAE's encode and decode are BatchTopK's, so they need nothing here."""
        refinement = dict(REFINEMENT_OFF)
        if self.encoder is not None:
            describe = getattr(self.encoder, "sae_lens_cfg", None)
            if not callable(describe):
                raise NotExportable(f"its encoder {type(self.encoder).__name__} has no SAELens form")
            refinement.update(describe())
        weights = {
            "W_enc": self.W_enc.detach().clone(),
            "b_enc": self.b_enc.detach().clone(),
            "W_dec": self.W_dec.detach().clone(),
            "b_dec": self.b_dec.detach().clone(),
            # SAELens's JumpReLU threshold for BatchTopK SAEs (autosae.saelens's to_jumprelu).
            "threshold": torch.full((self.d_sae,), float(self.topk_threshold)),
        }
        cfg = {
            "architecture": ARCHITECTURE,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "dtype": "float32",
            "device": "cpu",
            "apply_b_dec_to_input": True,
            "normalize_activations": "none",
            "reshape_activations": "none",
            "k": self.k,
            "rescale_acts_by_decoder_norm": self.rescale_by_decoder_norm,
            **refinement,
            "metadata": {"trained_with": "autosae", "variant_class": type(self).__name__},
        }
        return cfg, {name: t.float().contiguous() for name, t in weights.items()}
