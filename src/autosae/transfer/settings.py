"""TASK.md's `transfer:` section: which language model, hook point and tokens a transfer trains
on, and how much (its cost knobs). Plain settings, no torch: TASK.md is read without them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from autosae.settings import Strict, check_seeds, seed_list

METRICS = ("ce_loss_score", "explained_variance")
"""The metrics a transfer judges (higher is better for both): the share of the LM loss that
splicing the SAE in recovers (SAELens's ce_loss_score) and the explained variance."""


class TransferSettings(Strict):
    """`autosae transfer`: a sprint's variant, its parent and the Matryoshka baseline trained
    on a real language model's activations. The defaults are a first look: one small model,
    50M tokens per SAE, 4096 latents, three L0s and two seeds (18 SAEs at most)."""

    model: str = "pythia-70m-deduped"
    """A TransformerLens model name (or an HF model SAELens supports), or a folder holding a
    HookedTransformerConfig as config.json and optionally its weights as model.safetensors."""
    model_class: str = "HookedTransformer"
    """SAELens's model class for a named model (HookedTransformer, AutoModelForCausalLM, ...)."""
    hook: str = "blocks.3.hook_resid_post"
    """The hook point whose activations the SAEs reconstruct."""
    dataset: str = "monology/pile-uncopyrighted"
    """An HF dataset name (streamed), or a folder saved with datasets' save_to_disk; rows hold
    text, or tokens (a `tokens` or `input_ids` column) of at least context_size."""
    context_size: int = Field(128, ge=2)
    tokens: int = Field(50_000_000, ge=1)
    """Training tokens per SAE."""
    width: int = Field(4096, ge=1)
    l0s: list[int] = Field(default_factory=lambda: [16, 32, 64])
    """The L0s (each SAE's k) the comparison runs at."""
    seeds: int | list[int] = 2
    """Seeds per L0: N means 0..N-1, or an explicit list."""
    lr: float = Field(3e-4, gt=0)
    batch_size: int = Field(4096, ge=1)
    """Training batch, in tokens."""
    eval_batches: int = Field(20, ge=1)
    eval_batch_prompts: int = Field(16, ge=1)
    """Evaluation: eval_batches x eval_batch_prompts prompts of context_size tokens, held out of
    training, the same for every SAE."""
    prepend_bos: bool = True
    l0_tolerance: float = Field(0.02, ge=0)
    """A run whose SAE's L0 on the evaluation prompts exceeds its k by more than this share is
    rejected (not compared): an SAE may not buy reconstruction with more active latents."""
    metric: Literal["ce_loss_score", "explained_variance"] = "ce_loss_score"
    """The metric whose verdict (variant against its parent) is the transfer's verdict."""
    time_limit_min: float = Field(240, gt=0)
    """Most minutes one SAE may train."""
    auto: bool = False
    """Transfer every confirmed new best as the loop records it."""

    @field_validator("l0s")
    @classmethod
    def _l0s(cls, value):
        if not value or len(set(value)) != len(value) or min(value) < 1:
            raise ValueError("expected a non-empty list of distinct L0s >= 1")
        return sorted(value)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value):
        return check_seeds(value)

    def seed_list(self) -> list[int]:
        return seed_list(self.seeds)

    def eval_tokens(self) -> int:
        return self.eval_batches * self.eval_batch_prompts * self.context_size
