"""The trusted scorer: SynthSAEBench metrics from latents that the variant returned.

It lives in autosae.bench, which the variant's process cannot import. It is built from
sae_lens's own metric calculators (the ones eval_sae_on_synthetic_data uses), split so that
the ground truth (feature activations and vectors) stays on this side while the variant's
process only ever sees hidden activations. tests/bench/test_metrics_parity.py checks that
the result equals eval_sae_on_synthetic_data on the same SAE and samples.
"""

from __future__ import annotations

import torch


class Scorer:
    """Accumulates one SAE's metrics over eval batches.

    Args:
        decoder: (width, d_in) decoder directions reported by the variant.
        feature_vectors: (num_features, d_in) ground-truth directions.
    """

    def __init__(self, decoder: torch.Tensor, feature_vectors: torch.Tensor) -> None:
        from sae_lens.evals import ExplainedVarianceCalculator
        from sae_lens.synthetic.evals import (
            ClassificationMetricsCalculator,
            DeadLatentsCalculator,
            L0Calculator,
            ShrinkageCalculator,
        )

        self.decoder = decoder.detach()
        self.feature_vectors = feature_vectors.detach()
        self.true_l0 = L0Calculator()
        self.sae_l0 = L0Calculator()
        self.dead = DeadLatentsCalculator(decoder.shape[0])
        self.shrinkage = ShrinkageCalculator()
        self.explained_variance = ExplainedVarianceCalculator()
        self.classification = ClassificationMetricsCalculator(self.decoder, self.feature_vectors)

    @torch.no_grad()
    def add_batch(
        self, feature_acts: torch.Tensor, hidden: torch.Tensor, latents: torch.Tensor, recon: torch.Tensor
    ) -> None:
        self.true_l0.add_batch(feature_acts)
        self.sae_l0.add_batch(latents)
        self.dead.add_batch(latents)
        self.shrinkage.add_batch(recon, hidden)
        self.explained_variance.add_batch(recon, hidden)
        self.classification.add_batch(latents, feature_acts)

    def compute(self) -> dict[str, float]:
        from sae_lens.synthetic.evals import feature_uniqueness, mean_correlation_coefficient

        cls = self.classification.compute()
        return {
            "f1": cls.f1_score,
            "mcc": mean_correlation_coefficient(self.decoder, self.feature_vectors),
            "precision": cls.precision,
            "recall": cls.recall,
            "accuracy": cls.accuracy,
            "l0": self.sae_l0.compute(),
            "true_l0": self.true_l0.compute(),
            "dead_latents": self.dead.compute(),
            "explained_variance": self.explained_variance.compute(),
            "shrinkage": self.shrinkage.compute(),
            "uniqueness": feature_uniqueness(self.decoder, self.feature_vectors),
        }
